"""Search over a persistent collection, with the model version that built it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ragcun.catalog.ops import require_collection
from ragcun.errors import InvalidInputError, ModelMismatchError
from ragcun.workspace import Workspace


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    doc_id: str
    distance: float
    norm: float
    text: str
    source: str | None
    chunk: int
    title: str | None = None
    query_norm: float | None = None
    # softmax of −distance² / (2σ²) over the returned hits; σ from `ragcun calibrate`, else 1.
    probability: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def search(ws: Workspace, collection_name: str, query: str, top_k: int = 10, embedder=None,
           hnsw_ef: int | None = None, exact: bool = False, plus: Sequence[str] = (),
           minus: Sequence[str] = ()) -> list[Hit]:
    """The ``top_k`` chunks nearest to ``query`` by true L2 distance, nearest first.

    The query is embedded by the collection's own model version; passing an ``embedder`` of
    another version is refused rather than silently mixing vector spaces. Query arithmetic: the
    searched vector is e(query) + Σ e(plus) − Σ e(minus); ``query`` may be empty when ``plus`` is not.
    """
    has_query = isinstance(query, str) and bool(query.strip())
    if not has_query and not plus:
        raise InvalidInputError("query must be a non-empty string")
    if any(not isinstance(t, str) or not t.strip() for t in (*plus, *minus)):
        raise InvalidInputError("plus and minus terms must be non-empty strings")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0:
        raise InvalidInputError(f"top_k must be a positive integer, got {top_k!r}")
    with ws.catalog.session() as session:
        collection = require_collection(session, collection_name)
        expected = collection.model_version.fingerprint
        if embedder is None:
            embedder = ws.embedder_for(collection)
        elif embedder.fingerprint != expected:
            raise ModelMismatchError(f"collection {collection_name!r} was built by model {expected[:12]}; "
                                     f"refusing to search it with model {embedder.fingerprint[:12]}")
        physical = collection.physical_name
        hnsw_ef = hnsw_ef or collection.settings.get("hnsw_ef")
        sigma = float(collection.settings.get("sigma", 1.0))
    texts = [query, *plus, *minus] if has_query else [*plus, *minus]
    signs = np.array([1.0] * (len(texts) - len(minus)) + [-1.0] * len(minus))
    vector = (signs[:, None] * embedder.encode(texts).astype(np.float64)).sum(axis=0).astype(np.float32)
    return search_vector(ws, physical, vector, top_k, hnsw_ef=hnsw_ef, exact=exact, sigma=sigma)


def gaussian_probabilities(distances, sigma: float = 1.0) -> np.ndarray:
    """Softmax over the candidates (last axis) of −distance² / (2σ²): each candidate's posterior
    share if the query were drawn from an isotropic Gaussian of scale σ around one of them."""
    if not sigma > 0:
        raise InvalidInputError(f"sigma must be positive, got {sigma!r}")
    logits = -np.square(np.asarray(distances, dtype=np.float64)) / (2.0 * sigma**2)
    if logits.size == 0:
        return logits
    logits -= logits.max(axis=-1, keepdims=True)  # shift-invariant; avoids every weight underflowing to 0
    weights = np.exp(logits)
    return weights / weights.sum(axis=-1, keepdims=True)


def search_vector(ws: Workspace, physical_name: str, vector: np.ndarray, top_k: int,
                  hnsw_ef: int | None = None, exact: bool = False, sigma: float = 1.0) -> list[Hit]:
    points = ws.store.search(physical_name, vector, limit=top_k, hnsw_ef=hnsw_ef, exact=exact)
    query_norm = float(np.linalg.norm(np.asarray(vector, dtype=np.float64)))
    probabilities = gaussian_probabilities([float(p.score) for p in points], sigma)
    return [
        Hit(chunk_id=str(p.id), doc_id=p.payload["doc_id"], distance=float(p.score), norm=p.payload["norm"],
            text=p.payload["text"], source=p.payload.get("source"), chunk=p.payload.get("chunk", 0),
            title=p.payload.get("title"), query_norm=query_norm, probability=float(prob))
        for p, prob in zip(points, probabilities)
    ]
