"""What ``ragcun serve`` does for each route, over one open :class:`~ragcun.workspace.Workspace`.

The embedded store is locked to one process, so the server owns the home; inside the process every
use of the store and catalog runs on one thread (the *store thread*), which makes them safe from
concurrent requests without asking the engines for more than single-threaded use. Query embedding
runs on its own thread, batched across requests (:class:`~ragcun.serve.batching.EmbeddingBatcher`),
and answer generation on a small pool, so neither holds the store while it computes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from sqlalchemy import text as sql

from ragcun.catalog.ops import require_collection
from ragcun.errors import InvalidInputError, RagcunError
from ragcun.retrieve.base import DEFAULT_FUSION, DEFAULT_MODE, Hit, check_mode
from ragcun.retrieve.filters import parse_filter
from ragcun.serve.batching import EmbeddingBatcher
from ragcun.serve.metrics import Metrics
from ragcun.settings import Settings
from ragcun.validation import check_documents, check_positive, check_top_k, check_vector, require_text
from ragcun.workspace import Workspace

if TYPE_CHECKING:  # the model imports torch; annotations alone need not
    from ragcun.model import GaussianEmbedder
    from ragcun.rag import Generator

logger = logging.getLogger(__name__)
T = TypeVar("T")

API_SOURCE = "api"  # the source POST /documents records its documents under
DEFAULT_INGEST_BATCH = 128


@dataclass(frozen=True)
class SearchQuery:
    """A validated search request: nothing reaches the engine before all of this is checked."""

    query: str | None
    vector: np.ndarray | None
    k: int
    mode: str = DEFAULT_MODE
    fusion: str = DEFAULT_FUSION
    filter: str | None = None
    exact: bool = False
    hnsw_ef: int | None = None

    @classmethod
    def checked(
        cls,
        query: str | None,
        vector: list[float] | None,
        k: Any,
        mode: str = DEFAULT_MODE,
        fusion: str = DEFAULT_FUSION,
        filter: str | None = None,
        exact: bool = False,
        hnsw_ef: Any = None,
    ) -> SearchQuery:
        k = check_top_k(k)
        check_mode(mode, fusion, None)
        if vector is None:
            require_text(query, "query")
        elif query is not None and not query.strip():
            raise InvalidInputError("query must be a non-empty string when given")
        hnsw_ef = None if hnsw_ef is None else check_positive(hnsw_ef, "hnsw_ef")
        parse_filter(filter)  # a bad clause is refused here, before any embedding or search
        array = None if vector is None else np.asarray(vector, dtype=np.float32).reshape(-1)
        return cls(query, array, k, mode, fusion, filter or None, bool(exact), hnsw_ef)


class Service:
    """The open home and the threads that use it.

    Args:
        settings: The home, the engine, the API key and limits.
        ingest_batch_size: Chunks embedded and upserted together by ``POST /documents``.
    """

    def __init__(self, settings: Settings, ingest_batch_size: int = DEFAULT_INGEST_BATCH):
        from ragcun.workspace import init_home

        self.settings = settings
        self.ingest_batch_size = check_positive(ingest_batch_size, "batch size")
        self.metrics = Metrics()
        self._store_thread = ThreadPoolExecutor(1, thread_name_prefix="ragcun-store")
        self._encode_thread = ThreadPoolExecutor(1, thread_name_prefix="ragcun-encode")
        self._generate_pool = ThreadPoolExecutor(4, thread_name_prefix="ragcun-generate")
        self.batcher = EmbeddingBatcher(
            self._encode_thread, settings.batch_window_ms / 1000.0, on_batch=self.metrics.embed_batch.observe
        )
        self._generator: Generator | None = None

        def open_home() -> Workspace:
            init_home(settings)
            ws = Workspace(settings)
            ws.open_store()  # now: a locked home fails at start, not at the first request
            return ws

        try:
            self.ws = self._store_thread.submit(open_home).result()
        except BaseException:
            self._shutdown_threads()
            raise

    # ---- threads ---------------------------------------------------------------------------

    async def in_store(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Run ``fn`` on the store thread, the only one that touches the store and catalog."""
        return await asyncio.get_running_loop().run_in_executor(
            self._store_thread, functools.partial(fn, *args, **kwargs)
        )

    def close(self) -> None:
        try:
            self._store_thread.submit(self.ws.close).result()
        finally:
            self._shutdown_threads()

    def _shutdown_threads(self) -> None:
        for pool in (self._generate_pool, self._encode_thread, self._store_thread):
            pool.shutdown(wait=False, cancel_futures=True)

    # ---- health ----------------------------------------------------------------------------

    async def ready(self) -> dict:
        """The catalog answers a query and the store lists its collections (raises otherwise)."""

        def probe() -> dict:
            with self.ws.catalog.session() as session:
                session.execute(sql("SELECT 1"))
            return {
                "status": "ready",
                "engine": self.settings.engine,
                "collections": len(self.ws.store.list_collections()),
            }

        return await self.in_store(probe)

    # ---- reading ---------------------------------------------------------------------------

    def _collection_model(self, name: str) -> tuple[GaussianEmbedder, bool]:
        """The collection's model (loaded once per version) and whether its σ was calibrated."""
        with self.ws.catalog.session() as session:
            collection = require_collection(session, name)
            return self.ws.embedder_for(collection), "sigma" in collection.settings

    async def search(self, name: str, q: SearchQuery) -> dict:
        """Hits for a checked query, embedded in a batch with concurrent ones when given as text."""
        hits, _ = await self._search(name, q)
        return {"collection": name, "mode": q.mode, "hits": [hit.to_dict() for hit in hits]}

    async def _search(self, name: str, q: SearchQuery) -> tuple[list[Hit], GaussianEmbedder]:
        from ragcun.retrieve.collection import search

        embedder, calibrated = await self.in_store(self._collection_model, name)
        if q.vector is not None:
            vector = check_vector(q.vector, embedder.dim)
        else:
            assert q.query is not None  # SearchQuery.checked
            vector = await self.batcher.embed(embedder, q.query)
        hits = await self.in_store(
            search,
            self.ws,
            name,
            vector,
            q.k,
            embedder=embedder,
            hnsw_ef=q.hnsw_ef,
            exact=q.exact,
            mode=q.mode,
            fusion=q.fusion,
            filter=q.filter,
            text=q.query,
        )
        if not calibrated:  # a softmax under σ = 1 means nothing: say so with null
            hits = [replace(hit, probability=None) for hit in hits]
        return hits, embedder

    async def embed(
        self, texts: list[str], collection: str | None, model_version: str | None, input_type: str = "query"
    ) -> dict:
        """The vectors the model of ``collection`` (or the registered ``model_version``) makes: exactly
        ``GaussianEmbedder.encode_queries(texts)`` (``input_type`` "query", what search embeds a query with)
        or ``encode(texts)`` ("document"), encoded as one request (never mixed into another batch)."""
        texts = check_documents(texts, "texts")
        if not texts:
            raise InvalidInputError("texts must hold at least one text")
        if collection is not None and model_version is not None:
            raise InvalidInputError("give collection or model_version, not both")
        if collection is None and model_version is None:
            raise InvalidInputError("give collection (its model embeds) or model_version (a registered fingerprint)")

        def resolve() -> GaussianEmbedder:
            from ragcun.collections.versions import find_model_version

            with self.ws.catalog.session() as session:
                if collection is not None:
                    return self.ws.embedder_for(require_collection(session, collection))
                assert model_version is not None
                return self.ws.embedder_of(find_model_version(session, model_version))

        embedder = await self.in_store(resolve)
        encode = embedder.encode_queries if input_type == "query" else embedder.encode
        vectors = await asyncio.get_running_loop().run_in_executor(
            self._encode_thread, functools.partial(encode, texts, show_progress_bar=False)
        )
        return {
            "model_version": embedder.fingerprint,
            "dim": embedder.dim,
            "input_type": input_type,
            "vectors": vectors.tolist(),
        }

    async def list_collections(self) -> list[dict]:
        from ragcun.collections.info import list_collections

        return [c.to_dict() for c in await self.in_store(list_collections, self.ws) if c.status == "active"]

    async def show_collection(self, name: str) -> dict:
        from ragcun.collections.info import show_collection

        def active() -> dict:
            with self.ws.catalog.session() as session:
                require_collection(session, name)  # 404 with the names of those that exist
            return show_collection(self.ws, name).to_dict()

        return await self.in_store(active)

    # ---- asking ----------------------------------------------------------------------------

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            from ragcun.rag import Generator, RAGConfig

            self._generator = Generator(config=RAGConfig.from_settings(self.settings))
        return self._generator

    def _pipeline(self, name: str, embedder: GaussianEmbedder):
        from ragcun.rag import RAGConfig, RAGPipeline, Retriever

        # The retriever is only the pipeline's handle on the model: retrieval went through self.search.
        retriever = Retriever(collection=name, workspace=self.ws, embedder=embedder)
        return RAGPipeline(retriever, self.generator, config=RAGConfig.from_settings(self.settings))

    async def ask(self, name: str, question: str, q: SearchQuery) -> dict:
        """The answer and its citations, from the hits of the same search path."""
        require_text(question, "question")
        contexts, embedder = await self._search(name, q)
        pipeline = self._pipeline(name, embedder)
        result = await asyncio.get_running_loop().run_in_executor(
            self._generate_pool, pipeline.answer, question, contexts
        )
        return result.to_dict()

    async def ask_stream(self, name: str, question: str, q: SearchQuery) -> AsyncGenerator[tuple[str, Any], None]:
        """``("token", text)`` pieces as the generator makes them, then ``("done", result)`` or ``("error", exc)``.

        Closing the iterator (the client went away) stops the generator at its next piece.
        """
        require_text(question, "question")
        contexts, embedder = await self._search(name, q)
        pipeline = self._pipeline(name, embedder)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        gone = threading.Event()

        def on_token(piece: str) -> None:
            if gone.is_set():
                raise _ClientGone
            loop.call_soon_threadsafe(events.put_nowait, ("token", piece))

        def run() -> None:
            try:
                result = pipeline.answer(question, contexts, on_token)
            except _ClientGone:
                return
            except Exception as exc:
                loop.call_soon_threadsafe(events.put_nowait, ("error", exc))
                return
            loop.call_soon_threadsafe(events.put_nowait, ("done", result.to_dict()))

        loop.run_in_executor(self._generate_pool, run)
        try:
            while True:
                kind, value = await events.get()
                yield kind, value
                if kind != "token":
                    return
        finally:
            gone.set()

    # ---- writing ---------------------------------------------------------------------------

    async def add_documents(self, name: str, rows: list[Any]) -> dict:
        """Ingest JSON documents (rows as ``ragcun ingest`` reads JSONL: ``id``, ``text``, ``title``, the
        rest metadata) through the idempotent pipeline; every row is checked before anything is written."""
        from ragcun.ingest.readers import SourceDocument, document_of_row

        if not isinstance(rows, list) or not rows:
            raise InvalidInputError("documents must be a non-empty list of objects with id and text")
        documents: list[SourceDocument] = []
        first: dict[str, int] = {}
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise InvalidInputError(f"documents[{i}] is {type(row).__name__}, expected an object")
            doc = document_of_row(row)
            if isinstance(doc, str):
                raise InvalidInputError(f"documents[{i}]: {doc}")
            if doc.doc_id in first:
                raise InvalidInputError(
                    f"documents[{i}]: duplicate id {doc.doc_id!r} (also documents[{first[doc.doc_id]}])"
                )
            first[doc.doc_id] = i
            documents.append(doc)

        def write() -> dict:
            from ragcun.ingest import IngestOptions, ingest_documents

            with self.ws.catalog.session() as session:
                embedder = self.ws.embedder_for(require_collection(session, name))
            options = IngestOptions(batch_size=self.ingest_batch_size)
            return ingest_documents(self.ws, documents, name, embedder, options, API_SOURCE).to_dict()

        return await self.in_store(write)

    async def delete_document(self, name: str, doc_id: str) -> dict:
        from ragcun.collections.documents import delete_document

        def delete() -> dict:
            with self.ws.catalog.session() as session:
                require_collection(session, name)
            return delete_document(self.ws, name, doc_id).to_dict()

        return await self.in_store(delete)


class _ClientGone(RagcunError):
    """Raised inside the generator thread when the streaming client has disconnected."""
