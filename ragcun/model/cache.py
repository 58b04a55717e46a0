"""The base-embedding cache: base-encoder vectors of texts, content-addressed on disk.

The trainer's frozen recipe and ``ragcun eval``'s base baselines both embed texts through a model's base
encoder (no Normalize, no head); this cache lets each reuse what the other, or an earlier run, embedded.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file, save_file

if TYPE_CHECKING:  # the model imports torch; annotations alone need not
    from ragcun.model.embedder import GaussianEmbedder


logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``RAGCUN_CACHE``, else ``cache/`` under the ragcun home (:class:`ragcun.settings.Settings`)."""
    from ragcun.settings import Settings

    return Settings.from_env().cache_dir


def _text_hash(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def base_embeddings(
    embedder: GaussianEmbedder, texts: list[str], cache_dir: str | Path | None = None, batch_size: int = 64
) -> torch.Tensor:
    """Base-encoder embeddings (no Normalize, no head) of ``texts``, read from or added to the cache.

    The cache is content-addressed: one folder per (base model, max_seq_length), holding shards of
    rows keyed by the sha256 of each text, so any text list (train split, dev split, benchmark
    corpus) reuses every text already embedded and only encodes the new ones.

    Args:
        embedder: A :class:`ragcun.model.GaussianEmbedder`; only its ``base`` is used.
        texts: The texts, in the order the rows are returned.
        cache_dir: Cache folder; ``None`` uses ``$RAGCUN_CACHE``, else ``$RAGCUN_HOME/cache``.

    Returns:
        float32 tensor ``(len(texts), base_dim)``.
    """
    from ragcun.model.embedder import GaussianEmbedder

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    model_key = hashlib.sha256(f"{embedder.base_model}\x00{embedder.max_seq_length}".encode()).hexdigest()[:16]
    folder = cache_dir / "base-embeddings" / model_key
    rows: dict[bytes, torch.Tensor] = {}
    for shard in sorted(folder.glob("*.safetensors")):
        table = load_file(shard)
        rows.update(zip(map(bytes, table["hashes"].numpy()), table["embeddings"], strict=True))
    hashes = [_text_hash(text) for text in texts]
    missing = list(dict.fromkeys(h for h in hashes if h not in rows))
    if missing:
        by_hash = dict(zip(hashes, texts, strict=True))
        plain = GaussianEmbedder(embedder.base_model, head="identity", base_encoder=embedder.base)
        new = torch.from_numpy(plain.encode([by_hash[h] for h in missing], batch_size=batch_size))
        folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(b"".join(missing)).hexdigest()[:16]
        tmp = folder / f"{name}.tmp{os.getpid()}"
        hash_table = torch.frombuffer(bytearray(b"".join(missing)), dtype=torch.uint8).reshape(len(missing), 32)
        save_file(
            {"embeddings": new.contiguous(), "hashes": hash_table}, tmp, metadata={"base_model": embedder.base_model}
        )
        os.replace(tmp, folder / f"{name}.safetensors")  # a crash mid-write never leaves a truncated shard
        rows.update(zip(missing, new, strict=True))
    logger.info("base embeddings: %d texts, %d newly encoded, cache %s", len(texts), len(missing), folder)
    if not texts:
        return torch.empty(0, embedder.head_spec.in_dim)
    return torch.stack([rows[h] for h in hashes])
