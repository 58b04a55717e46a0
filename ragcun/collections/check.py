"""Check and repair: compare the catalog (the source of truth) with the vector store, and mend the store from it.

Repair never works against the catalog. A point whose chunk the catalog holds is never deleted: a missing
membership row is restored instead. A point whose vector, norm or payload disagrees is re-embedded from its
chunk's text (through the base-vector store), never "fixed" by adopting what the store holds. A physical
collection that is gone is rebuilt from the catalog, which holds every chunk's text. The only thing a repair
deletes without asking is what the catalog can rebuild; points no chunk of the collection claims (data the
catalog cannot rebuild) go only with ``yes=True`` (``ragcun check --repair --yes``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from qdrant_client import models
from sqlalchemy import select
from sqlalchemy.orm import Session

from ragcun.catalog.models import Chunk, Collection, CollectionChunk, Document
from ragcun.catalog.ops import require_collection
from ragcun.collections.base_vectors import (
    base_key_of,
    base_matrix,
    delete_base_vectors,
    fresh_vectors,
    load_base_vectors,
    missing_base_vectors,
    orphan_base_vectors,
)
from ragcun.collections.create import create_collection
from ragcun.collections.write import ChunkPoint, norms_match, write_points
from ragcun.errors import ModelMismatchError
from ragcun.faults import fault_point
from ragcun.store import CollectionParams
from ragcun.workspace import Workspace

PROBLEM_KINDS = (
    "missing_collection",
    "missing_points",
    "missing_memberships",
    "orphan_points",
    "payload_mismatches",
    "wrong_norms",
    "wrong_vectors",
    "shape_mismatches",
    "missing_base_vectors",
    "orphan_base_vectors",
)
# Chunks whose stored vector is compared with a fresh embedding of their text, per check (``full``: all).
VERIFY_SAMPLE = 64
# Relative distance between a stored vector and a fresh embedding of its text above which it is wrong:
# an embedding through a float16 base vector reproduces encode() to about 1e-3.
VECTOR_TOLERANCE = 1e-2
# Chunks re-embedded and upserted together by a repair.
REPAIR_BATCH = 256


@dataclass
class CollectionReport:
    name: str
    physical_name: str
    points: int = 0
    chunks: int = 0  # the chunks of the collection's documents in the catalog: what the store must hold
    missing_collection: list[str] = field(default_factory=list)  # the physical collection, gone from the store
    missing_points: list[str] = field(default_factory=list)
    # Chunks of the collection's documents without their membership row (their points are kept).
    missing_memberships: list[str] = field(default_factory=list)
    # Points no chunk of the collection's documents claims: the catalog cannot rebuild them.
    orphan_points: list[str] = field(default_factory=list)
    payload_mismatches: list[str] = field(default_factory=list)
    wrong_norms: list[str] = field(default_factory=list)
    # Points whose vector differs from a fresh embedding of their chunk (a sample of them, all with ``full``).
    wrong_vectors: list[str] = field(default_factory=list)
    shape_mismatches: list[str] = field(default_factory=list)
    # The base-vector store (ragcun.collections.base_vectors): chunk ids without a base vector, and
    # sha256s of base vectors (of this collection's base encoder) that no chunk has any more.
    missing_base_vectors: list[str] = field(default_factory=list)
    orphan_base_vectors: list[str] = field(default_factory=list)
    vectors_verified: int = 0
    repaired: dict[str, int] = field(default_factory=dict)

    @property
    def problems(self) -> int:
        return sum(len(getattr(self, kind)) for kind in PROBLEM_KINDS)

    def to_dict(self) -> dict:
        counts = {kind: len(getattr(self, kind)) for kind in PROBLEM_KINDS}
        examples = {kind: getattr(self, kind)[:5] for kind in PROBLEM_KINDS if getattr(self, kind)}
        return {
            "name": self.name,
            "physical_name": self.physical_name,
            "points": self.points,
            "chunks": self.chunks,
            **counts,
            "problems": self.problems,
            "vectors_verified": self.vectors_verified,
            "examples": examples,
            "repaired": self.repaired,
        }


def _catalog_chunks(session: Session, collection: Collection) -> dict[str, Chunk]:
    """Every chunk of the documents of ``collection``'s logical name: what its active store must hold."""
    query = select(Chunk).join(Document, Chunk.document_id == Document.id)
    return {c.id: c for c in session.scalars(query.where(Document.collection_name == collection.name))}


def _members(session: Session, collection: Collection) -> dict[str, CollectionChunk]:
    rows = session.scalars(select(CollectionChunk).where(CollectionChunk.collection_id == collection.id))
    return {m.chunk_id: m for m in rows}


