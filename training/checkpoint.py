"""Resumable checkpoints in one safetensors file: tensors as tensors, everything else as JSON metadata.

A checkpoint holds the trainable weights (``model.*``), the optimizer's per-parameter state
(``optim.<param>.<name>``), the RNG states (``rng.*``), and in the metadata: the config, step,
epoch, metrics history, the optimizer's param groups and the learning-rate schedule position.
No pickle anywhere. Writes go to a temporary file in the same folder and are renamed into place,
so a crash never leaves a half-written checkpoint where ``latest`` would find it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

PREFIX = "step-"


def _atomic_save(tensors: dict[str, torch.Tensor], metadata: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    save_file(tensors, tmp, metadata={"ragcun_checkpoint": json.dumps(metadata)})
    os.replace(tmp, path)


def save_checkpoint(
    folder: str | Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    state: dict,
    keep: int = 2,
) -> Path:
    """Write ``<folder>/step-<step>.safetensors`` and keep only the newest ``keep`` of them.

    Args:
        model: Every trainable module (head, loss parameters, and the base in the full recipe).
        optimizer: Its state tensors are stored by parameter index.
        generator: The data-order generator.
        state: JSON-able run state (config, epoch, history, best metric…).
    """
    tensors = {f"model.{k}": v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    optim = optimizer.state_dict()
    for index, values in optim["state"].items():
        for name, value in values.items():
            tensors[f"optim.{index}.{name}"] = torch.as_tensor(value).detach().cpu().clone().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.data"] = generator.get_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    metadata = {**state, "step": step, "param_groups": optim["param_groups"]}
    path = Path(folder) / f"{PREFIX}{step:08d}.safetensors"
    _atomic_save(tensors, metadata, path)
    for old in sorted(Path(folder).glob(f"{PREFIX}*.safetensors"))[:-keep]:
        old.unlink()
    return path


def latest_checkpoint(folder: str | Path) -> Path | None:
    found = sorted(Path(folder).glob(f"{PREFIX}*.safetensors"))
    return found[-1] if found else None


def checkpoint_state(path: str | Path) -> dict:
    """The JSON run state of a checkpoint (config, step, epoch…), without reading its tensors."""
    with safe_open(str(path), framework="pt") as handle:
        return json.loads(handle.metadata()["ragcun_checkpoint"])


def load_checkpoint(
    path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator
) -> dict:
    """Restore weights, optimizer, RNG states in place (strictly); return the JSON run state."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = json.loads(handle.metadata()["ragcun_checkpoint"])
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (safe_open handles are not iterable)
    weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(weights, strict=True)  # a different architecture cannot be resumed
    optim_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            optim_state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": optim_state, "param_groups": metadata.pop("param_groups")})
    torch.set_rng_state(tensors["rng.torch"])
    generator.set_state(tensors["rng.data"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return metadata
