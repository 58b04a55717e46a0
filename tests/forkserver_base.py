"""Imported by the forkserver of ``conftest.KILLABLE`` only (its last preload), never by a test.

It loads the base encoder every test model is built on into ragcun's per-process shared-base cache, so a
forked child's ``GaussianEmbedder.load`` finds it there instead of reading it from disk (0.15-0.4 s a child,
some fifty children a run). Torch runs on one thread here, set before anything else: the forkserver must
never start OpenMP's thread pool, which a forked child would inherit broken.
"""

from pathlib import Path

import torch

torch.set_num_threads(1)

from ragcun.model.embedder import DEFAULT_BASE_MODEL, shared_base_encoder  # noqa: E402  (after the thread count)

# Keyed like a saved model's load: by the max_seq_length its config records, which is the base's own.
_as_shipped = shared_base_encoder(DEFAULT_BASE_MODEL, None, None, Path(__file__))
shared_base_encoder(DEFAULT_BASE_MODEL, None, _as_shipped.max_seq_length, Path(__file__))