def _inspect(
    ws: Workspace, session: Session, collection: Collection, full: bool, sample: int, rng: random.Random
) -> CollectionReport:
    report = CollectionReport(collection.name, collection.physical_name)
    version = collection.model_version
    chunks = _catalog_chunks(session, collection)
    members = _members(session, collection)
    report.chunks = len(chunks)
    report.missing_memberships = sorted(set(chunks) - set(members))
    key = base_key_of(version.path)
    report.missing_base_vectors = missing_base_vectors(session, collection.id, key)
    report.orphan_base_vectors = orphan_base_vectors(session, key)
    if not ws.store.collection_exists(collection.physical_name):
        report.missing_collection.append(collection.physical_name)
        report.missing_points = sorted(chunks)
        return report
    shape = ws.store.shape(collection.physical_name)
    if shape.dim != version.dim:
        report.shape_mismatches.append(f"dim {shape.dim}, model {version.fingerprint[:12]} makes {version.dim}")
    if shape.distance != models.Distance.EUCLID:
        report.shape_mismatches.append(f"distance {shape.distance.value}, expected Euclid")
    seen, vectors = set(), {}
    for record in ws.store.scroll(collection.physical_name, with_vectors=True, batch_size=512):
        point_id = str(record.id)
        seen.add(point_id)
        chunk = chunks.get(point_id)
        if chunk is None:
            report.orphan_points.append(point_id)
            continue
        vector = np.asarray(record.vector, dtype=np.float32)
        payload, norm = record.payload or {}, float(np.linalg.norm(vector.astype(np.float64)))
        member = members.get(point_id)
        if (
            payload.get("text") != chunk.text
            or payload.get("doc_id") != chunk.document.doc_id
            or payload.get("chunk") != chunk.ordinal
            or payload.get("model_version") != version.fingerprint
        ):
            report.payload_mismatches.append(point_id)
        elif (
            not isinstance(payload.get("norm"), (int, float))
            or not norms_match(payload["norm"], norm)
            or (member is not None and not norms_match(member.norm, norm))
        ):
            report.wrong_norms.append(point_id)
        else:
            vectors[point_id] = vector
    report.points = len(seen)
    report.missing_points = sorted(set(chunks) - seen)
    if not report.shape_mismatches:
        report.wrong_vectors, report.vectors_verified = _verify_vectors(
            ws, session, collection, chunks, vectors, full, sample, rng
        )
    return report


def _verify_vectors(
    ws: Workspace,
    session: Session,
    collection: Collection,
    chunks: dict[str, Chunk],
    vectors: dict[str, np.ndarray],
    full: bool,
    sample: int,
    rng: random.Random,
) -> tuple[list[str], int]:
    """The ids among ``vectors`` (points otherwise right) whose vector is not what their chunk's text embeds to.

    Without ``full``, a random sample of ``sample`` points among those whose base vector is stored,
    recomputed by the model's head alone (:class:`~ragcun.model.embedder.ModelHead`): no encoder is
    loaded. With ``full``, every point, through the model (chunks without a base vector go through
    the encoder; nothing is stored).
    """
    version = collection.model_version
    key = base_key_of(version.path)
    ids = sorted(vectors)
    if not full:
        missing = set(missing_base_vectors(session, collection.id, key))
        ids = [i for i in ids if i not in missing]
        ids = sorted(rng.sample(ids, min(sample, len(ids))))
    if not ids:
        return [], 0
    if full:
        embedder = ws.embedder_for(collection)
    else:  # the head alone: no base encoder is loaded, let alone run
        from ragcun.model.embedder import ModelHead

        head = ModelHead(version.path)
        if head.fingerprint != version.fingerprint:
            raise ModelMismatchError(
                f"{version.path} holds model {head.fingerprint[:12]}, but the catalog records "
                f"{version.fingerprint[:12]} for collection {collection.name!r}"
            )
    wrong: list[str] = []
    for start in range(0, len(ids), REPAIR_BATCH):
        batch = ids[start : start + REPAIR_BATCH]
        shas = [chunks[i].sha256 for i in batch]
        if full:
            fresh = fresh_vectors(session, embedder, [chunks[i].text for i in batch], shas)
        else:
            base = load_base_vectors(session, key, shas)
            fresh = head.apply(np.stack([base[sha] for sha in shas]).astype(np.float32))
        stored = np.stack([vectors[i] for i in batch])
        gap = np.linalg.norm(stored - fresh, axis=1) / np.maximum(1.0, np.linalg.norm(fresh, axis=1))
        wrong.extend(i for i, g in zip(batch, gap, strict=True) if g > VECTOR_TOLERANCE)
    return wrong, len(ids)


