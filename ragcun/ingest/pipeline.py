"""Idempotent, crash-safe ingestion of files into a collection: reading, chunking and planning.

The writes go through :mod:`ragcun.collections` (:func:`~ragcun.collections.documents.write_documents`),
and their order is what makes a killed run safe to re-run:

1. the change is journaled in the catalog (new and stale point ids, :mod:`ragcun.collections.journal`);
2. a batch of new chunks is embedded and upserted into the store (deterministic point ids, so a
   repeat overwrites instead of duplicating);
3. one catalog transaction records the documents, chunks and memberships and drops stale chunks;
4. the points of those stale chunks are deleted from the store, and the journal row goes.

The catalog claims a point only after it is stored and stops claiming one before it is deleted, so it
never claims a point the store lacks; whatever a kill leaves is settled by the next command that opens
the store, whether or not the file changed since. A source file is marked complete only after all its
documents are stored (and unmarked while a changed version is written), so an unchanged, complete file
is skipped without being parsed or encoded again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select, true
from tqdm.auto import tqdm

from ragcun.catalog.models import Document, IngestRun, Source
from ragcun.catalog.ops import chunk_ids_in, chunk_uuid, document_uuid
from ragcun.collections.create import ensure_collection
from ragcun.collections.documents import (
    PlannedDocument,
    delete_documents,
    write_documents,
)
from ragcun.collections.runs import finish_run, mark_interrupted_runs, start_run
from ragcun.errors import InvalidInputError
from ragcun.ingest.chunking import make_chunker
from ragcun.ingest.readers import (
    DEFAULT_MAX_DOCUMENT_BYTES,
    InputProblem,
    JsonlFields,
    SourceDocument,
    discover,
    file_sha256,
    read_source,
    safe_name,
)
from ragcun.workspace import Workspace

if TYPE_CHECKING:  # the model imports torch; annotations alone need not
    from ragcun.model import GaussianEmbedder


logger = logging.getLogger(__name__)
# Progress lines for runs without a terminal (cron, CI, pipes); the CLI shows this logger at INFO.
progress_logger = logging.getLogger("ragcun.progress")


@dataclass(frozen=True)
class IngestOptions:
    """How to read, chunk and batch an ingest.

    Args:
        include / exclude: Glob patterns on paths relative to each input folder.
        sync: Delete documents whose source files are gone from the input folders.
        chunk_tokens: Chunk size in model tokens (default: the model's max length minus 2, room for
            the [CLS] and [SEP] tokens the encoder adds).
        chunk_overlap: Tokens shared by consecutive token windows.
        chunking: ``structure`` (headings, paragraphs, sentences, table rows, then token windows) or
            ``tokens`` (token windows only).
        batch_size: Chunks embedded and upserted together.
        fields: Field names for JSONL inputs.
        max_document_bytes: Larger documents (or JSONL lines) are refused with an error.
        collection_params: Index settings, used when the collection is created.
        prefix: Put before every file's path relative to its input folder, which is the file's
            (and a whole-file document's) id: ``--prefix docs/`` makes ``docs/parking.md``.
        jsonl_format: ``auto``, ``jsonl`` or ``beir``: whose field names JSONL files use
            (:func:`ragcun.ingest.readers.read_source`).
        log_every: Without a terminal, seconds between progress log lines (counts and rate).
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    sync: bool = False
    chunk_tokens: int | None = None
    chunk_overlap: int = 32
    chunking: str = "structure"
    batch_size: int = 128
    fields: JsonlFields = field(default_factory=JsonlFields)
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES
    collection_params: dict = field(default_factory=dict)
    log_every: float = 10.0
    prefix: str = ""
    jsonl_format: str = "auto"


def file_keys(paths: Sequence[str | Path], files: Sequence[Path], prefix: str = "") -> dict[Path, str]:
    """Each file's name in the collection: ``prefix`` + its path relative to the input it was found under
    (a file given directly: its name). Moving or re-mounting a folder does not change it."""
    roots = [Path(p).expanduser().resolve() for p in paths]  # discover() returns resolved paths
    keys = {}
    for path in files:
        for root in roots:
            if path == root:
                keys[path] = prefix + path.name
                break
            if root in path.parents:
                keys[path] = prefix + path.relative_to(root).as_posix()
                break
    return keys


def under_inputs(key: str, paths: Sequence[str | Path], prefix: str) -> bool:
    """Whether a source named ``key`` belongs to what an ingest of ``paths`` with ``prefix`` covers."""
    return any(key.startswith(prefix) if Path(p).expanduser().is_dir() else key == prefix + Path(p).name for p in paths)


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


class Ingestor:
    """One ingest run into one collection."""

    def __init__(
        self, ws: Workspace, collection_name: str, embedder: GaussianEmbedder, options: IngestOptions = IngestOptions()
    ):
        self.ws = ws
        self.name = collection_name
        self.embedder = embedder
        self.options = options
        max_tokens = options.chunk_tokens or embedder.max_seq_length - 2  # room for [CLS] and [SEP]
        self.chunker = make_chunker(options.chunking, embedder.base.tokenizer, max_tokens, options.chunk_overlap)
        self.session = ws.catalog.session()
        self.pending: list[PlannedDocument] = []
        self.pending_chunks = 0

    def run(self, paths: Sequence[str | Path]) -> IngestResult:
        try:
            files, problems = find_inputs(paths, self.options)
        except InvalidInputError:
            self.session.close()
            raise
        keys = file_keys(paths, files, self.options.prefix)

        def work() -> None:
            for problem in problems:
                self._problem(problem)
            for done, path in enumerate(
                tqdm(files, desc="files", unit="file", disable=None if len(files) > 1 else True)
            ):
                self._ingest_file(path, keys[path])
                self._log_progress(f"{done + 1}/{len(files)} files")
            if self.options.sync:
                self._sync(paths, set(keys.values()))

        return self._run([safe_name(Path(p).resolve()) for p in paths], work)

    def run_documents(self, documents: Sequence[SourceDocument], source_uri: str) -> IngestResult:
        """Store ``documents`` (read elsewhere: an API request) as documents of the source ``source_uri``.

        The same plan and write steps as files, so a repeat is idempotent and a killed run is finished
        by repeating it; unlike a file, the source is never complete, so documents it held before and
        ``documents`` lacks are kept.
        """

        def work() -> None:
            session = self.session
            source = session.scalar(select(Source).where(Source.collection_name == self.name, Source.uri == source_uri))
            if source is None:
                source = Source(collection_name=self.name, uri=source_uri)
                session.add(source)
                session.commit()
            seen: set[str] = set()
            for item in documents:
                document_id = document_uuid(self.name, item.doc_id)
                if document_id not in seen:
                    seen.add(document_id)
                    self._queue(item, document_id, source)
            self._flush()
            session.commit()

        return self._run([source_uri], work)

    def _run(self, inputs: list[str], work: Callable[[], None]) -> IngestResult:
        """One recorded run around ``work``: started, optimized and finished, or marked failed."""
        session = self.session
        self.ws.open_store()  # first: opening settles what a killed command left
        mark_interrupted_runs(session)
        self.collection = ensure_collection(self.ws, session, self.name, self.embedder, self.options.collection_params)
        self.run_row = start_run(session, "ingest", self.collection, inputs)
        self.result = IngestResult(run_id=self.run_row.id, collection=self.name)
        started = time.perf_counter()
        self.progress = tqdm(total=0, desc="chunks", unit="chunk", disable=None)
        self.started, self.last_log = started, started
        try:
            work()
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
        finish_run(
            self.session,
            self.session.get_one(IngestRun, self.run_row.id),
            status,
            self.result.counts(),
            self.result.errors,
        )

    def _problem(self, problem: InputProblem) -> None:
        # Recorded on the run and shown once by the caller (the CLI prints one line per problem).
        if not problem.warning:
            self.result.failed += 1
        self.result.errors.append(problem.to_dict())
        logger.debug("%s%s: %s", problem.uri, f":{problem.line}" if problem.line else "", problem.error)

    def _ingest_file(self, path: Path, uri: str) -> None:
        session = self.session
        try:
            stat, sha = path.stat(), file_sha256(path)
        except OSError as exc:
            self._problem(InputProblem(str(path), f"cannot read: {exc.strerror or exc}"))
            return
        source = session.scalar(select(Source).where(Source.collection_name == self.name, Source.uri == uri))
        if source is not None and source.complete_sha256 == sha:
            source.path = str(path.resolve())  # the same file, perhaps moved: nothing to re-embed
            session.commit()
            self.result.unchanged += (
                session.scalar(select(func.count()).select_from(Document).where(Document.source_id == source.id)) or 0
            )
            return
        if source is None:
            source = Source(collection_name=self.name, uri=uri)
            session.add(source)
        source.sha256, source.size, source.mtime = sha, stat.st_size, stat.st_mtime
        source.path = str(path.resolve())
        # Until every document of this version is stored, even the previous version is not complete: a
        # batch of it may be written, so a reverted file must be read again.
        source.complete_sha256 = None
        session.commit()

        seen: set[str] = set()
        failed_before = self.result.failed
        for item in read_source(path, self.options.fields, self.options.max_document_bytes, self.options.jsonl_format):
            if isinstance(item, InputProblem):
                self._problem(replace(item, uri=uri))  # named like its source, as failed_documents looks it up
                continue
            if item.doc_id == str(path):  # a whole-file document is named like its file
                item = replace(item, doc_id=uri)
            for note in item.notes:
                self._problem(InputProblem(uri, note, item.line, warning=True))
            document_id = document_uuid(self.name, item.doc_id)
            if document_id in seen:
                continue
            seen.add(document_id)
            self._queue(item, document_id, source)
        self._flush()
        if self.result.failed == failed_before:
            # The file is fully stored; documents it no longer contains go, and it can be skipped next time.
            gone = session.scalars(
                select(Document).where(Document.source_id == source.id, Document.id.not_in(seen) if seen else true())
            ).all()
            self.result.deleted += delete_documents(
                self.ws, session, gone, [self.collection.physical_name], path="update"
            )
            source.complete_sha256 = sha
        session.commit()

    def _queue(self, doc: SourceDocument, document_id: str, source: Source) -> None:
        session = self.session
        existing = session.get(Document, document_id)
        if existing is not None and existing.source_id != source.id:
            self._problem(
                InputProblem(
                    source.uri,
                    f"duplicate id {doc.doc_id!r}: already ingested from {existing.source.path or existing.source.uri}",
                    doc.line,
                )
            )
            return
        sha = doc.sha256
        if existing is not None and existing.sha256 == sha:
            stored = [c.id for c in existing.chunks]
            if len(chunk_ids_in(session, self.collection.id, stored)) == len(stored):
                self.result.unchanged += 1
                return
        chunks = self.chunker.split(doc.content) if doc.content.strip() else []  # an empty document has none
        chunk_ids = [chunk_uuid(document_id, c.ordinal, c.sha256) for c in chunks]
        present = chunk_ids_in(session, self.collection.id, chunk_ids)
        stale = [c.id for c in existing.chunks if c.id not in set(chunk_ids)] if existing is not None else []
        self.pending.append(
            PlannedDocument(
                doc=doc,
                document_id=document_id,
                source_id=source.id,
                source_uri=source.uri,
                chunks=chunks,
                chunk_ids=chunk_ids,
                to_embed=[i for i, cid in enumerate(chunk_ids) if cid not in present],
                stale_chunk_ids=stale,
                kind="added" if existing is None else "updated",
            )
        )
        self.pending_chunks += len(chunks)
        if self.pending_chunks >= self.options.batch_size:
            self._flush()

    def _flush(self) -> None:
        if not self.pending:
            return
        written = write_documents(self.ws, self.session, self.collection, self.embedder, self.pending, self.run_row.id)
        for p in self.pending:
            setattr(self.result, p.kind, getattr(self.result, p.kind) + 1)
        self.result.chunks_written += written
        self.progress.total += written
        self.progress.update(written)
        self.pending, self.pending_chunks = [], 0
        self._log_progress()

    def _log_progress(self, files: str = "") -> None:
        """Every ``log_every`` seconds, one line of counts and rate, when no progress bar shows them."""
        now = time.perf_counter()
        if not self.progress.disable or now - self.last_log < self.options.log_every:
            return
        self.last_log = now
        r = self.result
        done = r.added + r.updated
        progress_logger.info(
            "%s%s: %d added, %d updated, %d unchanged, %d failed; %d chunks embedded (%.1f documents/s)",
            self.name,
            f" {files}" if files else "",
            r.added,
            r.updated,
            r.unchanged,
            r.failed,
            r.chunks_written,
            done / max(now - self.started, 1e-9),
        )

    def _sync(self, paths: Sequence[str | Path], present: set[str]) -> None:
        """Delete the documents of sources the inputs cover whose files are gone.

        A source is covered when its name lies under the inputs' (prefixed) names; one whose file
        still exists where it was last read (another folder ingested into the same collection) is kept.
        """
        session = self.session
        for source in session.scalars(select(Source).where(Source.collection_name == self.name)).all():
            if source.uri in present or not under_inputs(source.uri, paths, self.options.prefix):
                continue
            if source.path and Path(source.path).exists():
                continue
            documents = list(session.scalars(select(Document).where(Document.source_id == source.id)))
            # Committed with the deletion: should the file come back before the source row goes, it is read again.
            source.complete_sha256 = None
            self.result.deleted += delete_documents(
                self.ws, session, documents, [self.collection.physical_name], path="sync"
            )
            session.delete(source)
        session.commit()


def find_inputs(paths: Sequence[str | Path], options: IngestOptions) -> tuple[list[Path], list[InputProblem]]:
    """The files an ingest of ``paths`` reads, and the inputs that cannot be read (each a problem of its own).

    A folder with nothing to read is said (a warning) but is no error: ingesting it creates the
    collection, and with ``sync`` deletes the documents of the files that were there.

    Raises:
        InvalidInputError: no input is a file to read or a folder (every one is missing, a FIFO…).
    """
    problems: list[InputProblem] = []
    files = discover(paths, options.include, options.exclude, problems)
    if not files and not any(Path(p).expanduser().is_dir() for p in paths):
        raise nothing_to_ingest(problems)
    return files, problems


def nothing_to_ingest(problems: Sequence[InputProblem]) -> InvalidInputError:
    """The error of an ingest with no input to read: the first input's problem, and how many more."""
    if not problems:
        return InvalidInputError("nothing to ingest: no input paths given")
    first = problems[0]
    more = f" (and {len(problems) - 1} more inputs that cannot be read)" if len(problems) > 1 else ""
    return InvalidInputError(f"{first.uri}: {first.error}{more}")


def ingest(
    ws: Workspace,
    paths: Sequence[str | Path],
    collection_name: str,
    embedder: GaussianEmbedder,
    options: IngestOptions = IngestOptions(),
) -> IngestResult:
    """Ingest files and folders into ``collection_name`` (created on first use)."""
    return Ingestor(ws, collection_name, embedder, options).run(paths)


def ingest_documents(
    ws: Workspace,
    documents: Sequence[SourceDocument],
    collection_name: str,
    embedder: GaussianEmbedder,
    options: IngestOptions = IngestOptions(),
    source_uri: str = "api",
) -> IngestResult:
    """Ingest documents already read (``ragcun serve``'s ``POST /documents``) into ``collection_name``.

    Args:
        documents: Documents with distinct ids (:func:`ragcun.ingest.readers.document_of_row` reads
            JSONL-style rows into them).
        source_uri: The source they are recorded under; a document already ingested from another
            source is reported as a duplicate id, as in a file ingest.
    """
    return Ingestor(ws, collection_name, embedder, options).run_documents(documents, source_uri)
