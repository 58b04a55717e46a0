"""Model versions bound to collections: reindex with no downtime, rollback, and garbage collection.

A logical collection name points at exactly one *active* physical collection. A reindex builds a
new physical collection (status ``building``) from the chunk text in the catalog, verifies it,
then switches the pointer in one catalog transaction and, on engines with aliases, in one
``update_collection_aliases`` request. Until that switch every query is served by the old
collection. Each embedded batch is committed, so a killed reindex resumes where it stopped.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import asdict, dataclass
from datetime import timedelta

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session
from tqdm.auto import tqdm

from ragcun import __version__
from ragcun.catalog.models import Chunk, Collection, CollectionChunk, Document, IngestRun, utcnow
from ragcun.catalog.ops import register_model_version, require_collection, stored_chunk_payload
from ragcun.errors import InvalidInputError, RagcunError, VerificationError
from ragcun.store import CollectionParams
from ragcun.workspace import Workspace

logger = logging.getLogger(__name__)

VERIFY_SAMPLE = 64
NORM_TOLERANCE = 1e-4


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
    return list(session.scalars(select(Chunk.id).join(Document).where(Document.collection_name == name)
                                .order_by(Chunk.id)))


def member_chunk_ids(session: Session, collection_id: int) -> set[str]:
    return set(session.scalars(select(CollectionChunk.chunk_id).where(CollectionChunk.collection_id == collection_id)))


def embed_chunks(ws: Workspace, session: Session, collection: Collection, embedder, chunk_ids: list[str],
                 ingest_run: int | None) -> None:
    """Embed catalog chunks with ``embedder`` and write them to ``collection``: store first, then catalog."""
    chunks = session.scalars(select(Chunk).where(Chunk.id.in_(chunk_ids))).all()
    vectors = embedder.encode([c.text for c in chunks], show_progress_bar=False)
    norms = np.linalg.norm(vectors, axis=1).astype(float)
    fingerprint = collection.model_version.fingerprint
    payloads = [stored_chunk_payload(c, n, fingerprint, ingest_run) for c, n in zip(chunks, norms)]
    ws.store.upsert(collection.physical_name, [c.id for c in chunks], vectors, payloads)
    for chunk, norm in zip(chunks, norms):
        session.merge(CollectionChunk(collection_id=collection.id, chunk_id=chunk.id, ingest_run_id=ingest_run,
                                      norm=float(norm)))
    session.commit()


def build(ws: Workspace, session: Session, target: Collection, embedder, batch_size: int, run_id: int) -> int:
    """Bring ``target`` up to date with the logical collection's chunks; returns how many were embedded."""
    wanted = logical_chunk_ids(session, target.name)
    present = member_chunk_ids(session, target.id)
    # Points of chunks deleted since an interrupted build started must not survive into the switch.
    wanted_set = set(wanted)
    stale = [point.id for point in ws.store.scroll(target.physical_name) if point.id not in wanted_set]
    if stale:
        ws.store.delete(target.physical_name, stale)
    todo = [cid for cid in wanted if cid not in present]
    with tqdm(total=len(wanted), initial=len(wanted) - len(todo), desc=f"reindex {target.name}", unit="chunk",
              disable=None) as progress:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            embed_chunks(ws, session, target, embedder, batch, run_id)
            progress.update(len(batch))
    ws.store.optimize(target.physical_name)
    return len(todo)


def verify(ws: Workspace, session: Session, target: Collection) -> None:
    """Point count equals chunk count, and a sample of stored norms equals the vectors' norms."""
    expected = len(logical_chunk_ids(session, target.name))
    points = ws.store.count(target.physical_name)
    members = len(member_chunk_ids(session, target.id))
    if not points == members == expected:
        raise VerificationError(f"{target.physical_name} holds {points} points and {members} catalog chunks; "
                                f"the collection has {expected} chunks")
    sample = random.Random(0).sample(sorted(member_chunk_ids(session, target.id)), min(VERIFY_SAMPLE, members))
    for record in ws.store.retrieve(target.physical_name, sample, with_vectors=True):
        norm = float(np.linalg.norm(record.vector))
        if abs(norm - record.payload["norm"]) > NORM_TOLERANCE * max(1.0, norm):
            raise VerificationError(f"{target.physical_name}: point {record.id} has norm {norm:.6f} but its payload "
                                    f"says {record.payload['norm']:.6f}")


def switch(ws: Workspace, session: Session, name: str, target: Collection) -> Collection | None:
    """Make ``target`` the active collection of ``name``; the previous one is retired, not dropped."""
    previous = session.scalar(select(Collection).where(Collection.name == name, Collection.status == "active"))
    now = utcnow()
    if previous is not None and previous.id != target.id:
        previous.status, previous.status_changed_at = "retired", now
    target.status, target.status_changed_at = "active", now
    session.commit()
    ws.store.set_alias(name, target.physical_name)
    return previous if previous is not None and previous.id != target.id else None


