"""The RAG retriever: Gaussian embeddings searched by L2, in memory or over a persistent collection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ragcun.errors import InvalidInputError, RagcunError


@dataclass(frozen=True)
class RetrievedDoc:
    """One retrieved passage.

    Attributes:
        text: The passage (a whole document in memory, a chunk in a collection).
        doc_id: The document's id: the id given to :meth:`Retriever.add_documents` (its position
            by default), or the collection's document id.
        distance: True Euclidean distance to the query.
        norm: Euclidean norm of the passage's embedding.
        probability: Softmax of ``-distance² / (2σ²)`` over the retrieved set, see
            :func:`ragcun.retrieve.collection.gaussian_probabilities`.
        source: Where the passage came from (a file for collections; ``None`` unless given in memory).
        chunk_id: The point id in a collection; ``None`` in memory.
        chunk: Chunk ordinal within the document.
        title: The document title, when known.
    """

    text: str
    doc_id: str
    distance: float
    norm: float
    probability: float
    source: str | None = None
    chunk_id: str | None = None
    chunk: int = 0
    title: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def require_text(value, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{name} must be a non-empty string")
    return value


def check_top_k(top_k) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k <= 0:
        raise InvalidInputError(f"top_k must be a positive integer, got {top_k!r}")
    return int(top_k)


class Retriever:
    """Retrieve passages by true L2 distance with a Gaussian model.

    In memory (the default) it wraps :class:`ragcun.GaussianRetriever`; with ``collection`` it
    searches a persistent collection with the model version that built it.

    Args:
        embedding_model: In memory: a ragcun model directory (``None``: the default model). With
            a collection: must be the collection's model if given.
        collection: Name of a persistent collection to search instead of an in-memory index.
        workspace: An open :class:`ragcun.workspace.Workspace` for ``collection``; ``None`` opens
            one from the environment (closed by :meth:`close`).
        embedder: An already loaded model, instead of ``embedding_model``.
        sigma: Scale σ of the Gaussian likelihood behind each hit's ``probability``; ``None``: the
            collection's calibrated σ (``ragcun calibrate``), else 1.
    """

    def __init__(self, embedding_model: str | Path | None = None, *, collection: str | None = None,
                 workspace=None, embedder=None, sigma: float | None = None):
        if sigma is not None and not sigma > 0:
            raise InvalidInputError(f"sigma must be positive, got {sigma!r}")
        self.sigma = sigma
        self.collection = collection
        self._ids: list[str] = []
        self._sources: list[str | None] = []
        if collection is None:
            from ragcun.retrieve import GaussianRetriever

            self._memory = GaussianRetriever(model_path=embedding_model, embedder=embedder)
            self._workspace = None
            self._owns_workspace = False
            self._embedder = self._memory.embedder
        else:
            if not isinstance(collection, str) or not collection.strip():
                raise InvalidInputError("collection must be a non-empty name")
            self._memory = None
            self._workspace = workspace
            self._owns_workspace = workspace is None
            if embedder is None and embedding_model is not None:
                from ragcun.model import GaussianEmbedder

                embedder = GaussianEmbedder.load(embedding_model)
            # None until first use: the collection's own model, checked against the catalog.
            self._embedder = embedder

    # ---- in memory ----------------------------------------------------------------------------

    def add_documents(self, documents: Sequence[str], ids: Sequence[str] | None = None,
                      sources: Sequence[str | None] | None = None) -> None:
        """Embed and index documents in memory.

        Args:
            documents: Non-empty strings.
            ids: One id per document (default: its position among all documents added).
            sources: One source per document (a file name, a URL…), reported with each hit.
        """
        if self._memory is None:
            raise RagcunError(f"collection {self.collection!r} is persistent: add documents with "
                              f"`ragcun ingest PATH -c {self.collection}`")
        from ragcun.retrieve.gaussian import check_documents

        documents = check_documents(documents)
        start = len(self._ids)
        ids = [str(start + i) for i in range(len(documents))] if ids is None else [str(i) for i in ids]
        sources = [None] * len(documents) if sources is None else list(sources)
        if len(ids) != len(documents) or len(sources) != len(documents):
            raise InvalidInputError(f"{len(documents)} documents but {len(ids)} ids and {len(sources)} sources")
        self._memory.add_documents(documents)
        self._ids.extend(ids)
        self._sources.extend(sources)

    def __len__(self) -> int:
        if self._memory is not None:
            return len(self._memory)
        from ragcun.catalog.ops import collection_counts, require_collection

        with self.workspace.catalog.session() as session:
            return collection_counts(session, require_collection(session, self.collection))["chunks"]

    # ---- either -------------------------------------------------------------------------------

    @property
    def workspace(self):
        """The workspace of a persistent retriever, opened on first use."""
        if self._workspace is None and self.collection is not None:
            from ragcun.settings import Settings
            from ragcun.workspace import Workspace

            self._workspace = Workspace(Settings.from_env())
        return self._workspace

    @property
    def embedder(self):
        """The model that embeds queries (for a collection: the model version that built it)."""
        if self._embedder is None:
            from ragcun.catalog.ops import require_collection

            with self.workspace.catalog.session() as session:
                self._embedder = self.workspace.embedder_for(require_collection(session, self.collection))
        return self._embedder

    def retrieve(self, query: str, top_k: int = 5) -> list[RetrievedDoc]:
        """The ``top_k`` passages nearest to ``query``, nearest first; ``[]`` when there are none.

        Raises:
            ValueError: on an empty query or a ``top_k`` that is not a positive integer.
            CollectionNotFound: when the collection does not exist.
        """
        from ragcun.retrieve.collection import gaussian_probabilities, search

        require_text(query, "query")
        top_k = check_top_k(top_k)
        if self._memory is None:
            hits = search(self.workspace, self.collection, query, top_k, embedder=self.embedder)
            # search() already gives each hit its probability under the collection's calibrated σ.
            rows = [dict(text=h.text, doc_id=h.doc_id, distance=h.distance, norm=h.norm, source=h.source,
                         chunk_id=h.chunk_id, chunk=h.chunk, title=h.title, probability=h.probability)
                    for h in hits]
        else:
            vector = self._memory.embed(query)
            positions, distances = self._memory.nearest(vector, top_k)
            norms = np.linalg.norm(self._memory._vectors[positions].astype(np.float64), axis=1)
            rows = [dict(text=self._memory.documents[p], doc_id=self._ids[p], distance=float(d), norm=float(n),
                         source=self._sources[p]) for p, d, n in zip(positions, distances, norms)]
        if self._memory is not None or self.sigma is not None:
            sigma = 1.0 if self.sigma is None else self.sigma
            for row, p in zip(rows, gaussian_probabilities([row["distance"] for row in rows], sigma)):
                row["probability"] = float(p)
        return [RetrievedDoc(**row) for row in rows]

    def close(self) -> None:
        """Close the workspace this retriever opened itself (not one that was passed in)."""
        if self._owns_workspace and self._workspace is not None:
            self._workspace.close()
            self._workspace = None

    def __enter__(self) -> Retriever:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