def check(
    ws: Workspace,
    name: str | None = None,
    repair: bool = False,
    *,
    full: bool = False,
    yes: bool = False,
    sample: int = VERIFY_SAMPLE,
    seed: int | None = None,
) -> list[CollectionReport]:
    """Compare every active collection (or ``name``'s) with the store; optionally repair from the catalog.

    Args:
        repair: Mend the store (and the catalog's memberships and norms) from the catalog's chunks:
            rebuild a missing physical collection, restore missing points and memberships, re-embed
            points whose payload, norm or vector is wrong, encode missing base vectors and delete
            base vectors no chunk has. A wrong dimension or distance needs ``ragcun reindex``.
        full: Verify every stored vector against a fresh embedding of its chunk (default: a sample).
        yes: Let the repair delete points no chunk of the collection claims (the catalog cannot
            rebuild them); without it they are kept and reported.
        sample: How many vectors a check without ``full`` verifies.
        seed: Seed of the sample (default: a different sample each time).
    """
    reports = []
    rng = random.Random(seed)
    ws.open_store()  # first: opening settles what a killed command left
    with ws.catalog.session() as session:
        query = select(Collection).where(Collection.status == "active")
        if name:
            query = query.where(Collection.name == name)
        collections = session.scalars(query.order_by(Collection.name)).all()
        if name and not collections:
            require_collection(session, name)
        for collection in collections:
            report = _inspect(ws, session, collection, full, sample, rng)
            if repair and report.problems and not report.shape_mismatches:
                _repair(ws, session, collection, report, yes)
                repaired = report.repaired
                # Verify what was rewritten, and a sample (or all) of the rest.
                report = _inspect(ws, session, collection, full, sample, rng)
                report.repaired = repaired
            reports.append(report)
    return reports


def _repair(ws: Workspace, session: Session, collection: Collection, report: CollectionReport, yes: bool) -> None:
    if report.missing_collection:
        params = CollectionParams.from_settings(collection.settings, dim=collection.model_version.dim)
        create_collection(
            ws, session, collection.name, collection.model_version, params, "active", collection.physical_name
        )
        ws.store.set_alias(collection.name, collection.physical_name)
    if report.orphan_points and yes:
        ws.store.delete(collection.physical_name, report.orphan_points)
        fault_point("repair.after_orphans")
    # Everything else is rewritten from the catalog's chunk text: the point, its payload and norm, its membership.
    rewrite = sorted(
        set(report.missing_points)
        | set(report.missing_memberships)
        | set(report.payload_mismatches)
        | set(report.wrong_norms)
        | set(report.wrong_vectors)
    )
    _rewrite_points(ws, session, collection, rewrite)
    if report.orphan_base_vectors:
        delete_base_vectors(session, base_key_of(collection.model_version.path), report.orphan_base_vectors)
        session.commit()
    still_missing = missing_base_vectors(session, collection.id, base_key_of(collection.model_version.path))
    if still_missing:  # rewritten points above already brought theirs back
        chunks = [session.get_one(Chunk, cid) for cid in still_missing]
        base_matrix(session, ws.embedder_for(collection), [c.text for c in chunks], [c.sha256 for c in chunks])
        session.commit()
    rewritten = set(report.payload_mismatches) | set(report.wrong_norms) | set(report.wrong_vectors)
    report.repaired = {
        "collection_rebuilt": len(report.missing_collection),
        "points_restored": len(report.missing_points),
        "memberships_restored": len(report.missing_memberships),
        "points_reembedded": len(rewritten),
        "orphans_deleted": len(report.orphan_points) if yes else 0,
        "orphans_kept": 0 if yes else len(report.orphan_points),
        "base_vectors_encoded": len(still_missing),
        "base_vectors_deleted": len(report.orphan_base_vectors),
    }


def _rewrite_points(ws: Workspace, session: Session, collection: Collection, chunk_ids: Sequence[str]) -> None:
    """Embed the chunks ``chunk_ids`` from their text, upsert their points and commit their memberships."""
    if not chunk_ids:
        return
    members = _members(session, collection)
    embedder = ws.embedder_for(collection)
    for start in range(0, len(chunk_ids), REPAIR_BATCH):
        points = []
        for cid in chunk_ids[start : start + REPAIR_BATCH]:
            chunk = session.get_one(Chunk, cid)
            member = members.get(cid)
            # A restored membership keeps its lineage: the run that last wrote the document.
            run = member.ingest_run_id if member is not None else chunk.document.ingest_run_id
            points.append(ChunkPoint.of(chunk, run))
        write_points(ws, session, collection, embedder, points, "repair")