def _target_collection(ws: Workspace, session: Session, active: Collection, embedder, version_id: int) -> Collection:
    physical = f"{active.name}-{embedder.fingerprint[:12]}"
    target = session.scalar(select(Collection).where(Collection.physical_name == physical))
    if target is None:
        params = CollectionParams.from_settings(active.settings, dim=embedder.dim)
        target = Collection(name=active.name, physical_name=physical, engine=ws.store.engine,
                            model_version_id=version_id, status="building", status_changed_at=utcnow(),
                            settings=params.to_dict())
        session.add(target)
        session.commit()
    elif target.status == "retired":  # an older build by this model: bring it up to date instead of rebuilding
        target.status, target.status_changed_at = "building", utcnow()
        session.commit()
    if not ws.store.collection_exists(physical):
        ws.store.create_collection(physical, CollectionParams.from_settings(target.settings))
    return target


def reindex(ws: Workspace, name: str, embedder, batch_size: int = 128) -> ReindexResult:
    """Rebuild collection ``name`` with ``embedder`` from the catalog's chunk text, then switch to it.

    Re-running after a crash resumes the build; re-running after the switch only re-asserts it.
    """
    with ws.catalog.session() as session:
        active = require_collection(session, name)
        version = register_model_version(session, embedder, ws.models_dir)
        session.commit()
        if active.model_version_id == version.id:
            ws.store.set_alias(name, active.physical_name)  # a crash may have come between catalog and alias
            total = len(member_chunk_ids(session, active.id))
            return ReindexResult(name, version.fingerprint, active.physical_name, None, 0, total, switched=False)
        target = _target_collection(ws, session, active, embedder, version.id)
        return _build_verify_switch(ws, session, target, embedder, batch_size, "reindex")


def _build_verify_switch(ws: Workspace, session: Session, target: Collection, embedder, batch_size: int,
                         kind: str) -> ReindexResult:
    run = IngestRun(kind=kind, collection_name=target.name, collection_id=target.id,
                    model_version_id=target.model_version_id, status="running", pid=os.getpid(),
                    inputs=[f"catalog:{target.name}"], ragcun_version=__version__)
    session.add(run)
    session.commit()
    try:
        embedded = build(ws, session, target, embedder, batch_size, run.id)
        verify(ws, session, target)
        previous = switch(ws, session, target.name, target)
    except BaseException as exc:
        session.rollback()
        run.status, run.finished_at, run.errors = "failed", utcnow(), [{"uri": None, "line": None, "error": repr(exc)}]
        session.commit()
        raise
    total = len(member_chunk_ids(session, target.id))
    run.status, run.finished_at, run.counts = "completed", utcnow(), {"chunks_written": embedded, "chunks": total}
    session.commit()
    return ReindexResult(target.name, target.model_version.fingerprint, target.physical_name,
                         previous.physical_name if previous else None, embedded, total, switched=True)


def rollback(ws: Workspace, name: str, batch_size: int = 128) -> ReindexResult:
    """Re-activate the most recently retired version of ``name``.

    Documents ingested since it was retired are embedded into it first, so a rollback loses nothing.
    """
    with ws.catalog.session() as session:
        require_collection(session, name)
        previous = session.scalar(select(Collection).where(Collection.name == name, Collection.status == "retired")
                                  .order_by(Collection.status_changed_at.desc(), Collection.id.desc()))
        if previous is None:
            raise RagcunError(f"collection {name!r} has no retired version to roll back to")
        embedder = ws.embedder_for(previous)
        previous.status = "building"
        session.commit()
        return _build_verify_switch(ws, session, previous, embedder, batch_size, "rollback")


def gc(ws: Workspace, name: str | None = None, older_than_days: float | None = None, keep: int | None = None,
       dry_run: bool = False) -> list[dict]:
    """Drop retired physical collections older than an age, or beyond the ``keep`` most recent per name."""
    if older_than_days is None and keep is None:
        raise InvalidInputError("say what to collect: an age (--older-than) or a count to keep (--keep)")
    with ws.catalog.session() as session:
        query = select(Collection).where(Collection.status == "retired")
        if name:
            query = query.where(Collection.name == name)
        retired = session.scalars(query.order_by(Collection.name, Collection.status_changed_at.desc())).all()
        doomed, seen = [], {}
        cutoff = utcnow() - timedelta(days=older_than_days) if older_than_days is not None else None
        for collection in retired:
            rank = seen[collection.name] = seen.get(collection.name, 0) + 1
            too_old = cutoff is not None and (collection.status_changed_at or collection.created_at) < cutoff
            if too_old or (keep is not None and rank > keep):
                doomed.append(collection)
        dropped = [{"name": c.name, "physical_name": c.physical_name, "model_version": c.model_version.fingerprint,
                    "retired_at": c.status_changed_at} for c in doomed]
        if not dry_run:
            for collection in doomed:
                ws.store.drop_collection(collection.physical_name)
                for run in session.scalars(select(IngestRun).where(IngestRun.collection_id == collection.id)):
                    run.collection_id = None
                session.delete(collection)
            session.commit()
        return dropped
