"""Reindex and rollback: rebuild a collection with another model version, then switch to it with no downtime.

A logical collection name points at exactly one *active* physical collection. A reindex builds a
new physical collection (status ``building``) from the chunk text in the catalog, verifies it,
then switches the pointer in one catalog transaction and, on engines with aliases, in one
``update_collection_aliases`` request. Until that switch every query is served by the old
collection. Each embedded batch is committed, so a killed reindex resumes where it stopped.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session
from tqdm.auto import tqdm

from ragcun.catalog.models import Chunk, Collection, CollectionChunk, Document, utcnow
from ragcun.catalog.ops import require_collection
from ragcun.collections.create import carry_indexes, create_collection, physical_name
from ragcun.collections.runs import finish_run, start_run
from ragcun.collections.versions import register_model_version
from ragcun.collections.write import ChunkPoint, norms_match, write_points
from ragcun.errors import RagcunError, VerificationError
from ragcun.faults import fault_point
from ragcun.store import CollectionParams
from ragcun.workspace import Workspace

if TYPE_CHECKING:  # the model imports torch; annotations alone need not
    from ragcun.model import GaussianEmbedder


VERIFY_SAMPLE = 64


@dataclass
class ReindexResult:
    collection: str
    model_version: str
    physical_name: str
    previous_physical_name: str | None
    chunks_embedded: int
    chunks_total: int
    switched: bool

    def to_dict(self) -> dict:
        return asdict(self)


def logical_chunk_ids(session: Session, name: str) -> list[str]:
    return list(
        session.scalars(select(Chunk.id).join(Document).where(Document.collection_name == name).order_by(Chunk.id))
    )


def member_chunk_ids(session: Session, collection_id: int) -> set[str]:
    return set(session.scalars(select(CollectionChunk.chunk_id).where(CollectionChunk.collection_id == collection_id)))


def build(
    ws: Workspace,
    session: Session,
    target: Collection,
    embedder: GaussianEmbedder,
    batch_size: int,
    run_id: int,
    path: str = "reindex",
) -> int:
    """Bring ``target`` up to date with the logical collection's chunks; returns how many were embedded."""
    wanted = logical_chunk_ids(session, target.name)
    present = member_chunk_ids(session, target.id)
    # Points of chunks deleted since an interrupted build started must not survive into the switch.
    wanted_set = set(wanted)
    stale = [str(point.id) for point in ws.store.scroll(target.physical_name) if str(point.id) not in wanted_set]
    if stale:
        ws.store.delete(target.physical_name, stale)
    todo = [cid for cid in wanted if cid not in present]
    with tqdm(
        total=len(wanted), initial=len(wanted) - len(todo), desc=f"reindex {target.name}", unit="chunk", disable=None
    ) as progress:
        for start in range(0, len(todo), batch_size):
            batch = session.scalars(select(Chunk).where(Chunk.id.in_(todo[start : start + batch_size]))).all()
            write_points(ws, session, target, embedder, [ChunkPoint.of(c, run_id) for c in batch], path)
            progress.update(len(batch))
    ws.store.optimize(target.physical_name)
    return len(todo)


def verify(ws: Workspace, session: Session, target: Collection) -> None:
    """Point count equals chunk count, and a sample of stored norms equals the vectors' norms."""
    expected = len(logical_chunk_ids(session, target.name))
    points = ws.store.count(target.physical_name)
    members = member_chunk_ids(session, target.id)
    if not points == len(members) == expected:
        raise VerificationError(
            f"{target.physical_name} holds {points} points and {len(members)} catalog chunks; "
            f"the collection has {expected} chunks"
        )
    sample = random.Random(0).sample(sorted(members), min(VERIFY_SAMPLE, len(members)))
    for record in ws.store.retrieve(target.physical_name, sample, with_vectors=True):
        norm = float(np.linalg.norm(np.asarray(record.vector, dtype=np.float64)))
        payload = record.payload or {}
        if not norms_match(payload["norm"], norm):
            raise VerificationError(
                f"{target.physical_name}: point {record.id} has norm {norm:.6f} but its payload "
                f"says {payload['norm']:.6f}"
            )


def switch(ws: Workspace, session: Session, name: str, target: Collection, path: str = "reindex") -> Collection | None:
    """Make ``target`` the active collection of ``name``; the previous one is retired, not dropped."""
    previous = session.scalar(select(Collection).where(Collection.name == name, Collection.status == "active"))
    now = utcnow()
    if previous is not None and previous.id != target.id:
        previous.status, previous.status_changed_at = "retired", now
    target.status, target.status_changed_at = "active", now
    session.commit()
    fault_point(f"{path}.after_switch")  # a re-run re-asserts the alias
    ws.store.set_alias(name, target.physical_name)
    return previous if previous is not None and previous.id != target.id else None


def copy_with_bm25(
    ws: Workspace, session: Session, source: Collection, target: Collection, batch_size: int, run_id: int
) -> int:
    """Copy every point of ``source`` into the hybrid ``target``: dense vectors as stored, BM25 vectors from the text.

    Nothing is re-embedded; the memberships (with their norms) are committed batch by batch. Returns
    how many points were copied now (a resumed copy skips those already there).
    """
    present = member_chunk_ids(session, target.id)
    batch: list = []
    copied = 0

    def flush() -> None:
        ws.store.upsert(
            target.physical_name, [r.id for r in batch], np.array([r.vector for r in batch]), [r.payload for r in batch]
        )
        for record in batch:
            session.merge(
                CollectionChunk(
                    collection_id=target.id, chunk_id=str(record.id), ingest_run_id=run_id, norm=record.payload["norm"]
                )
            )
        session.commit()
        nonlocal copied
        copied += len(batch)
        batch.clear()

    total = ws.store.count(source.physical_name)
    with tqdm(total=total, desc=f"bm25 {target.name}", unit="chunk", disable=None) as progress:
        for record in ws.store.scroll(source.physical_name, with_vectors=True, batch_size=batch_size):
            progress.update(1)
            if str(record.id) in present:
                continue
            batch.append(record)
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
    ws.store.optimize(target.physical_name)
    return copied


