"""Imported by the forkserver of ``conftest.KILLABLE`` only (its last preload), never by a test.

It loads the base encoder every test model is built on into ragcun's per-process shared-base cache, so a
forked child's ``GaussianEmbedder.load`` finds it there instead of reading it from disk (0.15-0.4 s a child,
some fifty children a run). Torch runs on one thread here, set before anything else: the forkserver must
never start OpenMP's thread pool, which a forked child would inherit broken.
"""

import json
from pathlib import Path

import torch

torch.set_num_threads(1)

from ragcun.model.embedder import (  # noqa: E402  (after the thread count)
    DEFAULT_BASE_MODEL,
    resolve_base_model,
    shared_base_encoder,
)

# Keyed like a saved model's load: by the max_seq_length its config records, which is the base's own, as
# sentence-transformers reads it from the base's folder.
_folder = Path(resolve_base_model(DEFAULT_BASE_MODEL))
_max_seq_length = json.loads((_folder / "sentence_bert_config.json").read_text())["max_seq_length"]
shared_base_encoder(DEFAULT_BASE_MODEL, None, _max_seq_length, _folder)
