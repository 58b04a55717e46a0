"""The one search path: a query vector, composed from texts and vectors, searched in a :class:`VectorStore`.

:class:`ragcun.GaussianRetriever` (a :class:`~ragcun.store.memory.MemoryStore`), collection search
(the workspace's engine) and so :class:`ragcun.Retriever` and ``ragcun search`` all end in
:func:`search_vector`, and all return :class:`Hit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from qdrant_client import models

from ragcun.errors import InvalidInputError
from ragcun.retrieve.chance import ChanceLaw
from ragcun.store.base import VectorStore
from ragcun.validation import check_sigma, check_top_k, check_vector, require_text

if TYPE_CHECKING:  # the model imports torch; annotations alone need not
    from ragcun.model import GaussianEmbedder


@dataclass(frozen=True, kw_only=True)
class Hit:
    """One retrieved passage, from any retriever.

    Attributes:
        chunk_id: The point's id in its store (in memory: the document's position).
        doc_id: The document's id (in memory: the id it was added with, its position by default).
        distance: True Euclidean distance to the query vector.
        norm: Euclidean norm of the passage's embedding.
        text: The passage (a chunk in a collection, a whole document in memory).
        source: Where the passage came from (a file for collections), if known.
        chunk: Chunk ordinal within the document.
        title: The document title, if known.
        query_norm: Euclidean norm of the query vector.
        probability: Softmax of ``-distance² / (2σ²)`` over the returned hits, see :func:`gaussian_probabilities`;
            a probability only where σ was calibrated on the collection (``ragcun calibrate``).
        metadata: The document's metadata, if any.
        p_value: Where the collection's model is adapted (N(0, I) by construction): the chance that the
            nearest of the collection's documents would be at least this close if none were related to
            the query (small: closer than chance); see :mod:`ragcun.retrieve.chance`. ``None`` otherwise.
        out_of_domain: Where the model is adapted: whether the query lies where the collection has no
            mass (its nearest passage is no closer than chance, see :mod:`ragcun.retrieve.chance`).
            ``None`` otherwise.
    """

    chunk_id: str | None = None
    doc_id: str
    distance: float
    norm: float
    text: str
    source: str | None = None
    chunk: int = 0
    title: str | None = None
    query_norm: float | None = None
    probability: float | None = None
    metadata: dict = field(default_factory=dict)
    p_value: float | None = None
    out_of_domain: bool | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def gaussian_probabilities(distances, sigma: float = 1.0) -> np.ndarray:
    """Softmax over the candidates (last axis) of −distance² / (2σ²): each candidate's posterior
    share if the query were drawn from an isotropic Gaussian of scale σ around one of them."""
    sigma = check_sigma(sigma)
    logits = -np.square(np.asarray(distances, dtype=np.float64)) / (2.0 * sigma**2)
    if logits.size == 0:
        return logits
    logits -= logits.max(axis=-1, keepdims=True)  # shift-invariant; avoids every weight underflowing to 0
    weights = np.exp(logits)
    return weights / weights.sum(axis=-1, keepdims=True)


def query_vector(
    embedder: GaussianEmbedder, query: str | np.ndarray | None, plus: Sequence[str] = (), minus: Sequence[str] = ()
) -> np.ndarray:
    """The vector to search: e(query) + Σ e(plus) − Σ e(minus), float32 of the model's dim.

    Args:
        embedder: The model that embeds the texts.
        query: A text, or an embedding already (e.g. ``embed(a) - embed(b)``); an empty text is
            allowed when ``plus`` is not empty.
        plus: Texts whose embeddings are added.
        minus: Texts whose embeddings are subtracted.
    """
    plus, minus = list(plus), list(minus)
    for term in (*plus, *minus):
        require_text(term, "each plus or minus term")
    if query is not None and not isinstance(query, str):
        base, texts = check_vector(query, embedder.dim).astype(np.float64), [*plus, *minus]
    elif isinstance(query, str) and query.strip():
        base, texts = np.zeros(embedder.dim), [query, *plus, *minus]
    elif plus:
        base, texts = np.zeros(embedder.dim), [*plus, *minus]
    else:
        raise InvalidInputError("query must be a non-empty string")
    if not texts:
        return base.astype(np.float32)
    signs = np.array([1.0] * (len(texts) - len(minus)) + [-1.0] * len(minus))
    return (base + (signs[:, None] * embedder.encode(texts).astype(np.float64)).sum(axis=0)).astype(np.float32)


def search_vector(
    store: VectorStore,
    name: str,
    vector: np.ndarray,
    top_k: int,
    *,
    sigma: float = 1.0,
    hnsw_ef: int | None = None,
    exact: bool = False,
    law: ChanceLaw | None = None,
) -> list[Hit]:
    """The ``top_k`` points of collection ``name`` nearest to ``vector`` by L2, nearest first, as hits.

    Args:
        store: Any engine: a persistent one, or :class:`~ragcun.store.memory.MemoryStore`.
        name: The physical collection.
        vector: The query vector.
        top_k: How many hits at most.
        sigma: Scale of the Gaussian likelihood behind each hit's ``probability``.
        hnsw_ef: Search width, for engines with an HNSW index.
        exact: Exact search on engines that have an index.
        law: The collection's null law, where its model is adapted (:meth:`ChanceLaw.of`): gives each
            hit's ``p_value`` and the query's ``out_of_domain`` flag. ``None``: neither.
    """
    top_k, sigma = check_top_k(top_k), check_sigma(sigma)
    points = store.search(name, vector, limit=top_k, hnsw_ef=hnsw_ef, exact=exact)
    query_norm = float(np.linalg.norm(np.asarray(vector, dtype=np.float64)))
    distances = [float(p.score) for p in points]
    probabilities = gaussian_probabilities(distances, sigma)
    p_values = law.p_values(np.asarray(distances), vector) if law is not None else [None] * len(points)
    out_of_domain = law.out_of_domain(p_values[0] if len(points) else None) if law is not None else None
    return [
        hit_of(p, query_norm, float(prob), None if pv is None else float(pv), out_of_domain)
        for p, prob, pv in zip(points, probabilities, p_values, strict=True)
    ]


def hit_of(
    point: models.ScoredPoint,
    query_norm: float,
    probability: float,
    p_value: float | None = None,
    out_of_domain: bool | None = None,
) -> Hit:
    payload = point.payload or {}  # ragcun writes every point with its payload
    return Hit(
        chunk_id=str(point.id),
        doc_id=payload["doc_id"],
        distance=float(point.score),
        norm=payload["norm"],
        text=payload["text"],
        source=payload.get("source"),
        chunk=payload.get("chunk", 0),
        title=payload.get("title"),
        query_norm=query_norm,
        probability=probability,
        metadata=payload.get("metadata") or {},
        p_value=p_value,
        out_of_domain=out_of_domain,
    )
