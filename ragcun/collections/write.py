"""The one write path of every point: embed chunk text, upsert the points, record their norms.

Ingest, reindex, rollback and repair all write points through here, in the same order: a journal row
(:mod:`ragcun.collections.journal`), the store, then the catalog rows that claim the points (and the
base vectors of newly encoded texts), so the catalog never claims a point the store lacks. The point id
of a chunk is its catalog id, so a repeated write overwrites.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy.orm import Session

from ragcun.catalog.models import Chunk, Collection, CollectionChunk, utcnow
from ragcun.collections import journal
from ragcun.collections.base_vectors import embed_texts
from ragcun.faults import fault_point
from ragcun.workspace import Workspace

if TYPE_CHECKING:  # the model imports torch; annotations alone need not
    from ragcun.model import GaussianEmbedder


# Relative tolerance between a stored norm and the norm of the stored vector (float32 round trips).
NORM_TOLERANCE = 1e-4


@dataclass(frozen=True)
class ChunkPoint:
    """One chunk as a point: its id, the text to embed and the payload fields that trace it."""

    chunk_id: str
    doc_id: str
    ordinal: int
    text: str
    title: str | None
    metadata: dict
    source: str | None
    ingest_run: int | None
    sha256: str  # of ``text``: the key of its base vector
    locator: dict | None = None  # heading_path, page / pages: where in the document the chunk is
    ingested_at: datetime | None = None  # when the document was last ingested (filterable: ingested_at>=…)

    @classmethod
    def of(cls, chunk: Chunk, ingest_run: int | None) -> ChunkPoint:
        """The point of a chunk already in the catalog."""
        document = chunk.document
        return cls(
            chunk.id,
            document.doc_id,
            chunk.ordinal,
            chunk.text,
            document.title,
            document.metadata_,
            document.source.uri,
            ingest_run,
            chunk.sha256,
            chunk.locator,
            document.updated_at,
        )

    def payload(self, norm: float, model_version: str) -> dict:
        """Enough for any Qdrant client to show, trace and filter a hit (and cite it: heading path, page)."""
        ingested_at = (self.ingested_at or utcnow()).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"
        return {
            "doc_id": self.doc_id,
            "chunk": self.ordinal,
            "text": self.text,
            "norm": norm,
            "source": self.source,
            "model_version": model_version,
            "ingest_run": self.ingest_run,
            "title": self.title,
            "metadata": self.metadata,
            "ingested_at": ingested_at,
            **(self.locator or {}),
        }


def norms_match(stored: float, norm: float) -> bool:
    return abs(stored - norm) <= NORM_TOLERANCE * max(1.0, norm)


def store_points(
    ws: Workspace, collection: Collection, points: Sequence[ChunkPoint], vectors: np.ndarray
) -> list[float]:
    """Upsert ``points`` with ``vectors`` into ``collection``'s store; returns each vector's norm."""
    norms = [float(n) for n in np.linalg.norm(vectors, axis=1)]
    fingerprint = collection.model_version.fingerprint
    ws.store.upsert(
        collection.physical_name,
        [p.chunk_id for p in points],
        vectors,
        [p.payload(n, fingerprint) for p, n in zip(points, norms, strict=True)],
    )
    return norms


def embed_points(
    ws: Workspace, session: Session, collection: Collection, embedder: GaussianEmbedder, points: Sequence[ChunkPoint]
) -> list[float]:
    """Embed ``points``' text with ``embedder`` and upsert them; returns their norms.

    Texts whose base vector is stored run through the head only; the base vectors of the others are
    staged in ``session`` (:mod:`ragcun.collections.base_vectors`), for the caller to commit.
    """
    vectors, _ = embed_texts(session, embedder, [p.text for p in points], [p.sha256 for p in points])
    return store_points(ws, collection, points, vectors)


def record_norms(
    session: Session, collection: Collection, points: Sequence[ChunkPoint], norms: Sequence[float]
) -> None:
    """Stage the memberships that claim ``points`` (with their norms) in ``session``; the caller commits."""
    for point, norm in zip(points, norms, strict=True):
        session.merge(
            CollectionChunk(
                collection_id=collection.id, chunk_id=point.chunk_id, ingest_run_id=point.ingest_run, norm=norm
            )
        )


def write_points(
    ws: Workspace,
    session: Session,
    collection: Collection,
    embedder: GaussianEmbedder,
    points: Sequence[ChunkPoint],
    path: str = "write",
) -> None:
    """Embed and upsert ``points`` of catalog chunks, then commit their memberships.

    The batch is journaled first (committing whatever ``session`` holds staged); fault points
    ``PATH.after_upsert`` (points stored, not yet claimed: the next command deletes those the catalog
    does not claim) and ``PATH.after_batch`` (claimed, journal row gone).
    """
    change = journal.record(session, collection.physical_name, "write", new=[p.chunk_id for p in points])
    session.commit()
    record_norms(session, collection, points, embed_points(ws, session, collection, embedder, points))
    fault_point(f"{path}.after_upsert")
    session.delete(change)  # in the transaction that claims the points: nothing is left to settle
    session.commit()
    fault_point(f"{path}.after_batch")
