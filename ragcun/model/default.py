"""The shipped default model: frozen all-MiniLM-L6-v2 plus a SIGReg-trained head (see README, "Training")."""

from __future__ import annotations

from pathlib import Path

from ragcun.errors import ModelLoadError

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "data" / "default-model"


def default_model_path() -> Path:
    """The model directory used when no model is named (a head of a few MB, inside the package).

    Raises:
        ModelLoadError: when the package was installed without its data files.
    """
    if not (DEFAULT_MODEL_DIR / "fingerprint").is_file():
        raise ModelLoadError(f"{DEFAULT_MODEL_DIR}: the default model is missing; reinstall ragcun or name a model")
    return DEFAULT_MODEL_DIR
