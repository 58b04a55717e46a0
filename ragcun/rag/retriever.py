"""The RAG retriever: Gaussian embeddings searched by L2, in memory or over a persistent collection."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from qdrant_client import models

from ragcun.retrieve.base import DEFAULT_FUSION, DEFAULT_MODE, Hit, check_mode
from ragcun.validation import check_sigma, check_top_k, require_text

if TYPE_CHECKING:  # the model imports torch; annotations alone need not
    from ragcun.model import GaussianEmbedder
    from ragcun.retrieve.collection import CollectionRetriever
    from ragcun.retrieve.gaussian import GaussianRetriever
    from ragcun.workspace import Workspace


# One hit type for every retriever; the RAG name stays for callers that import it from here.
RetrievedDoc = Hit

__all__ = ["RetrievedDoc", "Retriever", "check_top_k", "require_text"]


class Retriever:
    """Retrieve passages by true L2 distance with a Gaussian model.

    In memory (the default) it searches a :class:`ragcun.GaussianRetriever`; with ``collection``
    a :class:`ragcun.retrieve.CollectionRetriever`, with the model version that built it. Both
    search through :func:`ragcun.retrieve.search_vector` and return :class:`ragcun.retrieve.Hit`.

    Args:
        embedding_model: In memory: a ragcun model directory (``None``: the default model). With
            a collection: must be the collection's model if given.
        collection: Name of a persistent collection to search instead of an in-memory index.
        workspace: An open :class:`ragcun.workspace.Workspace` for ``collection``; ``None`` opens
            one from the environment (closed by :meth:`close`).
        embedder: An already loaded model, instead of ``embedding_model``.
        sigma: Scale σ of the Gaussian likelihood behind each hit's ``probability``; ``None``: the
            collection's calibrated σ (``ragcun calibrate``), else 1.
        mode: ``dense`` (L2), ``bm25`` or ``hybrid`` (both, fused in the engine).
        fusion: ``rrf`` or ``dbsf``, for ``hybrid``.
        filter: A default payload filter (a Qdrant ``models.Filter`` or a filter string).
        diversity: MMR diversity in [0, 1] (``None``: none).
    """

    def __init__(
        self,
        embedding_model: str | Path | None = None,
        *,
        collection: str | None = None,
        workspace: Workspace | None = None,
        embedder: GaussianEmbedder | None = None,
        sigma: float | None = None,
        mode: str = DEFAULT_MODE,
        fusion: str = DEFAULT_FUSION,
        filter: str | models.Filter | None = None,
        diversity: float | None = None,
    ):
        self.sigma = None if sigma is None else check_sigma(sigma)
        check_mode(mode, fusion, diversity)
        self.mode, self.fusion, self.filter, self.diversity = mode, fusion, filter, diversity
        self.collection = collection
        self.index: GaussianRetriever | CollectionRetriever
        if collection is None:
            from ragcun.retrieve.gaussian import GaussianRetriever

            self.index = GaussianRetriever(model_path=embedding_model, embedder=embedder)
        else:
            from ragcun.retrieve.collection import CollectionRetriever

            if embedder is None and embedding_model is not None:
                from ragcun.model import GaussianEmbedder

                embedder = GaussianEmbedder.load(embedding_model)
            self.index = CollectionRetriever(collection, workspace=workspace, embedder=embedder)

    def add_documents(
        self,
        documents: Sequence[str],
        ids: Sequence[str] | None = None,
        sources: Sequence[str | None] | None = None,
        metadata: Sequence[dict | None] | None = None,
    ) -> None:
        """Embed and index documents in memory (a persistent collection is filled by ``ragcun ingest``).

        Args:
            documents: Non-empty strings.
            ids: One id per document (default: its position among all documents added).
            sources: One source per document (a file name, a URL…), reported with each hit.
            metadata: One dict per document, reported with each hit and filterable as ``metadata.KEY``.
        """
        self.index.add_documents(documents, ids=ids, sources=sources, metadata=metadata)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def workspace(self):
        """The workspace of a persistent retriever, opened on first use; ``None`` in memory."""
        return getattr(self.index, "workspace", None)

    @property
    def embedder(self):
        """The model that embeds queries (for a collection: the model version that built it)."""
        return self.index.embedder

    def embed(self, text: str) -> np.ndarray:
        """The embedding of one text, for query arithmetic: ``retrieve(embed(a) - embed(b))``."""
        return self.index.embed(text)

    def retrieve(
        self,
        query: str | np.ndarray,
        top_k: int = 5,
        *,
        plus: Sequence[str] = (),
        minus: Sequence[str] = (),
        filter: str | models.Filter | None = None,
    ) -> list[Hit]:
        """The ``top_k`` passages nearest to ``query``, nearest first; ``[]`` when there are none.

        Args:
            query: A text, or a vector of the model's dim (see :meth:`embed`).
            top_k: How many passages at most.
            plus: Texts whose embeddings are added to the query vector.
            minus: Texts whose embeddings are subtracted from it.
            filter: A payload filter for this call (``None``: the retriever's own).

        Raises:
            InvalidInputError: on an empty query or a ``top_k`` that is not a positive integer.
            CollectionNotFound: when the collection does not exist.
        """
        return self.index.search(
            query,
            top_k,
            sigma=self.sigma,
            plus=plus,
            minus=minus,
            mode=self.mode,
            fusion=self.fusion,
            filter=self.filter if filter is None else filter,
            diversity=self.diversity,
        )

    def close(self) -> None:
        """Close the workspace this retriever opened itself (not one that was passed in)."""
        self.index.close()

    def __enter__(self) -> Retriever:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
