"""Consistency check between the catalog (the source of truth) and the vector store."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from qdrant_client import models
from sqlalchemy import select

from ragcun.catalog.models import Chunk, Collection, CollectionChunk
from ragcun.catalog.ops import require_collection, stored_chunk_payload
from ragcun.versioning import NORM_TOLERANCE, embed_chunks
from ragcun.workspace import Workspace

PROBLEM_KINDS = ("missing_points", "orphan_points", "payload_mismatches", "wrong_norms", "shape_mismatches")


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
    repaired: dict[str, int] = field(default_factory=dict)

    @property
    def problems(self) -> int:
        return sum(len(getattr(self, kind)) for kind in PROBLEM_KINDS)

    def to_dict(self) -> dict:
        counts = {kind: len(getattr(self, kind)) for kind in PROBLEM_KINDS}
        examples = {kind: getattr(self, kind)[:5] for kind in PROBLEM_KINDS if getattr(self, kind)}
        return {"name": self.name, "physical_name": self.physical_name, "points": self.points, "chunks": self.chunks,
                **counts, "problems": self.problems, "examples": examples, "repaired": self.repaired}


def _inspect(ws: Workspace, session, collection: Collection) -> CollectionReport:
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
    members = {m.chunk_id: m for m in session.scalars(
        select(CollectionChunk).where(CollectionChunk.collection_id == collection.id))}
    chunks = {c.id: c for c in session.scalars(select(Chunk).where(Chunk.id.in_(list(members))))} if members else {}
    report.chunks = len(members)
    seen = set()
    for record in ws.store.scroll(collection.physical_name, with_vectors=True, batch_size=512):
        seen.add(record.id)
        chunk = chunks.get(record.id)
        if chunk is None:
            report.orphan_points.append(record.id)
            continue
        payload, norm = record.payload or {}, float(np.linalg.norm(record.vector))
        if (payload.get("text") != chunk.text or payload.get("doc_id") != chunk.document.doc_id
                or payload.get("chunk") != chunk.ordinal or payload.get("model_version") != version.fingerprint):
            report.payload_mismatches.append(record.id)
        elif (not isinstance(payload.get("norm"), (int, float))
              or abs(payload["norm"] - norm) > NORM_TOLERANCE * max(1.0, norm)
              or abs(members[record.id].norm - norm) > NORM_TOLERANCE * max(1.0, norm)):
            report.wrong_norms.append(record.id)
    report.points = len(seen)
    report.missing_points = sorted(set(members) - seen)
    return report


def check(ws: Workspace, name: str | None = None, repair: bool = False) -> list[CollectionReport]:
    """Compare every active collection (or ``name``'s) with the store; optionally repair from the catalog.

    Missing points are re-embedded with the collection's model; orphans are deleted; points with a
    wrong payload or norm are rewritten from their stored vector and the catalog. A wrong dimension
    or distance cannot be repaired in place: it needs ``ragcun reindex``.
    """
    reports = []
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


def _repair(ws: Workspace, session, collection: Collection, report: CollectionReport) -> None:
    physical = collection.physical_name
    if report.orphan_points:
        ws.store.delete(physical, report.orphan_points)
    if report.missing_points:
        embed_chunks(ws, session, collection, ws.embedder_for(collection), report.missing_points, ingest_run=None)
    rewrite = report.payload_mismatches + report.wrong_norms
    if rewrite:
        members = {m.chunk_id: m for m in session.scalars(select(CollectionChunk).where(
            CollectionChunk.collection_id == collection.id, CollectionChunk.chunk_id.in_(rewrite)))}
        records = ws.store.retrieve(physical, rewrite, with_vectors=True)
        vectors = np.array([r.vector for r in records], dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1).astype(float)
        payloads = []
        for record, norm in zip(records, norms):
            member = members[record.id]
            member.norm = float(norm)
            payloads.append(stored_chunk_payload(session.get(Chunk, record.id), float(norm),
                                                 collection.model_version.fingerprint, member.ingest_run_id))
        ws.store.upsert(physical, [r.id for r in records], vectors, payloads)
        session.commit()
    report.repaired = {"orphans_deleted": len(report.orphan_points), "points_restored": len(report.missing_points),
                       "points_rewritten": len(rewrite)}