def add_bm25(ws: Workspace, session: Session, active: Collection, batch_size: int) -> ReindexResult:
    """Rebuild a legacy (dense-only) collection as a hybrid one with the same vectors, then switch to it."""
    params = CollectionParams.from_settings(active.settings)
    physical = f"{physical_name(active.name, active.model_version.fingerprint)}-hybrid"
    target = create_collection(
        ws, session, active.name, active.model_version, params, status="building", physical=physical
    )
    carry_indexes(ws, active, target)

    def fill(run_id: int) -> tuple[int, int]:
        return copy_with_bm25(ws, session, active, target, batch_size, run_id), 0

    return _build_verify_switch(ws, session, target, fill, "reindex", [f"store:{active.physical_name}"])


def reindex(ws: Workspace, name: str, embedder: GaussianEmbedder | None = None, batch_size: int = 128) -> ReindexResult:
    """Rebuild collection ``name`` with ``embedder`` from the catalog's chunk text, then switch to it.

    Re-running after a crash resumes the build; re-running after the switch only re-asserts it.
    An older build by the same model (a retired version) is brought up to date instead of rebuilt.
    With the collection's own model (or ``embedder=None``), a collection made before hybrid search
    gets its BM25 vectors: its points are copied, dense vectors as they are, into a hybrid collection.
    """
    ws.open_store()  # first: opening settles what a killed command left
    with ws.catalog.session() as session:
        active = require_collection(session, name)
        if embedder is None or embedder.fingerprint == active.model_version.fingerprint:
            if not ws.store.shape(active.physical_name).hybrid:
                return add_bm25(ws, session, active, batch_size)
            if embedder is None:
                total = len(member_chunk_ids(session, active.id))
                return ReindexResult(
                    name, active.model_version.fingerprint, active.physical_name, None, 0, total, switched=False
                )
        version = register_model_version(session, embedder, ws.models_dir)
        session.commit()
        if active.model_version_id == version.id:
            ws.store.set_alias(name, active.physical_name)  # a crash may have come between catalog and alias
            total = len(member_chunk_ids(session, active.id))
            return ReindexResult(name, version.fingerprint, active.physical_name, None, 0, total, switched=False)
        # σ and other calibrations belong to the old model: only the index params carry over.
        params = CollectionParams.from_settings(active.settings, dim=embedder.dim)
        target = create_collection(ws, session, name, version, params, status="building")
        fault_point("reindex.after_create")
        carry_indexes(ws, active, target)
        return _build_verify_switch(
            ws,
            session,
            target,
            _embedding(ws, session, target, embedder, batch_size, "reindex"),
            "reindex",
            [f"catalog:{target.name}"],
        )


def rollback(ws: Workspace, name: str, batch_size: int = 128) -> ReindexResult:
    """Re-activate the most recently retired version of ``name``.

    Documents ingested since it was retired are embedded into it first, so a rollback loses nothing.
    """
    ws.open_store()  # first: opening settles what a killed command left
    with ws.catalog.session() as session:
        require_collection(session, name)
        previous = session.scalar(
            select(Collection)
            .where(Collection.name == name, Collection.status == "retired")
            .order_by(Collection.status_changed_at.desc(), Collection.id.desc())
        )
        if previous is None:
            raise RagcunError(f"collection {name!r} has no retired version to roll back to")
        # It stays "retired" until the switch, so a killed rollback is found (and resumed) by the next one.
        embedder = ws.embedder_for(previous)
        return _build_verify_switch(
            ws,
            session,
            previous,
            _embedding(ws, session, previous, embedder, batch_size, "rollback"),
            "rollback",
            [f"catalog:{previous.name}"],
        )


def _embedding(
    ws: Workspace, session: Session, target: Collection, embedder: GaussianEmbedder, batch_size: int, path: str
) -> Callable[[int], tuple[int, int]]:
    def fill(run_id: int) -> tuple[int, int]:
        embedded = build(ws, session, target, embedder, batch_size, run_id, path)
        return embedded, embedded

    return fill


def _build_verify_switch(
    ws: Workspace,
    session: Session,
    target: Collection,
    fill: Callable[[int], tuple[int, int]],
    kind: str,
    inputs: list[str],
) -> ReindexResult:
    """Run ``fill(run_id)`` (points written, of which embedded) into ``target``, verify it, switch to it."""
    run = start_run(session, kind, target, inputs)
    try:
        written, embedded = fill(run.id)
        fault_point(f"{kind}.after_build")
        verify(ws, session, target)
        fault_point(f"{kind}.after_verify")
        previous = switch(ws, session, target.name, target, kind)
    except BaseException as exc:
        session.rollback()
        finish_run(session, run, "failed", errors=[{"uri": None, "line": None, "error": repr(exc)}])
        raise
    total = len(member_chunk_ids(session, target.id))
    finish_run(session, run, "completed", counts={"chunks_written": written, "chunks": total})
    return ReindexResult(
        target.name,
        target.model_version.fingerprint,
        target.physical_name,
        previous.physical_name if previous else None,
        embedded,
        total,
        switched=True,
    )
