"""The base-vector store: every chunk text's base-encoder (pre-head) embedding, so a new head never re-encodes.

Ingest keeps the pooled base embedding of each chunk it embeds (one encoder pass gives both, see
:meth:`GaussianEmbedder.encode_with_base`); a reindex to a model over the same base, an ``adapt``,
and a repair then read these rows and run only the head. Chunks the store lacks are encoded (and
kept) as before, so the store is a cache that can always be rebuilt from the catalog's text.

Rows live in the catalog (table ``base_vectors``, float16 blobs keyed by base key and chunk sha256)
rather than in a side file: they are written in the same transaction as the chunks that need them,
``check`` finds missing and orphan rows with one SQL anti-join each, and there is no second file
whose index could drift from the catalog. At 384 float16 values a row is 768 bytes: 10,000 chunks
add 7.7 MB to the catalog.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ragcun.catalog.models import BaseVector, Chunk, CollectionChunk

# SQLite's bound-parameter limit, with room to spare.
IN_BATCH = 500


def base_key(model_config: Mapping) -> str:
    """What a base embedding depends on, from a model's ``config.json``: base model reference and truncation length."""
    return f"{model_config['base_model']}@{model_config['max_seq_length']}"


def base_key_of(model_dir: str | Path) -> str:
    """:func:`base_key` of a saved model directory, without loading the encoder."""
    return base_key(json.loads((Path(model_dir) / "config.json").read_text()))


def has_base(embedder: object) -> bool:
    """Whether ``embedder`` exposes its base embeddings (a :class:`GaussianEmbedder` does)."""
    return hasattr(embedder, "encode_with_base") and hasattr(embedder, "apply_head")


def load_base_vectors(session: Session, key: str, shas: Iterable[str]) -> dict[str, np.ndarray]:
    """The stored base embeddings (float16) of the given chunk sha256s under ``key``; absent ones are missing."""
    wanted = sorted(set(shas))
    found: dict[str, np.ndarray] = {}
    for start in range(0, len(wanted), IN_BATCH):
        rows = session.execute(
            select(BaseVector.sha256, BaseVector.vector).where(
                BaseVector.base_key == key, BaseVector.sha256.in_(wanted[start : start + IN_BATCH])
            )
        )
        for sha, blob in rows:
            found[sha] = np.frombuffer(blob, dtype="<f2")
    return found


def save_base_vectors(session: Session, key: str, shas: Sequence[str], base: np.ndarray) -> None:
    """Stage base embeddings (rounded to float16) for ``shas`` in ``session``; the caller commits."""
    half = np.asarray(base, dtype="<f2")
    for sha, row in zip(shas, half, strict=False):
        session.merge(BaseVector(base_key=key, sha256=sha, dim=int(half.shape[1]), vector=row.tobytes()))


def base_matrix(
    session: Session, embedder, texts: Sequence[str], shas: Sequence[str]
) -> tuple[np.ndarray, list[int], np.ndarray | None]:
    """Base embeddings of ``texts`` (float32 holding float16 values, in order), from the store where it has them.

    Returns ``(base, encoded, head_out)``: ``encoded`` are the indexes that went through the encoder
    (their base rows are staged in ``session``; the caller commits) and ``head_out`` the model's
    float32 output for them, from that same pass (``None`` when nothing was encoded).
    """
    key = base_key(embedder.config())
    stored = load_base_vectors(session, key, shas)
    base = np.empty((len(texts), embedder.base_dim), dtype=np.float32)
    encoded = [i for i, sha in enumerate(shas) if sha not in stored]
    for i, sha in enumerate(shas):
        if sha in stored:
            base[i] = stored[sha]
    head_out = None
    if encoded:
        head_out, fresh = embedder.encode_with_base([texts[i] for i in encoded], show_progress_bar=False)
        save_base_vectors(session, key, [shas[i] for i in encoded], fresh)
        base[encoded] = np.asarray(fresh, dtype=np.float16)  # as the store will give it back next time
    return base, encoded, head_out


