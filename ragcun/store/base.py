"""The one interface every vector engine adapter implements.

Results use qdrant-client's own models (``ScoredPoint``, ``Record``, ``Distance``) whatever the
engine, so callers never see engine-specific types. Scores of a ``Distance.EUCLID`` collection are
true L2 distances, smallest first.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from uuid import UUID

import numpy as np
from qdrant_client import models

from ragcun.errors import InvalidInputError
from ragcun.settings import HNSW_EF, HNSW_EF_CONSTRUCT, HNSW_M
from ragcun.store.bm25 import document_vectors

# Payload fields that get an index: the ones ragcun filters and deletes by.
INDEXED_PAYLOAD_FIELDS = ("doc_id", "source", "model_version")

# Every collection made by this version holds two named vectors per point. Collections made before
# have one unnamed dense vector ("legacy"): they are searched dense-only until `ragcun reindex`.
DENSE = "dense"
SPARSE = "bm25"
MODES = ("dense", "bm25", "hybrid")
FUSIONS = ("rrf", "dbsf")
# RRF's k, as in the RRF paper and Qdrant's server default.
RRF_K = 60
# Candidates each side of a hybrid query contributes to the fusion (at least, and at least 4x top_k).
PREFETCH_MIN = 100


@dataclass(frozen=True)
class CollectionParams:
    """How a physical collection is built. Server-only fields are ignored by embedded engines.

    Args:
        dim: Vector size; must equal the model's output dim.
        hnsw_m: HNSW graph degree.
        hnsw_ef_construct: HNSW build-time beam width.
        hnsw_ef: Default search-time beam width (``None``: the engine's default).
        shard_number: Server: shards to split the collection into.
        replication_factor: Server: copies of each shard.
        write_consistency_factor: Server: replicas that must acknowledge a write.
        on_disk: Keep original vectors on disk (memory-mapped) instead of RAM.
    """

    dim: int
    hnsw_m: int = HNSW_M
    hnsw_ef_construct: int = HNSW_EF_CONSTRUCT
    hnsw_ef: int | None = HNSW_EF
    shard_number: int | None = None
    replication_factor: int | None = None
    write_consistency_factor: int | None = None
    on_disk: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_settings(cls, settings: dict, **overrides) -> CollectionParams:
        """The index params among a collection's catalog settings (which also hold e.g. a calibrated σ)."""
        known = {f.name for f in fields(cls)}
        return cls(**{**{k: v for k, v in settings.items() if k in known}, **overrides})


@dataclass(frozen=True)
class CollectionShape:
    """What the engine itself reports about a collection."""

    dim: int
    distance: models.Distance
    points: int
    hybrid: bool = False  # named dense + sparse BM25 vectors (False: a legacy unnamed dense vector)


@dataclass(frozen=True)
class SearchRequest:
    """One query to a store, in any mode.

    Attributes:
        vector: The dense query vector (every mode: it gives each hit its true L2 distance).
        sparse: The query's BM25 sparse vector (``bm25`` and ``hybrid``).
        limit: Hits at most.
        mode: ``dense`` (L2 distance), ``bm25`` (sparse dot product with IDF) or ``hybrid`` (both, fused).
        fusion: ``rrf`` (reciprocal rank fusion) or ``dbsf`` (distribution-based score fusion, the dense
            side scored by its Gaussian log-likelihood −‖q−d‖²/2 so that nearer is better).
        filter: A Qdrant filter on the payload.
        hnsw_ef: Dense search width.
        exact: Exact dense search.
        diversity: MMR diversity in [0, 1] over the dense vectors (``None``: no MMR).
    """

    vector: np.ndarray
    limit: int
    sparse: models.SparseVector | None = None
    mode: str = "dense"
    fusion: str = "dbsf"
    filter: models.Filter | None = None
    hnsw_ef: int | None = None
    exact: bool = False
    diversity: float | None = None

    @property
    def candidates(self) -> int:
        """Prefetch depth of each side of a fusion, and MMR's candidate pool."""
        return max(PREFETCH_MIN, 4 * self.limit)


class VectorStore(ABC):
    """A set of named Qdrant collections, embedded or remote."""

    engine: str = "abstract"

    @abstractmethod
    def create_collection(self, name: str, params: CollectionParams) -> None:
        """Create a Euclidean collection with payload indexes; fails if it exists."""

    @abstractmethod
    def drop_collection(self, name: str) -> None:
        """Delete a collection and its points; a missing one is not an error."""

    @abstractmethod
    def list_collections(self) -> list[str]:
        """Names of the physical collections."""

    def collection_exists(self, name: str) -> bool:
        return name in self.list_collections()

    @abstractmethod
    def shape(self, name: str) -> CollectionShape:
        """Dim, distance and point count as the engine reports them."""

    @abstractmethod
    def upsert(
        self,
        name: str,
        ids: Sequence[str],
        vectors: np.ndarray,
        payloads: Sequence[dict],
        sparse: Sequence[models.SparseVector] | None = None,
    ) -> None:
        """Insert or overwrite points; returns once they are durable and searchable.

        In a hybrid collection each point also gets a BM25 sparse vector: ``sparse``, or by
        default the BM25 vector of its payload's ``text``.
        """

    @abstractmethod
    def delete(self, name: str, ids: Sequence[str]) -> None:
        """Delete points by id; missing ids are ignored."""

    @abstractmethod
    def query(self, name: str, request: SearchRequest) -> list[models.ScoredPoint]:
        """The best points for ``request``, best first, with payloads and dense vectors.

        ``score`` is the L2 distance (ascending) in ``dense`` mode, the BM25 score in ``bm25`` mode and
        the fused score in ``hybrid`` mode (both descending). A legacy collection answers dense only.
        """

    def search(
        self, name: str, vector: np.ndarray, limit: int, hnsw_ef: int | None = None, exact: bool = False
    ) -> list[models.ScoredPoint]:
        """Nearest points with payloads; ``score`` is the L2 distance, ascending."""
        return self.query(name, SearchRequest(vector=vector, limit=limit, hnsw_ef=hnsw_ef, exact=exact))

    @abstractmethod
    def create_index(self, name: str, field: str, schema: str = "keyword") -> None:
        """A payload index on ``field`` (``keyword``, ``integer``, ``float``, ``bool`` or ``datetime``)."""

    @abstractmethod
    def retrieve(self, name: str, ids: Sequence[str], with_vectors: bool = False) -> list[models.Record]:
        """Points by id (missing ids are left out); ``vector`` is the dense vector."""

    @abstractmethod
    def scroll(self, name: str, with_vectors: bool = False, batch_size: int = 256) -> Iterator[models.Record]:
        """Every point of a collection, in pages."""

    def count(self, name: str) -> int:
        return self.shape(name).points

    def optimize(self, name: str) -> None:  # noqa: B027 (a no-op by default; engines that index override it)
        """Build indexes after a bulk load. Servers do this on their own."""

    # Engines with aliases let plain Qdrant clients query a logical name that follows reindexes.
    supports_aliases = False

    def set_alias(self, alias: str, name: str) -> None:  # noqa: B027 (a no-op without alias support)
        """Point ``alias`` at collection ``name`` in one atomic step (no-op without alias support)."""

    def get_alias(self, alias: str) -> str | None:
        """The collection ``alias`` points at, if the engine has aliases."""
        return None

    @abstractmethod
    def close(self) -> None:
        """Flush and release the engine (and its folder lock)."""

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def sparse_vectors(
    payloads: Sequence[dict], sparse: Sequence[models.SparseVector] | None, count: int
) -> list[models.SparseVector]:
    """``sparse`` checked, or the BM25 vectors of the payloads' texts."""
    if sparse is None:
        return document_vectors([payload.get("text") or "" for payload in payloads])
    if len(sparse) != count:
        raise InvalidInputError(f"expected {count} sparse vectors, got {len(sparse)}")
    return list(sparse)


def required_sparse(request: SearchRequest) -> models.SparseVector:
    """The request's BM25 query vector, which its ``bm25`` or ``hybrid`` mode needs."""
    if request.sparse is None:
        raise InvalidInputError(f"a {request.mode} search needs the query's BM25 vector")
    return request.sparse


def as_point_ids(ids: Sequence[str]) -> list[int | str | UUID]:
    """Point ids as the engines' APIs type them (ragcun's are always UUID strings)."""
    return [str(i) for i in ids]


def check_vectors(vectors: np.ndarray, count: int) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != count:
        raise InvalidInputError(f"expected {count} vectors, got array of shape {vectors.shape}")
    return vectors
