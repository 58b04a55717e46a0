"""The in-memory engine: exact L2 search over vectors held in a numpy array, payloads alongside.

It backs :class:`ragcun.GaussianRetriever` and the in-memory :class:`ragcun.Retriever`, so they
search through the same :class:`VectorStore` interface, and the same hit-building code, as a
persistent collection. Search is a BLAS matrix product and ``np.argpartition``:
``benchmarks/exact.py`` measures it against FAISS ``IndexFlatL2``.

:meth:`MemoryStore.save` writes one folder per collection (``vectors.npy`` and ``points.json``, no pickle).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from qdrant_client import models
from qdrant_client.hybrid.fusion import (
    distribution_based_score_fusion,
    reciprocal_rank_fusion,
)
from qdrant_client.local.payload_filters import check_filter

from ragcun.errors import CollectionNotFound
from ragcun.store.base import (
    RRF_K,
    CollectionParams,
    CollectionShape,
    SearchRequest,
    VectorStore,
    check_vectors,
    required_sparse,
    sparse_vectors,
)

VECTORS_FILE = "vectors.npy"
POINTS_FILE = "points.json"
FORMAT = 1


def exact_nearest(
    vectors: np.ndarray, sq_norms: np.ndarray, queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``vectors`` nearest to each query by L2, and their true distances, nearest first.

    Args:
        vectors: (n, dim) float32.
        sq_norms: (n,) squared norms of ``vectors``, kept with them so a search does not recompute them.
        queries: (b, dim) float32.
        k: Neighbours per query, at most ``n``.

    Returns:
        (b, k) row indices and (b, k) float64 distances.
    """
    # Rank by ‖x‖² − 2x·q (‖q‖² is the same for every row): one BLAS product and a linear-time partition.
    scores = sq_norms[None, :] - 2.0 * (queries @ vectors.T)
    if k < scores.shape[1]:
        candidates = np.argpartition(scores, k - 1, axis=1)[:, :k]
    else:
        candidates = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    return rerank_exact(vectors, queries, candidates)