def embed_texts(session: Session, embedder, texts: Sequence[str], shas: Sequence[str]) -> tuple[np.ndarray, int]:
    """Embed chunk texts with ``embedder`` through the base-vector store: ``(vectors, texts encoded)``.

    Texts whose base embedding is stored go through the head only; the rest through the encoder,
    whose base embeddings are staged in ``session`` (the caller commits). An embedder without a base
    (anything but a :class:`GaussianEmbedder`) simply encodes.
    """
    if not has_base(embedder):
        return embedder.encode(list(texts), show_progress_bar=False), len(texts)
    base, encoded, head_out = base_matrix(session, embedder, texts, shas)
    if head_out is not None and len(encoded) == len(texts):
        return head_out, len(encoded)
    vectors = embedder.apply_head(base)
    if head_out is not None:
        vectors[encoded] = head_out  # fresh texts get exactly encode()'s float32 output
    return vectors, len(encoded)


def fresh_vectors(session: Session, embedder, texts: Sequence[str], shas: Sequence[str]) -> np.ndarray:
    """What ``embedder`` makes of ``texts`` now: the head over their stored base vectors, the encoder for the rest.

    Unlike :func:`embed_texts`, nothing is staged: ``check`` compares stored vectors with these.
    """
    if not has_base(embedder):
        return np.asarray(embedder.encode(list(texts), show_progress_bar=False), dtype=np.float32)
    stored = load_base_vectors(session, base_key(embedder.config()), shas)
    have = [i for i, sha in enumerate(shas) if sha in stored]
    lack = [i for i, sha in enumerate(shas) if sha not in stored]
    vectors = np.empty((len(texts), embedder.dim), dtype=np.float32)
    if have:
        vectors[have] = embedder.apply_head(np.stack([stored[shas[i]] for i in have]).astype(np.float32))
    if lack:
        vectors[lack] = embedder.encode([texts[i] for i in lack], show_progress_bar=False)
    return vectors


def forget_unreferenced(session: Session, shas: Iterable[str]) -> int:
    """Delete the base vectors of ``shas`` that no chunk (in any collection) has any more; returns how many."""
    candidates = sorted(set(shas))
    removed = 0
    for start in range(0, len(candidates), IN_BATCH):
        batch = candidates[start : start + IN_BATCH]
        still = set(session.scalars(select(Chunk.sha256).where(Chunk.sha256.in_(batch))))
        gone = [sha for sha in batch if sha not in still]
        if gone:
            result = session.execute(delete(BaseVector).where(BaseVector.sha256.in_(gone)))
            removed += getattr(result, "rowcount", 0) or 0  # a DELETE's result is a CursorResult
    return removed


def missing_base_vectors(session: Session, collection_id: int, key: str) -> list[str]:
    """Chunk ids of a physical collection whose text has no base vector under ``key``."""
    have = select(BaseVector.sha256).where(BaseVector.base_key == key)
    return sorted(
        session.scalars(
            select(Chunk.id)
            .join(CollectionChunk, CollectionChunk.chunk_id == Chunk.id)
            .where(CollectionChunk.collection_id == collection_id, Chunk.sha256.not_in(have))
        )
    )


def orphan_base_vectors(session: Session, key: str) -> list[str]:
    """sha256s stored under ``key`` that no chunk in the catalog has."""
    return sorted(
        session.scalars(
            select(BaseVector.sha256).where(BaseVector.base_key == key, BaseVector.sha256.not_in(select(Chunk.sha256)))
        )
    )


def delete_base_vectors(session: Session, key: str, shas: Sequence[str]) -> None:
    for start in range(0, len(shas), IN_BATCH):
        session.execute(
            delete(BaseVector).where(
                BaseVector.base_key == key, BaseVector.sha256.in_(list(shas[start : start + IN_BATCH]))
            )
        )
