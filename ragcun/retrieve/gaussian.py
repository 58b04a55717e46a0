"""In-memory exact retrieval by Euclidean distance over Gaussian embeddings."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import models

from ragcun.errors import InvalidInputError, ModelLoadError
from ragcun.model import GaussianEmbedder, default_model_path
from ragcun.model.adapt import Fitted, SpanOptions, fit_candidate
from ragcun.retrieve.base import (
    DEFAULT_FUSION,
    DEFAULT_MODE,
    Hit,
    query_text,
    query_vector,
    search_vector,
)
from ragcun.retrieve.chance import ChanceLaw
from ragcun.store.base import CollectionParams
from ragcun.store.memory import POINTS_FILE, VECTORS_FILE, MemoryStore
from ragcun.validation import (
    check_documents,
    check_same_length,
    check_top_k,
    require_text,
)

logger = logging.getLogger(__name__)

STATE_FILE = "retriever.json"
MODEL_DIR = "model"
# The one collection of a retriever's store. Point ids are positions: "0", "1", … in the order added.
COLLECTION = "documents"
# 2: the store's own files (vectors.npy, points.json). 1 (no "format" key): the texts in
# retriever.json beside vectors.npy; still read, and written as 2 by the next save.
FORMAT = 2


class GaussianRetriever:
    """Embed documents with a Gaussian model and retrieve them by true L2 distance.

    Documents live in a :class:`~ragcun.store.memory.MemoryStore` (:attr:`store`) and are searched
    through :func:`ragcun.retrieve.base.search_vector`, the same path as a persistent collection.

    Args:
        model_path: A ragcun model directory; ``None`` uses the shipped default model
            (:func:`ragcun.model.default_model_path`).
        embedder: An already loaded model (takes precedence over ``model_path``).
    """

    def __init__(self, model_path: str | Path | None = None, embedder: GaussianEmbedder | None = None):
        if embedder is None:
            embedder = GaussianEmbedder.load(model_path if model_path is not None else default_model_path())
        self.embedder = embedder
        self.store = MemoryStore()
        self.store.create_collection(COLLECTION, CollectionParams(dim=embedder.dim))
        # The documents' base (pre-head) embeddings, rows in document order, kept so that adapt() needs
        # no encoder pass; None once a document came in without one (a loaded retriever).
        self._base: np.ndarray | None = np.empty((0, embedder.base_dim), dtype=np.float32)

    def __len__(self) -> int:
        return self.store.count(COLLECTION)

    @property
    def documents(self) -> list[str]:
        """The documents' texts, in the order they were added."""
        return [(record.payload or {})["text"] for record in self.store.scroll(COLLECTION)]

    def add_documents(
        self,
        documents: Sequence[str],
        batch_size: int = 32,
        *,
        ids: Sequence[str] | None = None,
        sources: Sequence[str | None] | None = None,
        titles: Sequence[str | None] | None = None,
        metadata: Sequence[dict | None] | None = None,
    ) -> None:
        """Embed and index documents; they are appended to those already added.

        Args:
            documents: Non-empty strings.
            batch_size: Texts embedded at once.
            ids: One id per document, reported as each hit's ``doc_id`` (default: its position
                among all documents added).
            sources: One source per document (a file name, a URL…), reported with each hit.
            titles: One title per document, reported with each hit.
            metadata: One dict per document, reported with each hit and filterable as ``metadata.KEY``.
        """
        documents = check_documents(documents)
        check_same_length(documents, ids=ids, sources=sources, titles=titles, metadata=metadata)
        if not documents:
            return
        vectors, base = self.embedder.encode_with_base(documents, batch_size=batch_size)
        if self._base is not None:
            self._base = np.concatenate([self._base, base])
        self._append(documents, vectors, ids, sources, titles, metadata)

    def _append(
        self, documents: list[str], vectors: np.ndarray, ids=None, sources=None, titles=None, metadata=None
    ) -> None:
        start = len(self)
        positions = [str(start + i) for i in range(len(documents))]
        ids = positions if ids is None else [str(i) for i in ids]
        sources = sources if sources is not None else [None] * len(documents)
        titles = titles if titles is not None else [None] * len(documents)
        metadata = metadata if metadata is not None else [None] * len(documents)
        norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
        payloads = [
            {
                "doc_id": doc_id,
                "chunk": 0,
                "text": text,
                "norm": float(norm),
                "source": source,
                "title": title,
                "metadata": dict(meta or {}),
            }
            for doc_id, text, norm, source, title, meta in zip(
                ids, documents, norms, sources, titles, metadata, strict=True
            )
        ]
        self.store.upsert(COLLECTION, positions, vectors, payloads)

    def adapt(self, *, force: bool = False, config: Any = None, spans: SpanOptions | None = None) -> Fitted:
        """Fit this corpus's own head with no labels (the ``adapt`` recipe) and switch to it if its gate passes.

        The head is fitted on the documents' base embeddings, kept since they were added (a loaded
        retriever encodes its documents once here); switching re-embeds them through the new head
        only. The result says whether the gate passed and why; ``force`` switches anyway.

        Args:
            force: Switch even when the acceptance gate refuses the new head.
            config: The recipe's ``AdaptConfig``; ``None``: its defaults.
            spans: How many query-like spans of the documents the fit and the gate use (``None``: defaults).
        """
        documents = self.documents
        if len(documents) < 3:
            raise InvalidInputError(f"adapting needs at least 3 documents; this retriever holds {len(documents)}")
        if self._base is None or len(self._base) != len(documents):
            self._base = self.embedder.encode_with_base(documents)[1]
        fitted = fit_candidate(self.embedder, self._base, documents, config=config, spans=spans or SpanOptions())
        if fitted.passed or force:
            records = list(self.store.scroll(COLLECTION))
            self.embedder = fitted.model
            self.store.drop_collection(COLLECTION)
            self.store.create_collection(COLLECTION, CollectionParams(dim=self.embedder.dim))
            vectors = self.embedder.apply_head(self._base)
            norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
            self.store.upsert(
                COLLECTION,
                [str(r.id) for r in records],
                vectors,
                [{**(r.payload or {}), "norm": float(n)} for r, n in zip(records, norms, strict=False)],
            )
            fitted.activated = True
        return fitted

    def embed(self, text: str) -> np.ndarray:
        """The Gaussian embedding of one text as a query (through an adapted head's query map), for vector search."""
        return query_vector(self.embedder, require_text(text, "text"))

    def search(
        self,
        query: str | np.ndarray,
        top_k: int = 5,
        *,
        sigma: float | None = None,
        plus: Sequence[str] = (),
        minus: Sequence[str] = (),
        mode: str = DEFAULT_MODE,
        fusion: str = DEFAULT_FUSION,
        filter: str | models.Filter | None = None,
        diversity: float | None = None,
    ) -> list[Hit]:
        """The ``top_k`` nearest documents as :class:`~ragcun.retrieve.base.Hit`, nearest first.

        Args:
            query: A text, or a vector of the model's dim (query arithmetic: ``embed(a) - embed(b)``).
            top_k: How many hits at most; beyond the corpus size, every document.
            sigma: Scale of the Gaussian likelihood behind each hit's probability (``None``: 1).
            plus: Texts whose embeddings are added to the query vector.
            minus: Texts whose embeddings are subtracted from it.
            mode: ``dense`` (L2), ``bm25`` or ``hybrid``; ``fusion``, ``filter``, ``diversity``: see
                :func:`ragcun.retrieve.base.search_vector`.
        """
        top_k = check_top_k(top_k)
        vector = query_vector(self.embedder, query, plus, minus)
        return search_vector(
            self.store,
            COLLECTION,
            vector,
            top_k,
            sigma=1.0 if sigma is None else sigma,
            text=query_text(query, plus),
            mode=mode,
            fusion=fusion,
            filter=filter,
            diversity=diversity,
            law=ChanceLaw.of(self.embedder, len(self)),
        )

    def retrieve(self, query: str | np.ndarray, top_k: int = 5) -> list[tuple[str, float]]:
        """The ``top_k`` nearest documents as ``(document, distance)``, nearest first.

        The distance is the true Euclidean distance (not squared). A ``top_k`` beyond the corpus
        size returns every document; an empty retriever returns ``[]``.
        """
        return [(hit.text, hit.distance) for hit in self.search(query, top_k)]

    def retrieve_vector(self, vector: np.ndarray, top_k: int = 5) -> list[tuple[str, float]]:
        """Like :meth:`retrieve`, from an embedding instead of a text."""
        return self.retrieve(vector, top_k)

    def nearest(self, vector: np.ndarray, top_k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """Positions in :attr:`documents` of the ``top_k`` nearest documents, and their true L2
        distances, nearest first."""
        hits = self.search(vector, top_k)
        return (
            np.array([int(str(hit.chunk_id)) for hit in hits], dtype=np.int64),
            np.array([hit.distance for hit in hits], dtype=np.float64),
        )

    def close(self) -> None:
        """Nothing to release (a persistent :class:`~ragcun.retrieve.CollectionRetriever` closes its workspace)."""

    # ---- persistence --------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the model and the store to a directory (JSON and .npy, no pickle)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        fingerprint = self.embedder.save(path / MODEL_DIR)
        self.store.save(COLLECTION, path)
        state = {"format": FORMAT, "model_version": fingerprint, "count": len(self)}
        (path / STATE_FILE).write_text(json.dumps(state))

    @classmethod
    def load(cls, path: str | Path) -> GaussianRetriever:
        """Load a directory written by :meth:`save` (by this version, or by one that wrote format 1)."""
        path = Path(path)
        state_path = path / STATE_FILE
        if not state_path.is_file():
            raise InvalidInputError(f"{state_path}: missing; is {path} a saved GaussianRetriever?")
        state = json.loads(state_path.read_text())
        retriever = cls(model_path=path / MODEL_DIR)
        retriever._base = None  # not saved: adapt() encodes the documents once
        if retriever.embedder.fingerprint != state["model_version"]:
            raise ModelLoadError(
                f"{state_path}: vectors were built by model {state['model_version'][:12]}…, "
                f"but {path / MODEL_DIR} is {retriever.embedder.fingerprint[:12]}…"
            )
        if state.get("format") == FORMAT:
            retriever.store.drop_collection(COLLECTION)
            retriever.store.load(COLLECTION, path)
        elif "format" not in state and not (path / POINTS_FILE).exists():
            retriever._load_format_1(path, state)
        else:
            raise ModelLoadError(
                f"{state_path}: unknown format {state.get('format')!r}; this ragcun reads 1 and {FORMAT}"
            )
        if len(retriever) != state["count"]:
            raise ModelLoadError(f"{path}: {len(retriever)} documents stored, {state['count']} expected")
        return retriever

    def _load_format_1(self, path: Path, state: dict) -> None:
        vectors = np.load(path / VECTORS_FILE, allow_pickle=False)
        if vectors.shape != (state["count"], self.embedder.dim) or len(state["documents"]) != state["count"]:
            raise ValueError(f"{path / VECTORS_FILE}: shape {vectors.shape} does not match {state['count']} documents")
        logger.info("%s: format 1; the next save writes format %d", path, FORMAT)
        self._append(list(state["documents"]), vectors.astype(np.float32, copy=False))
