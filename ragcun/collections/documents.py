"""Writing and deleting documents: the ingest's write step, and removing documents with their points."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ragcun.catalog.models import Chunk, Collection, CollectionChunk, Document, PendingChange
from ragcun.catalog.ops import document_uuid
from ragcun.collections import journal
from ragcun.collections.base_vectors import forget_unreferenced
from ragcun.collections.write import ChunkPoint, embed_points, record_norms
from ragcun.errors import DocumentNotFound
from ragcun.faults import fault_point
from ragcun.workspace import Workspace

if TYPE_CHECKING:  # the model imports torch; annotations alone need not
    from ragcun.model import GaussianEmbedder


def chunk_locator(chunk: ChunkText, page_starts: Sequence[int]) -> dict | None:
    """``{"heading_path": …, "page": n}`` (``"pages": [n, …]`` when it spans several) of a chunk, or None."""
    locator: dict = {}
    if chunk.heading_path:
        locator["heading_path"] = chunk.heading_path
    if page_starts:
        first = max(1, bisect.bisect_right(page_starts, chunk.start))
        last = max(first, bisect.bisect_right(page_starts, max(chunk.start, chunk.end - 1)))
        locator["page"] = first
        if last > first:
            locator["pages"] = list(range(first, last + 1))
    return locator or None


if TYPE_CHECKING:
    from ragcun.ingest.chunking import ChunkText
    from ragcun.ingest.readers import SourceDocument


@dataclass
class PlannedDocument:
    """A document the ingest has read and chunked, with what writing it takes."""

    doc: SourceDocument
    document_id: str
    source_id: int
    source_uri: str
    chunks: list[ChunkText]
    chunk_ids: list[str]
    to_embed: list[int]  # indexes into chunks that have no point yet
    stale_chunk_ids: list[str]  # chunks the previous version had and this one does not
    kind: str  # added | updated

    @property
    def locators(self) -> list[dict | None]:
        """Each chunk's heading path and (PDF) pages, as its payload and catalog row carry them."""
        return [chunk_locator(c, self.doc.content_page_starts) for c in self.chunks]


@dataclass
class DocumentDeleted:
    collection: str
    doc_id: str
    chunks_deleted: int

    def to_dict(self) -> dict:
        return asdict(self)


def _fault(planned: Sequence[PlannedDocument], step: str) -> None:
    """``ingest.STEP``, and ``update.STEP`` too when the batch replaces a changed document."""
    fault_point(f"ingest.{step}")
    if any(p.kind == "updated" for p in planned):
        fault_point(f"update.{step}")


def write_documents(
    ws: Workspace,
    session: Session,
    collection: Collection,
    embedder: GaussianEmbedder,
    planned: Sequence[PlannedDocument],
    ingest_run: int,
) -> int:
    """Store ``planned`` documents in ``collection``; returns how many chunks were embedded.

    The steps, each a fault point (``ingest.*``; ``update.*`` as well when a document is replaced):
    the change is journaled (new and stale point ids; ``after_journal``), new chunks are embedded and
    upserted (``after_upsert``), one catalog transaction records documents, chunks and memberships and
    drops the stale chunks (``after_catalog``), the stale points are deleted (``after_delete``) and the
    journal row goes. Killed anywhere, the next command settles the row
    (:mod:`ragcun.collections.journal`): before the catalog commit the new points are undone, after it the
    stale ones are deleted.
    """
    points = [
        ChunkPoint(
            p.chunk_ids[i],
            p.doc.doc_id,
            p.chunks[i].ordinal,
            p.chunks[i].text,
            p.doc.title,
            p.doc.metadata,
            p.source_uri,
            ingest_run,
            p.chunks[i].sha256,
            p.locators[i],
        )
        for p in planned
        for i in p.to_embed
    ]
    stale = [cid for p in planned for cid in p.stale_chunk_ids]
    # Nothing to journal when the store is not touched (a document whose chunks all have points).
    changes = (
        [journal.record(session, collection.physical_name, "replace", [p.chunk_id for p in points], stale)]
        if points or stale
        else []
    )
    session.commit()
    _fault(planned, "after_journal")
    norms = embed_points(ws, session, collection, embedder, points) if points else []
    _fault(planned, "after_upsert")
    replaced: list[str] = []
    for p in planned:
        document = session.get(Document, p.document_id)
        if document is None:
            document = Document(id=p.document_id, collection_name=collection.name, doc_id=p.doc.doc_id)
            session.add(document)
        document.source_id, document.sha256 = p.source_id, p.doc.sha256
        document.title, document.metadata_, document.ingest_run_id = p.doc.title, p.doc.metadata, ingest_run
        if p.stale_chunk_ids:
            for chunk in list(document.chunks):
                if chunk.id in p.stale_chunk_ids:
                    document.chunks.remove(chunk)
                    replaced.append(chunk.sha256)
        known = {c.id for c in document.chunks}
        for piece, chunk_id in zip(p.chunks, p.chunk_ids, strict=True):
            if chunk_id not in known:
                document.chunks.append(
                    Chunk(
                        id=chunk_id,
                        ordinal=piece.ordinal,
                        sha256=piece.sha256,
                        text=piece.text,
                        token_count=piece.token_count,
                        locator=chunk_locator(piece, p.doc.content_page_starts),
                    )
                )
    record_norms(session, collection, points, norms)
    if replaced:
        session.flush()
        forget_unreferenced(session, replaced)
    session.commit()
    _fault(planned, "after_catalog")
    if stale:
        # Unclaimed since the commit above: orphans until deleted, never a claim the store cannot meet.
        ws.store.delete(collection.physical_name, stale)
        _fault(planned, "after_delete")
    journal.done(session, changes)
    return len(points)


