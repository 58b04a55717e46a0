"""Search over a persistent collection, with the model version that built it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from qdrant_client import models

from ragcun.catalog.models import PAYLOAD_INDEXES
from ragcun.catalog.ops import collection_counts, require_collection
from ragcun.errors import InvalidInputError, ModelMismatchError
from ragcun.retrieve.base import (
    DEFAULT_FUSION,
    DEFAULT_MODE,
    Hit,
    query_text,
    query_vector,
    search_vector,
)
from ragcun.retrieve.chance import ChanceLaw
from ragcun.retrieve.filters import parse_filter
from ragcun.validation import check_positive, check_top_k, require_text
from ragcun.workspace import Workspace

if TYPE_CHECKING:  # the model imports torch; annotations alone need not
    from ragcun.model import GaussianEmbedder

logger = logging.getLogger(__name__)
_NOTICED: set[tuple[int, str]] = set()  # (store, physical collection): the dense-only notice is said once


def search(
    ws: Workspace,
    collection_name: str,
    query: str | np.ndarray,
    top_k: int = 10,
    embedder: GaussianEmbedder | None = None,
    hnsw_ef: int | None = None,
    exact: bool = False,
    plus: Sequence[str] = (),
    minus: Sequence[str] = (),
    sigma: float | None = None,
    mode: str = DEFAULT_MODE,
    fusion: str = DEFAULT_FUSION,
    filter: str | models.Filter | None = None,
    diversity: float | None = None,
    text: str | None = None,
) -> list[Hit]:
    """The ``top_k`` best chunks for ``query``: by default nearest by true L2 distance, nearest first.

    The query is embedded by the collection's own model version; passing an ``embedder`` of
    another version is refused rather than silently mixing vector spaces. Query arithmetic: the
    searched vector is e(query) + Σ e(plus) − Σ e(minus), where ``query`` is a text or already a
    vector of the collection's model (see :func:`ragcun.retrieve.base.query_vector`); it may be
    an empty text when ``plus`` is not. ``sigma``: the scale behind each hit's probability
    (``None``: the collection's calibrated σ, else 1). ``mode``, ``fusion``, ``filter`` and
    ``diversity``: see :func:`ragcun.retrieve.base.search_vector`. A collection made before hybrid
    search answers every mode dense-only (with a one-line notice) until ``ragcun reindex`` adds its
    BM25 vectors. ``text``: the words ``bm25`` and ``hybrid`` match when ``query`` is a vector already
    embedded from them (``ragcun serve`` embeds queries in batches); by default the query text's.
    """
    top_k = check_top_k(top_k)
    if hnsw_ef is not None:  # before the model loads and the query is embedded
        check_positive(hnsw_ef, "hnsw_ef (--hnsw-ef)")
    with ws.catalog.session() as session:
        collection = require_collection(session, collection_name)
        expected = collection.model_version.fingerprint
        if embedder is None:
            embedder = ws.embedder_for(collection)
        elif embedder.fingerprint != expected:
            raise ModelMismatchError(
                f"collection {collection_name!r} was built by model {expected[:12]}; "
                f"refusing to search it with model {embedder.fingerprint[:12]}"
            )
        physical = collection.physical_name
        hnsw_ef = hnsw_ef if hnsw_ef is not None else collection.settings.get("hnsw_ef")
        sigma = float(collection.settings.get("sigma", 1.0)) if sigma is None else sigma
        documents = collection_counts(session, collection)["chunks"]
        where = parse_filter(filter, collection.settings.get(PAYLOAD_INDEXES))
    if mode != "dense" and not ws.store.shape(physical).hybrid:
        if (id(ws.store), physical) not in _NOTICED:
            _NOTICED.add((id(ws.store), physical))
            logger.warning(
                "collection %r has no BM25 vectors yet: searching dense only; `ragcun reindex -c %s` adds them",
                collection_name,
                collection_name,
            )
        mode = "dense"
    vector = query_vector(embedder, query, plus, minus)
    return search_vector(
        ws.store,
        physical,
        vector,
        top_k,
        sigma=sigma,
        hnsw_ef=hnsw_ef,
        exact=exact,
        text=query_text(query, plus) if text is None else text,
        mode=mode,
        fusion=fusion,
        filter=where,
        diversity=diversity,
        law=ChanceLaw.of(embedder, documents),
    )


class CollectionRetriever:
    """A persistent collection with the methods of :class:`ragcun.GaussianRetriever` that reading needs.

    Every search looks the collection up again, so it follows a reindex or a new calibrated σ.

    Args:
        collection: The logical collection's name.
        workspace: An open workspace; ``None`` opens one from the environment on first use (closed
            by :meth:`close`).
        embedder: The collection's model, already loaded; checked against the catalog at each search.
    """

    def __init__(
        self, collection: str, *, workspace: Workspace | None = None, embedder: GaussianEmbedder | None = None
    ):
        self.collection = require_text(collection, "collection")
        self._workspace = workspace
        self._owns_workspace = workspace is None
        self._embedder = embedder  # None until first use: the collection's own model

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None:
            from ragcun.settings import Settings

            self._workspace = Workspace(Settings.from_env())
        return self._workspace

    @property
    def embedder(self):
        """The model version that built the collection."""
        if self._embedder is None:
            with self.workspace.catalog.session() as session:
                self._embedder = self.workspace.embedder_for(require_collection(session, self.collection))
        return self._embedder

    def __len__(self) -> int:
        with self.workspace.catalog.session() as session:
            return collection_counts(session, require_collection(session, self.collection))["chunks"]

    def add_documents(self, documents: Sequence[str], **_) -> None:
        raise InvalidInputError(
            f"collection {self.collection!r} is persistent: add documents with "
            f"`ragcun ingest PATH -c {self.collection}`"
        )

    def embed(self, text: str) -> np.ndarray:
        """The collection model's embedding of one text."""
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
        """See :func:`search`; ``sigma=None`` is the collection's calibrated σ."""
        return search(
            self.workspace,
            self.collection,
            query,
            top_k,
            embedder=self.embedder,
            plus=plus,
            minus=minus,
            sigma=sigma,
            mode=mode,
            fusion=fusion,
            filter=filter,
            diversity=diversity,
        )

    def close(self) -> None:
        """Close the workspace this retriever opened itself (not one that was passed in)."""
        if self._owns_workspace and self._workspace is not None:
            self._workspace.close()
            self._workspace = None
