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
from ragcun.retrieve.filters import parse_filter
from ragcun.store.base import FUSIONS, MODES, SearchRequest, VectorStore
from ragcun.store.bm25 import query_vector as bm25_query_vector
from ragcun.validation import check_positive, check_sigma, check_top_k, check_vector, require_text

DEFAULT_MODE = "dense"
# Chosen on benchmarks/hybrid.py's five collections: DBSF over the dense log-likelihood had the higher
# mean nDCG@10 in every dense space (default model 0.577 against RRF's 0.569); see the README's "Hybrid search".
DEFAULT_FUSION = "dbsf"

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
        score: What ranked the hit: the BM25 score (``bm25`` mode) or the fused score (``hybrid``);
            ``None`` in ``dense`` mode, where ``distance`` ranks.
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
    score: float | None = None
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
    return (base + (signs[:, None] * embedder.encode_queries(texts).astype(np.float64)).sum(axis=0)).astype(np.float32)


def query_text(query: str | np.ndarray | None, plus: Sequence[str] = ()) -> str | None:
    """The words a BM25 search matches: the query text and the added texts (subtracted ones match nothing)."""
    words = [t for t in ([query] if isinstance(query, str) else []) + list(plus) if t.strip()]
    return " ".join(words) or None


def check_mode(mode: str, fusion: str, diversity: float | None) -> None:
    if mode not in MODES:
        raise InvalidInputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if fusion not in FUSIONS:
        raise InvalidInputError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
    if diversity is not None and (isinstance(diversity, bool) or not 0.0 <= float(diversity) <= 1.0):
        raise InvalidInputError(f"diversity must be between 0 and 1, got {diversity!r}")


def search_vector(
    store: VectorStore,
    name: str,
    vector: np.ndarray,
    top_k: int,
    *,
    sigma: float = 1.0,
    hnsw_ef: int | None = None,
    exact: bool = False,
    text: str | None = None,
    mode: str = DEFAULT_MODE,
    fusion: str = DEFAULT_FUSION,
    filter: str | models.Filter | None = None,
    diversity: float | None = None,
    law: ChanceLaw | None = None,
) -> list[Hit]:
    """The ``top_k`` best points of collection ``name`` for the query, best first, as hits.

    Args:
        store: Any engine: a persistent one, or :class:`~ragcun.store.memory.MemoryStore`.
        name: The physical collection.
        vector: The dense query vector; every hit's ``distance`` is measured from it.
        top_k: How many hits at most.
        sigma: Scale of the Gaussian likelihood behind each hit's ``probability``.
        hnsw_ef: Search width, for engines with an HNSW index.
        exact: Exact search on engines that have an index.
        text: The query text, whose BM25 terms the ``bm25`` and ``hybrid`` modes match.
        mode: ``dense`` (nearest by L2), ``bm25`` or ``hybrid`` (both, fused in the engine).
        fusion: How ``hybrid`` fuses: ``rrf`` or ``dbsf`` (see :class:`~ragcun.store.base.SearchRequest`).
        filter: A Qdrant ``models.Filter`` or a filter string (see :mod:`ragcun.retrieve.filters`).
        diversity: MMR diversity in [0, 1] (``None``: plain ranking).
        law: The collection's null law, where its model is adapted (:meth:`ChanceLaw.of`): gives each
            hit's ``p_value`` and the query's ``out_of_domain`` flag. ``None``: neither.
    """
    top_k, sigma = check_top_k(top_k), check_sigma(sigma)
    hnsw_ef = None if hnsw_ef is None else check_positive(hnsw_ef, "hnsw_ef (--hnsw-ef)")
    check_mode(mode, fusion, diversity)
    sparse = None
    if mode != "dense":
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError(f"{mode} search needs a query text, not only a vector")
        sparse = bm25_query_vector(text)
    request = SearchRequest(
        vector=vector,
        limit=top_k,
        sparse=sparse,
        mode=mode,
        fusion=fusion,
        filter=parse_filter(filter),
        hnsw_ef=hnsw_ef,
        exact=exact,
        diversity=None if diversity is None else float(diversity),
    )
    points = store.query(name, request)
    query = np.asarray(vector, dtype=np.float64)
    query_norm = float(np.linalg.norm(query))
    if mode == "dense" and diversity is None:
        distances = [float(p.score) for p in points]
    else:
        distances = [float(np.linalg.norm(np.asarray(p.vector, dtype=np.float64) - query)) for p in points]
    probabilities = gaussian_probabilities(distances, sigma)
    p_values = law.p_values(np.asarray(distances), vector) if law is not None else [None] * len(points)
    out_of_domain = law.out_of_domain(p_values[0] if len(points) else None) if law is not None else None
    return [
        hit_of(
            p,
            distance,
            None if mode == "dense" and diversity is None else float(p.score),
            query_norm,
            float(prob),
            None if pv is None else float(pv),
            out_of_domain,
        )
        for p, distance, prob, pv in zip(points, distances, probabilities, p_values, strict=True)
    ]


def hit_of(
    point: models.ScoredPoint,
    distance: float,
    score: float | None,
    query_norm: float,
    probability: float,
    p_value: float | None = None,
    out_of_domain: bool | None = None,
) -> Hit:
    payload = point.payload or {}  # ragcun writes every point with its payload
    return Hit(
        chunk_id=str(point.id),
        doc_id=payload["doc_id"],
        distance=distance,
        norm=payload["norm"],
        text=payload["text"],
        source=payload.get("source"),
        chunk=payload.get("chunk", 0),
        title=payload.get("title"),
        query_norm=query_norm,
        probability=probability,
        metadata=payload.get("metadata") or {},
        score=score,
        p_value=p_value,
        out_of_domain=out_of_domain,
    )