def stage_document_deletion(
    session: Session, documents: Sequence[Document], physical_names: Sequence[str]
) -> tuple[list[str], list[PendingChange]]:
    """Stage removing documents' catalog rows and journaling their points; returns (chunk ids, journal rows)."""
    document_ids = [d.id for d in documents]
    chunk_rows = session.execute(select(Chunk.id, Chunk.sha256).where(Chunk.document_id.in_(document_ids))).all()
    chunk_ids = [row.id for row in chunk_rows]
    changes = [journal.record(session, physical, "delete", stale=chunk_ids) for physical in physical_names]
    session.execute(delete(CollectionChunk).where(CollectionChunk.chunk_id.in_(chunk_ids)))
    session.execute(delete(Chunk).where(Chunk.document_id.in_(document_ids)))
    session.execute(delete(Document).where(Document.id.in_(document_ids)))
    forget_unreferenced(session, [row.sha256 for row in chunk_rows])
    return chunk_ids, changes


def delete_documents(
    ws: Workspace,
    session: Session,
    documents: Sequence[Document],
    physical_names: Sequence[str],
    path: str = "delete",
) -> int:
    """Delete documents: their catalog rows (with what ``session`` holds staged), then their points.

    One transaction removes the catalog rows and journals the points (fault point ``PATH.after_catalog``),
    then the points are deleted from every given physical collection (``PATH.after_delete``) and the
    journal row goes. The points are unclaimed from that commit on, so a kill after it leaves orphans
    the next command deletes (:mod:`ragcun.collections.journal`), never a chunk without its point.
    """
    if not documents:
        return 0
    chunk_ids, changes = stage_document_deletion(session, documents, physical_names)
    session.commit()
    fault_point(f"{path}.after_catalog")
    for physical in physical_names:
        if ws.store.collection_exists(physical):
            ws.store.delete(physical, chunk_ids)
    fault_point(f"{path}.after_delete")
    journal.done(session, changes)
    return len(documents)


def delete_document(ws: Workspace, collection_name: str, doc_id: str) -> DocumentDeleted:
    """Delete one document (by the id it was ingested with) and its chunks from every version of a collection."""
    ws.open_store()  # first: opening settles what a killed command left
    with ws.catalog.session() as session:
        document = session.get(Document, document_uuid(collection_name, doc_id))
        if document is None:
            raise DocumentNotFound(f"no document {doc_id!r} in collection {collection_name!r}")
        physical = list(session.scalars(select(Collection.physical_name).where(Collection.name == collection_name)))
        chunks = len(document.chunks)
        # Its source must be re-read next time, or an unchanged file would never bring it back.
        document.source.complete_sha256 = None
        delete_documents(ws, session, [document], physical, path="docs_delete")
        return DocumentDeleted(collection_name, doc_id, chunks)


@dataclass
class DocumentInfo:
    collection: str
    doc_id: str
    source: str
    title: str | None
    chunks: int
    metadata: dict
    updated_at: object

    def to_dict(self) -> dict:
        return asdict(self)


def list_documents(ws: Workspace, collection_name: str, source_glob: str | None = None) -> list[DocumentInfo]:
    """The documents of a logical collection by doc id, optionally those whose source matches a glob."""
    from fnmatch import fnmatchcase

    from ragcun.catalog.ops import require_collection

    with ws.catalog.session() as session:
        require_collection(session, collection_name)
        counts = dict(
            session.execute(
                select(Chunk.document_id, func.count())
                .join(Document)
                .where(Document.collection_name == collection_name)
                .group_by(Chunk.document_id)
            ).all()
        )
        documents = session.scalars(
            select(Document).where(Document.collection_name == collection_name).order_by(Document.doc_id)
        ).all()
        return [
            DocumentInfo(
                collection_name, d.doc_id, d.source.uri, d.title, counts.get(d.id, 0), d.metadata_, d.updated_at
            )
            for d in documents
            if source_glob is None or fnmatchcase(d.source.uri, source_glob)
        ]
