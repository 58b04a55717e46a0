"""Lineage: where a chunk (a search hit) came from: its document, source file and hash, run and model version."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from sqlalchemy import select

from ragcun.catalog.models import Chunk, Collection, CollectionChunk, IngestRun
from ragcun.errors import ChunkNotFound, InvalidInputError
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


MIN_PREFIX = 4


def find_chunk(session, ref: str) -> Chunk:
    """The chunk whose id is ``ref`` or, failing that, the only one whose id starts with it."""
    chunk = session.get(Chunk, ref)
    if chunk is not None:
        return chunk
    if len(ref) >= MIN_PREFIX:
        matches = session.scalars(select(Chunk).where(Chunk.id.startswith(ref, autoescape=True)).limit(2)).all()
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise InvalidInputError(f"chunk id prefix {ref!r} is ambiguous: give more characters")
    raise ChunkNotFound(f"no chunk {ref} in the catalog")


def chunk_lineage(ws: Workspace, chunk_id: str) -> ChunkLineage:
    """Where a chunk (given by its id or a unique prefix of it) came from."""
    with ws.catalog.session() as session:
        chunk = find_chunk(session, chunk_id)
        chunk_id = chunk.id
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
            source={
                "uri": source.uri,
                "path": source.path,
                "sha256": source.sha256,
                "size": source.size,
                "mtime": source.mtime,
            },
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
