"""Idempotent, crash-safe ingestion of files into a collection.

The order of writes is what makes a killed run safe to re-run:

1. a batch of new chunks is embedded and upserted into the store (deterministic point ids, so a
   repeat overwrites instead of duplicating);
2. points of chunks the documents no longer have are deleted from the store;
3. one catalog transaction records the documents, chunks and memberships.

The catalog is written last, so it never claims a point the store lacks. A crash between steps
leaves documents whose catalog hash is stale, and the next run simply redoes them. A source file
is marked complete only after all its documents are stored, so an unchanged, complete file is
skipped without being parsed or encoded again.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from tqdm.auto import tqdm

from ragcun import __version__
from ragcun.catalog.models import Chunk, Collection, CollectionChunk, Document, IngestRun, Source, utcnow
from ragcun.catalog.ops import (
    active_collection,
    chunk_ids_in,
    chunk_payload,
    chunk_uuid,
    delete_documents,
    document_uuid,
    mark_interrupted_runs,
    register_model_version,
)
from ragcun.errors import ModelMismatchError
from ragcun.ingest.chunking import Chunker, ChunkText
from ragcun.ingest.readers import (
    DEFAULT_MAX_DOCUMENT_BYTES,
    InputProblem,
    JsonlFields,
    SourceDocument,
    discover,
    file_sha256,
    read_source,
)
from ragcun.store import CollectionParams
from ragcun.workspace import Workspace

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestOptions:
    """How to read, chunk and batch an ingest.

    Args:
        include / exclude: Glob patterns on paths relative to each input folder.
        sync: Delete documents whose source files are gone from the input folders.
        chunk_tokens: Chunk size in model tokens (default: the model's max length minus 2).
        chunk_overlap: Tokens shared by consecutive chunks.
        batch_size: Chunks embedded and upserted together.
        fields: Field names for JSONL inputs.
        max_document_bytes: Larger documents (or JSONL lines) are refused with an error.
        collection_params: Index settings, used when the collection is created.
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    sync: bool = False
    chunk_tokens: int | None = None
    chunk_overlap: int = 32
    batch_size: int = 128
    fields: JsonlFields = JsonlFields()
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES
    collection_params: dict = field(default_factory=dict)


@dataclass
class IngestResult:
    run_id: int
    collection: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: int = 0
    chunks_written: int = 0
    seconds: float = 0.0
    errors: list[dict] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("added", "updated", "unchanged", "deleted", "failed", "chunks_written")}

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _PendingDocument:
    doc: SourceDocument
    document_id: str
    source_id: int
    chunks: list[ChunkText]
    chunk_ids: list[str]
    to_embed: list[int]  # indexes into chunks that have no point yet
    stale_chunk_ids: list[str]  # chunks the previous version had and this one does not
    kind: str  # added | updated


def ensure_collection(session: Session, ws: Workspace, name: str, embedder, params: dict) -> Collection:
    """The active collection ``name``, created for ``embedder`` if missing; refuses another model."""
    version = register_model_version(session, embedder, ws.models_dir)
    collection = active_collection(session, name)
    if collection is None:
        physical = f"{name}-{version.fingerprint[:12]}"
        collection_params = CollectionParams(dim=embedder.dim, **params)
        if not ws.store.collection_exists(physical):
            ws.store.create_collection(physical, collection_params)
        collection = Collection(name=name, physical_name=physical, engine=ws.store.engine,
                                model_version_id=version.id, status="active", status_changed_at=utcnow(),
                                settings=collection_params.to_dict())
        session.add(collection)
        session.commit()
        ws.store.set_alias(name, physical)
        return collection
    if collection.model_version.fingerprint != version.fingerprint:
        raise ModelMismatchError(
            f"collection {name!r} was built by model {collection.model_version.fingerprint[:12]}, not "
            f"{version.fingerprint[:12]}; ingest with that model, or reindex the collection"
        )
    shape = ws.store.shape(collection.physical_name)
    if shape.dim != embedder.dim:
        raise ModelMismatchError(f"collection {name!r} stores {shape.dim}-d vectors; the model makes {embedder.dim}-d")
    return collection