def rerank_exact(vectors: np.ndarray, queries: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``candidates`` (b, k rows of ``vectors``) sorted by their true L2 distance to each query, with it.

    The expansion ‖x‖² − 2x·q loses precision in float32, so the winners' distances are recomputed
    in float64 and re-sorted in case rounding swapped near ties.
    """
    diffs = np.subtract(vectors[candidates], queries[:, None, :], dtype=np.float64)
    distances = np.sqrt(np.einsum("bkd,bkd->bk", diffs, diffs))
    order = np.argsort(distances, axis=1, kind="stable")
    return np.take_along_axis(candidates, order, axis=1), np.take_along_axis(distances, order, axis=1)


class _Points:
    """One collection: ids, vectors and payloads in insertion order."""

    def __init__(self, dim: int):
        self.dim = dim
        self.ids: list[str] = []
        self.row: dict[str, int] = {}
        self.vectors = np.empty((0, dim), dtype=np.float32)
        self.sq_norms = np.empty(0, dtype=np.float32)
        self.payloads: list[dict] = []
        # BM25 term weights per point (term id -> weight), beside the vectors.
        self.sparse: list[dict[int, float]] = []

    def upsert(
        self, ids: list[str], vectors: np.ndarray, payloads: Sequence[dict], sparse: Sequence[models.SparseVector]
    ) -> None:
        if vectors.shape[1] != self.dim:
            raise ValueError(f"vectors have dim {vectors.shape[1]}, the collection's is {self.dim}")
        new: list[tuple[str, np.ndarray, dict, dict]] = []
        for point_id, vector, payload, terms in zip(ids, vectors, payloads, sparse, strict=True):
            weights = dict(zip(terms.indices, terms.values, strict=True))
            row = self.row.get(point_id)
            if row is None:
                self.row[point_id] = len(self.ids) + len(new)
                new.append((point_id, vector, dict(payload), weights))
            elif row >= len(self.ids):  # repeated within this batch: the last one wins, as in Qdrant
                new[row - len(self.ids)] = (point_id, vector, dict(payload), weights)
            else:
                self.vectors[row], self.payloads[row], self.sparse[row] = vector, dict(payload), weights
                self.sq_norms[row] = vector @ vector
        if new:
            added = np.stack([vector for _, vector, _, _ in new])
            self.ids.extend(point_id for point_id, _, _, _ in new)
            self.vectors = np.concatenate([self.vectors, added])
            self.sq_norms = np.concatenate([self.sq_norms, np.einsum("nd,nd->n", added, added)])
            self.payloads.extend(payload for _, _, payload, _ in new)
            self.sparse.extend(weights for _, _, _, weights in new)

    def delete(self, ids: Sequence[str]) -> None:
        rows = sorted({self.row[i] for i in ids if i in self.row})
        if not rows:
            return
        keep = np.ones(len(self.ids), dtype=bool)
        keep[rows] = False
        self.vectors, self.sq_norms = self.vectors[keep], self.sq_norms[keep]
        self.ids = [i for i, k in zip(self.ids, keep, strict=True) if k]
        self.payloads = [p for p, k in zip(self.payloads, keep, strict=True) if k]
        self.sparse = [w for w, k in zip(self.sparse, keep, strict=True) if k]
        self.row = {point_id: row for row, point_id in enumerate(self.ids)}

    def record(self, row: int, with_vectors: bool) -> models.Record:
        vector = self.vectors[row].tolist() if with_vectors else None
        return models.Record(id=self.ids[row], payload=self.payloads[row], vector=vector)

    def point(self, row: int, score: float) -> models.ScoredPoint:
        return models.ScoredPoint(
            id=self.ids[row], version=0, score=score, payload=self.payloads[row], vector=self.vectors[row].tolist()
        )

    def mask(self, where: models.Filter | None) -> np.ndarray:
        """Rows whose payload passes ``where`` (Qdrant's own payload-filter semantics)."""
        if where is None:
            return np.ones(len(self.ids), dtype=bool)
        return np.array(
            [
                check_filter(where, payload, point_id, {})
                for point_id, payload in zip(self.ids, self.payloads, strict=True)
            ],
            dtype=bool,
        )

    def nearest(self, vector: np.ndarray, limit: int, allowed: np.ndarray) -> list[models.ScoredPoint]:
        rows = np.flatnonzero(allowed)
        k = min(int(limit), len(rows))
        if k == 0:
            return []
        found, distances = exact_nearest(self.vectors[rows], self.sq_norms[rows], vector.reshape(1, -1), k)
        return [self.point(rows[i], float(d)) for i, d in zip(found[0], distances[0], strict=True)]

    def bm25(self, query: models.SparseVector, limit: int, allowed: np.ndarray) -> list[models.ScoredPoint]:
        """Sparse dot product with Qdrant's IDF modifier; points sharing no term are not returned."""
        rows = np.flatnonzero(allowed)
        total = len(self.ids)
        scores: dict[int, float] = {}
        for term, weight in zip(query.indices, query.values, strict=True):
            holders = [int(row) for row in rows if term in self.sparse[row]]
            if not holders:
                continue
            df = sum(1 for terms in self.sparse if term in terms)
            idf = math.log((total - df + 0.5) / (df + 0.5) + 1.0)
            for row in holders:
                scores[row] = scores.get(row, 0.0) + idf * weight * self.sparse[row][int(term)]
        best = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:limit]
        return [self.point(row, score) for row, score in best]

    def mmr(
        self, vector: np.ndarray, candidates: list[models.ScoredPoint], limit: int, diversity: float
    ) -> list[models.ScoredPoint]:
        """Maximal marginal relevance over L2 (similarity −distance), as Qdrant's ``Mmr``; scores are distances."""
        if not candidates:
            return []
        matrix = np.array([c.vector for c in candidates], dtype=np.float64)
        to_query = np.linalg.norm(matrix - vector.astype(np.float64), axis=1)
        pairwise = np.linalg.norm(matrix[:, None, :] - matrix[None, :, :], axis=2)
        chosen = [int(np.argmin(to_query))]
        while len(chosen) < min(limit, len(candidates)):
            redundancy = pairwise[:, chosen].min(axis=1)  # distance to the nearest pick: larger is more novel
            value = -(1.0 - diversity) * to_query + diversity * redundancy
            value[chosen] = -np.inf
            chosen.append(int(np.argmax(value)))
        return [candidates[i].model_copy(update={"score": float(to_query[i])}) for i in chosen]


class MemoryStore(VectorStore):
    """Collections held in this process's memory; exact search whatever ``hnsw_ef`` or ``exact`` say."""

    engine = "memory"

    def __init__(self):
        self._collections: dict[str, _Points] = {}

    def _get(self, name: str) -> _Points:
        points = self._collections.get(name)
        if points is None:
            raise CollectionNotFound(f"collection {name!r} does not exist in memory")
        return points

    def create_collection(self, name: str, params: CollectionParams) -> None:
        if name in self._collections:
            raise ValueError(f"collection {name!r} already exists")
        self._collections[name] = _Points(params.dim)

    def drop_collection(self, name: str) -> None:
        self._collections.pop(name, None)

    def list_collections(self) -> list[str]:
        return sorted(self._collections)

    def shape(self, name: str) -> CollectionShape:
        points = self._get(name)
        return CollectionShape(dim=points.dim, distance=models.Distance.EUCLID, points=len(points.ids), hybrid=True)

    def upsert(
        self,
        name: str,
        ids: Sequence[str],
        vectors: np.ndarray,
        payloads: Sequence[dict],
        sparse: Sequence[models.SparseVector] | None = None,
    ) -> None:
        vectors = check_vectors(vectors, len(ids))
        if len(payloads) != len(ids):
            raise ValueError(f"{len(ids)} ids but {len(payloads)} payloads")
        self._get(name).upsert([str(i) for i in ids], vectors, payloads, sparse_vectors(payloads, sparse, len(ids)))

    def create_index(self, name: str, field: str, schema: str = "keyword") -> None:
        """Nothing to build: every filter scans the payloads."""
        self._get(name)

    def delete(self, name: str, ids: Sequence[str]) -> None:
        self._get(name).delete([str(i) for i in ids])

    def query(self, name: str, request: SearchRequest) -> list[models.ScoredPoint]:
        """The engines' query in numpy: the same modes, fusions (Qdrant's own formulas), filters and MMR."""
        points = self._get(name)
        vector = np.asarray(request.vector, dtype=np.float32).reshape(-1)
        if vector.shape[0] != points.dim:
            raise ValueError(f"query vector has dim {vector.shape[0]}, the collection's is {points.dim}")
        allowed = points.mask(request.filter)
        depth = request.candidates if request.diversity is not None else request.limit
        if request.mode == "dense":
            found = points.nearest(vector, depth, allowed)
        elif request.mode == "bm25":
            found = points.bm25(required_sparse(request), depth, allowed)
        else:
            nearest = points.nearest(vector, request.candidates, allowed)
            lexical = points.bm25(required_sparse(request), request.candidates, allowed)
            if request.fusion == "rrf":
                found = reciprocal_rank_fusion([nearest, lexical], depth, ranking_constant_k=RRF_K)
            else:
                # DBSF rewards high scores: score the dense side by its log-likelihood −d²/2 first.
                likelihood = [p.model_copy(update={"score": -0.5 * p.score**2}) for p in nearest]
                found = distribution_based_score_fusion([likelihood, lexical], depth)
        if request.diversity is not None:
            found = points.mmr(vector, found, request.limit, request.diversity)
        return found

    def retrieve(self, name: str, ids: Sequence[str], with_vectors: bool = False) -> list[models.Record]:
        points = self._get(name)
        return [points.record(points.row[i], with_vectors) for i in [str(i) for i in ids] if i in points.row]

    def scroll(self, name: str, with_vectors: bool = False, batch_size: int = 256) -> Iterator[models.Record]:
        points = self._get(name)
        for row in range(len(points.ids)):
            yield points.record(row, with_vectors)

    def close(self) -> None:
        """Nothing to release: the collections live as long as the object."""

    # ---- persistence --------------------------------------------------------------------------

    def save(self, name: str, folder: str | Path) -> None:
        """Write collection ``name`` to ``folder``: ``vectors.npy`` and ``points.json`` (ids and payloads)."""
        points = self._get(name)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / VECTORS_FILE, points.vectors, allow_pickle=False)
        state = {
            "format": FORMAT,
            "dim": points.dim,
            "ids": points.ids,
            "payloads": points.payloads,
            "sparse": [[list(w.keys()), list(w.values())] for w in points.sparse],
        }
        (folder / POINTS_FILE).write_text(json.dumps(state, ensure_ascii=False))

    def load(self, name: str, folder: str | Path) -> None:
        """Create collection ``name`` from a folder written by :meth:`save`."""
        folder = Path(folder)
        state = json.loads((folder / POINTS_FILE).read_text())
        if state.get("format") != FORMAT:
            raise ValueError(f"{folder / POINTS_FILE}: unknown format {state.get('format')!r}, expected {FORMAT}")
        vectors = np.load(folder / VECTORS_FILE, allow_pickle=False)
        if vectors.shape != (len(state["ids"]), state["dim"]) or len(state["payloads"]) != len(state["ids"]):
            raise ValueError(
                f"{folder / VECTORS_FILE}: shape {vectors.shape} does not match "
                f"{len(state['ids'])} points of dim {state['dim']}"
            )
        self.create_collection(name, CollectionParams(dim=state["dim"]))
        sparse = state.get("sparse")  # absent from folders saved before hybrid search: made from the texts
        self.upsert(
            name,
            state["ids"],
            vectors,
            state["payloads"],
            None if sparse is None else [models.SparseVector(indices=i, values=v) for i, v in sparse],
        )
