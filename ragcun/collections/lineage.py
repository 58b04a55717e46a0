"""Lineage: where a chunk (a search hit) came from: its document, source file and hash, run and model version."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from sqlalchemy import select

from ragcun.catalog.models import Chunk, Collection, CollectionChunk, IngestRun
from ragcun.errors import ChunkNotFound
from ragcun.workspace import Workspace


@dataclass
class ChunkLineage:
    chunk_id: str
    ordinal: int
    sha256: str
    tokens: int
    text: str
    document: dict  # doc_id, title, sha256, metadata, collection
    source: dict  # uri, sha256, size, mtime
    # Each physical collection holding the chunk: physical_name, status, model_version, base_model, norm,
    # ingest_run, ingest_run_started_at.
    collections: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def chunk_lineage(ws: Workspace, chunk_id: str) -> ChunkLineage:
    with ws.catalog.session() as session:
        chunk = session.get(Chunk, chunk_id)
        if chunk is None:
            raise ChunkNotFound(f"no chunk {chunk_id} in the catalog")
        document, source = chunk.document, chunk.document.source
        memberships = session.execute(
            select(Collection, CollectionChunk)
            .join(CollectionChunk, CollectionChunk.collection_id == Collection.id)
            .where(CollectionChunk.chunk_id == chunk_id)
        ).all()
        runs = {
            run.id: run
            for run in session.scalars(
                select(IngestRun).where(IngestRun.id.in_([m.ingest_run_id for _, m in memberships]))
            )
        }
        return ChunkLineage(
            chunk.id,
            chunk.ordinal,
            chunk.sha256,
            chunk.token_count,
            chunk.text,
            document={
                "doc_id": document.doc_id,
                "title": document.title,
                "sha256": document.sha256,
                "metadata": document.metadata_,
                "collection": document.collection_name,
            },
            source={"uri": source.uri, "sha256": source.sha256, "size": source.size, "mtime": source.mtime},
            collections=[
                {
                    "physical_name": c.physical_name,
                    "status": c.status,
                    "model_version": c.model_version.fingerprint,
                    "base_model": c.model_version.base_model,
                    "norm": m.norm,
                    "ingest_run": m.ingest_run_id,
                    "ingest_run_started_at": runs[m.ingest_run_id].started_at if m.ingest_run_id in runs else None,
                }
                for c, m in memberships
            ],
        )