class Ingestor:
    """One ingest run into one collection."""

    def __init__(self, ws: Workspace, collection_name: str, embedder, options: IngestOptions = IngestOptions()):
        self.ws = ws
        self.name = collection_name
        self.embedder = embedder
        self.options = options
        max_tokens = options.chunk_tokens or embedder.max_seq_length - 2  # room for [CLS] and [SEP]
        self.chunker = Chunker(embedder.base.tokenizer, max_tokens, options.chunk_overlap)
        self.session = ws.catalog.session()
        self.pending: list[_PendingDocument] = []
        self.pending_chunks = 0

    def run(self, paths: Sequence[str | Path]) -> IngestResult:
        files = discover(paths, self.options.include, self.options.exclude)
        session = self.session
        mark_interrupted_runs(session)
        self.collection = ensure_collection(session, self.ws, self.name, self.embedder,
                                            self.options.collection_params)
        self.run_row = IngestRun(collection_name=self.name, collection_id=self.collection.id,
                                 model_version_id=self.collection.model_version_id, status="running",
                                 pid=os.getpid(), inputs=[str(Path(p).resolve()) for p in paths],
                                 ragcun_version=__version__)
        session.add(self.run_row)
        session.commit()
        self.result = IngestResult(run_id=self.run_row.id, collection=self.name)
        started = time.perf_counter()
        self.progress = tqdm(total=0, desc="chunks", unit="chunk", disable=None)
        try:
            for path in tqdm(files, desc="files", unit="file", disable=None if len(files) > 1 else True):
                self._ingest_file(path)
            if self.options.sync:
                self._sync(paths, files)
            self.ws.store.optimize(self.collection.physical_name)
            self._finish("completed", started)
        except BaseException as exc:  # KeyboardInterrupt too: never leave a run "running"
            session.rollback()
            self.result.errors.append({"uri": None, "line": None, "error": f"run aborted: {exc!r}"})
            self._finish("failed", started)
            raise
        finally:
            self.progress.close()
            session.close()
        return self.result

    def _finish(self, status: str, started: float) -> None:
        self.result.seconds = time.perf_counter() - started
        run = self.session.get(IngestRun, self.run_row.id)
        run.status, run.finished_at = status, utcnow()
        run.counts, run.errors = self.result.counts(), self.result.errors
        self.session.commit()

    def _problem(self, problem: InputProblem) -> None:
        self.result.failed += 1
        self.result.errors.append(problem.to_dict())
        logger.warning("%s%s: %s", problem.uri, f":{problem.line}" if problem.line else "", problem.error)

    def _ingest_file(self, path: Path) -> None:
        session, uri = self.session, str(path)
        try:
            stat, sha = path.stat(), file_sha256(path)
        except OSError as exc:
            self._problem(InputProblem(uri, f"cannot read: {exc.strerror or exc}"))
            return
        source = session.scalar(select(Source).where(Source.collection_name == self.name, Source.uri == uri))
        if source is not None and source.complete_sha256 == sha:
            self.result.unchanged += session.scalar(
                select(func.count()).select_from(Document).where(Document.source_id == source.id))
            return
        if source is None:
            source = Source(collection_name=self.name, uri=uri)
            session.add(source)
        source.sha256, source.size, source.mtime = sha, stat.st_size, stat.st_mtime
        session.commit()

        seen: set[str] = set()
        failed_before = self.result.failed
        for item in read_source(path, self.options.fields, self.options.max_document_bytes):
            if isinstance(item, InputProblem):
                self._problem(item)
                continue
            document_id = document_uuid(self.name, item.doc_id)
            if document_id in seen:
                continue
            seen.add(document_id)
            self._queue(item, document_id, source)
        self._flush()
        if self.result.failed == failed_before:
            # The file is fully stored; documents it no longer contains go, and it can be skipped next time.
            gone = session.scalars(select(Document).where(Document.source_id == source.id,
                                                          Document.id.not_in(seen) if seen else True)).all()
            self.result.deleted += delete_documents(session, list(gone), self.ws.store, [self.collection.physical_name])
            source.complete_sha256 = sha
        session.commit()

    def _queue(self, doc: SourceDocument, document_id: str, source: Source) -> None:
        session = self.session
        existing = session.get(Document, document_id)
        if existing is not None and existing.source_id != source.id:
            self._problem(InputProblem(source.uri, f"duplicate id {doc.doc_id!r}: already ingested from "
                                                   f"{existing.source.uri}", doc.line))
            return
        sha = doc.sha256
        if existing is not None and existing.sha256 == sha:
            stored = [c.id for c in existing.chunks]
            if len(chunk_ids_in(session, self.collection.id, stored)) == len(stored):
                self.result.unchanged += 1
                return
        chunks = self.chunker.split(doc.content)
        chunk_ids = [chunk_uuid(document_id, c.ordinal, c.sha256) for c in chunks]
        present = chunk_ids_in(session, self.collection.id, chunk_ids)
        stale = [c.id for c in existing.chunks if c.id not in set(chunk_ids)] if existing is not None else []
        self.pending.append(_PendingDocument(
            doc=doc, document_id=document_id, source_id=source.id, chunks=chunks, chunk_ids=chunk_ids,
            to_embed=[i for i, cid in enumerate(chunk_ids) if cid not in present], stale_chunk_ids=stale,
            kind="added" if existing is None else "updated"))
        self.pending_chunks += len(chunks)
        if self.pending_chunks >= self.options.batch_size:
            self._flush()

    def _flush(self) -> None:
        if not self.pending:
            return
        store, physical, session = self.ws.store, self.collection.physical_name, self.session
        jobs = [(p, i) for p in self.pending for i in p.to_embed]
        norms: dict[str, float] = {}
        if jobs:
            vectors = self.embedder.encode([p.chunks[i].text for p, i in jobs], show_progress_bar=False)
            vector_norms = np.linalg.norm(vectors, axis=1)
            ids, payloads = [], []
            for (p, i), norm in zip(jobs, vector_norms):
                ids.append(p.chunk_ids[i])
                norms[p.chunk_ids[i]] = float(norm)
                payloads.append(chunk_payload(
                    doc_id=p.doc.doc_id, ordinal=p.chunks[i].ordinal, text=p.chunks[i].text, title=p.doc.title,
                    metadata=p.doc.metadata, source=self.session.get(Source, p.source_id).uri, norm=float(norm),
                    model_version=self.collection.model_version.fingerprint, ingest_run=self.run_row.id))
            store.upsert(physical, ids, vectors, payloads)
        stale = [cid for p in self.pending for cid in p.stale_chunk_ids]
        if stale:
            store.delete(physical, stale)

        for p in self.pending:
            document = session.get(Document, p.document_id)
            if document is None:
                document = Document(id=p.document_id, collection_name=self.name, doc_id=p.doc.doc_id)
                session.add(document)
            document.source_id, document.sha256 = p.source_id, p.doc.sha256
            document.title, document.metadata_, document.ingest_run_id = p.doc.title, p.doc.metadata, self.run_row.id
            if p.stale_chunk_ids:
                for chunk in list(document.chunks):
                    if chunk.id in p.stale_chunk_ids:
                        document.chunks.remove(chunk)
            known = {c.id for c in document.chunks}
            for i, (chunk, chunk_id) in enumerate(zip(p.chunks, p.chunk_ids)):
                if chunk_id not in known:
                    document.chunks.append(Chunk(id=chunk_id, ordinal=chunk.ordinal, sha256=chunk.sha256,
                                                 text=chunk.text, token_count=chunk.token_count))
                if chunk_id in norms:
                    session.merge(CollectionChunk(collection_id=self.collection.id, chunk_id=chunk_id,
                                                  ingest_run_id=self.run_row.id, norm=norms[chunk_id]))
            setattr(self.result, p.kind, getattr(self.result, p.kind) + 1)
        session.commit()
        self.result.chunks_written += len(jobs)
        self.progress.total += len(jobs)
        self.progress.update(len(jobs))
        self.pending, self.pending_chunks = [], 0

    def _sync(self, paths: Sequence[str | Path], files: list[Path]) -> None:
        """Delete the documents of sources under the input paths whose files are gone."""
        session = self.session
        roots = [Path(p).resolve() for p in paths]
        present = {str(f) for f in files}
        for source in session.scalars(select(Source).where(Source.collection_name == self.name)).all():
            source_path = Path(source.uri)
            under_roots = any(source_path == root or root in source_path.parents for root in roots)
            if not under_roots or source.uri in present or source_path.exists():
                continue
            documents = list(session.scalars(select(Document).where(Document.source_id == source.id)))
            self.result.deleted += delete_documents(session, documents, self.ws.store,
                                                    [self.collection.physical_name])
            session.delete(source)
        session.commit()


def ingest(ws: Workspace, paths: Sequence[str | Path], collection_name: str, embedder,
           options: IngestOptions = IngestOptions()) -> IngestResult:
    """Ingest files and folders into ``collection_name`` (created on first use)."""
    return Ingestor(ws, collection_name, embedder, options).run(paths)
