"""Check and repair: compare the catalog (the source of truth) with the vector store, and mend the store from it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from qdrant_client import models
from sqlalchemy import select
from sqlalchemy.orm import Session

from ragcun.catalog.models import Chunk, Collection, CollectionChunk
from ragcun.catalog.ops import require_collection
from ragcun.collections.base_vectors import (
    base_key_of,
    base_matrix,
    delete_base_vectors,
    missing_base_vectors,
    orphan_base_vectors,
)
from ragcun.collections.write import ChunkPoint, norms_match, record_norms, store_points, write_points
from ragcun.faults import fault_point
from ragcun.workspace import Workspace

PROBLEM_KINDS = (
    "missing_points",
    "orphan_points",
    "payload_mismatches",
    "wrong_norms",
    "shape_mismatches",
    "missing_base_vectors",
    "orphan_base_vectors",
)


@dataclass
class CollectionReport:
    name: str
    physical_name: str
    points: int = 0
    chunks: int = 0
    missing_points: list[str] = field(default_factory=list)
    orphan_points: list[str] = field(default_factory=list)
    payload_mismatches: list[str] = field(default_factory=list)
    wrong_norms: list[str] = field(default_factory=list)
    shape_mismatches: list[str] = field(default_factory=list)
    # The base-vector store (ragcun.collections.base_vectors): chunk ids without a base vector, and
    # sha256s of base vectors (of this collection's base encoder) that no chunk has any more.
    missing_base_vectors: list[str] = field(default_factory=list)
    orphan_base_vectors: list[str] = field(default_factory=list)
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
            "examples": examples,
            "repaired": self.repaired,
        }


def _inspect(ws: Workspace, session: Session, collection: Collection) -> CollectionReport:
    report = CollectionReport(collection.name, collection.physical_name)
    version = collection.model_version
    if not ws.store.collection_exists(collection.physical_name):
        report.shape_mismatches.append(f"{collection.physical_name} is missing from the store")
        return report
    shape = ws.store.shape(collection.physical_name)
    if shape.dim != version.dim:
        report.shape_mismatches.append(f"dim {shape.dim}, model {version.fingerprint[:12]} makes {version.dim}")
    if shape.distance != models.Distance.EUCLID:
        report.shape_mismatches.append(f"distance {shape.distance.value}, expected Euclid")
    members = {
        m.chunk_id: m
        for m in session.scalars(select(CollectionChunk).where(CollectionChunk.collection_id == collection.id))
    }
    chunks = {c.id: c for c in session.scalars(select(Chunk).where(Chunk.id.in_(list(members))))} if members else {}
    report.chunks = len(members)
    seen = set()
    for record in ws.store.scroll(collection.physical_name, with_vectors=True, batch_size=512):
        point_id = str(record.id)
        seen.add(point_id)
        chunk = chunks.get(point_id)
        if chunk is None:
            report.orphan_points.append(point_id)
            continue
        payload, norm = record.payload or {}, float(np.linalg.norm(np.asarray(record.vector, dtype=np.float64)))
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
            or not norms_match(members[point_id].norm, norm)
        ):
            report.wrong_norms.append(point_id)
    report.points = len(seen)
    report.missing_points = sorted(set(members) - seen)
    key = base_key_of(version.path)
    report.missing_base_vectors = missing_base_vectors(session, collection.id, key)
    report.orphan_base_vectors = orphan_base_vectors(session, key)
    return report


def check(ws: Workspace, name: str | None = None, repair: bool = False) -> list[CollectionReport]:
    """Compare every active collection (or ``name``'s) with the store; optionally repair from the catalog.

    Missing points are re-embedded with the collection's model; orphans are deleted; points with a
    wrong payload or norm are rewritten from their stored vector and the catalog. A wrong dimension
    or distance cannot be repaired in place: it needs ``ragcun reindex``. Chunks without a base vector
    are encoded again (base only); base vectors no chunk has are deleted.
    """
    reports = []
    ws.open_store()  # first: opening settles what a killed command left
    with ws.catalog.session() as session:
        query = select(Collection).where(Collection.status == "active")
        if name:
            query = query.where(Collection.name == name)
        collections = session.scalars(query.order_by(Collection.name)).all()
        if name and not collections:
            require_collection(session, name)
        for collection in collections:
            report = _inspect(ws, session, collection)
            if repair and report.problems and not report.shape_mismatches:
                _repair(ws, session, collection, report)
                repaired = report.repaired
                report = _inspect(ws, session, collection)
                report.repaired = repaired
            reports.append(report)
    return reports


def _repair(ws: Workspace, session: Session, collection: Collection, report: CollectionReport) -> None:
    if report.orphan_points:
        ws.store.delete(collection.physical_name, report.orphan_points)
        fault_point("repair.after_orphans")
    members = {
        m.chunk_id: m
        for m in session.scalars(select(CollectionChunk).where(CollectionChunk.collection_id == collection.id))
    }
    if report.missing_points:
        points = [
            ChunkPoint.of(session.get_one(Chunk, cid), members[cid].ingest_run_id) for cid in report.missing_points
        ]
        write_points(ws, session, collection, ws.embedder_for(collection), points, "repair")
    rewrite = report.payload_mismatches + report.wrong_norms
    if rewrite:
        # The stored vector is right (its norm is recomputed); the payload and the catalog's norm are rewritten.
        records = ws.store.retrieve(collection.physical_name, rewrite, with_vectors=True)
        points = [ChunkPoint.of(session.get_one(Chunk, str(r.id)), members[str(r.id)].ingest_run_id) for r in records]
        vectors = np.array([r.vector for r in records], dtype=np.float32)
        record_norms(session, collection, points, store_points(ws, collection, points, vectors))
        fault_point("repair.after_rewrite_upsert")
        session.commit()
        fault_point("repair.after_rewrite")
    if report.orphan_base_vectors:
        delete_base_vectors(session, base_key_of(collection.model_version.path), report.orphan_base_vectors)
        session.commit()
    still_missing = missing_base_vectors(session, collection.id, base_key_of(collection.model_version.path))
    if still_missing:  # restored points above already brought theirs back
        chunks = [session.get_one(Chunk, cid) for cid in still_missing]
        base_matrix(session, ws.embedder_for(collection), [c.text for c in chunks], [c.sha256 for c in chunks])
        session.commit()
    report.repaired = {
        "orphans_deleted": len(report.orphan_points),
        "points_restored": len(report.missing_points),
        "points_rewritten": len(rewrite),
        "base_vectors_encoded": len(still_missing),
        "base_vectors_deleted": len(report.orphan_base_vectors),
    }
