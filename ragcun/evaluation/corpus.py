"""A collection's points loaded for exact evaluation, and distances aggregated from chunks to documents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ragcun.catalog.ops import require_collection
from ragcun.evaluation.metrics import rank
from ragcun.workspace import Workspace

QUERY_BATCH = 256  # rows of the query × chunk distance matrix computed at once


@dataclass
class CollectionPoints:
    """Every point of a collection's active physical collection, with what evaluation needs.

    Documents are numbered in first-seen order; ``chunk_doc[i]`` is the document of point ``i``.
    """

    name: str
    physical_name: str
    collection_id: int
    model_version_id: int
    model_fingerprint: str
    settings: dict
    vectors: np.ndarray  # float32 (points, dim)
    texts: list[str]
    chunk_doc: np.ndarray  # int (points,)
    doc_ids: list[str]

    @property
    def doc_index(self) -> dict[str, int]:
        return {d: i for i, d in enumerate(self.doc_ids)}

    def doc_norms(self, vectors: np.ndarray | None = None) -> np.ndarray:
        """Mean chunk norm of each document (a one-chunk document: its vector's norm)."""
        norms = np.linalg.norm(self.vectors if vectors is None else vectors, axis=1)
        return np.bincount(self.chunk_doc, weights=norms) / np.bincount(self.chunk_doc)


def load_points(ws: Workspace, collection_name: str) -> CollectionPoints:
    """Scroll the collection's active physical collection, vectors included."""
    with ws.catalog.session() as session:
        collection = require_collection(session, collection_name)
        info: dict[str, Any] = dict(
            name=collection.name,
            physical_name=collection.physical_name,
            collection_id=collection.id,
            model_version_id=collection.model_version_id,
            model_fingerprint=collection.model_version.fingerprint,
            settings=dict(collection.settings or {}),
        )
    vectors, texts, chunk_doc = [], [], []
    doc_index: dict[str, int] = {}
    for record in ws.store.scroll(info["physical_name"], with_vectors=True):
        vectors.append(np.asarray(record.vector, dtype=np.float32))
        payload = record.payload or {}
        texts.append(payload["text"])
        chunk_doc.append(doc_index.setdefault(payload["doc_id"], len(doc_index)))
    dim = len(vectors[0]) if vectors else 0
    return CollectionPoints(
        **info,
        vectors=np.stack(vectors) if vectors else np.empty((0, dim), np.float32),
        texts=texts,
        chunk_doc=np.asarray(chunk_doc, dtype=np.int64),
        doc_ids=list(doc_index),
    )


def min_per_doc(chunk_values: np.ndarray, chunk_doc: np.ndarray, n_docs: int) -> np.ndarray:
    """Per query row, the smallest value over each document's chunks (best chunk = the document)."""
    out = np.full((chunk_values.shape[0], n_docs), np.inf)
    if len(chunk_doc) == n_docs:  # one chunk per document: a permutation, no reduction needed
        out[:, chunk_doc] = chunk_values
        return out
    rows = np.repeat(np.arange(chunk_values.shape[0]), chunk_values.shape[1])
    np.minimum.at(out, (rows, np.tile(chunk_doc, chunk_values.shape[0])), chunk_values.ravel())
    return out


def doc_distances(queries: np.ndarray, chunks: np.ndarray, chunk_doc: np.ndarray, n_docs: int) -> np.ndarray:
    """Exact L2 distance from each query to each document (its nearest chunk), shape (queries, docs).

    Ranked by :func:`ragcun.evaluation.metrics.rank` over every chunk, so it is the same exact search the
    trainer evaluates with, not the store's HNSW.
    """
    out = []
    for start in range(0, len(queries), QUERY_BATCH):
        indices, scores = rank(queries[start : start + QUERY_BATCH], chunks, k=len(chunks), metric="l2")
        distances = np.sqrt(np.maximum(-scores, 0.0))  # rank's l2 score is −‖q − d‖²
        ordered = np.empty_like(distances)
        np.put_along_axis(ordered, indices, distances, axis=1)
        out.append(min_per_doc(ordered, chunk_doc, n_docs))
    return np.concatenate(out) if out else np.empty((0, n_docs))


def exclude_self_hits(distances: np.ndarray, query_ids: list[str], points: CollectionPoints) -> np.ndarray:
    """A copy where each query's distance to the document with its own id is infinite.

    The BEIR convention: in corpora where queries are also documents, a query never retrieves itself.
    """
    distances = distances.copy()
    doc_index = points.doc_index
    for i, q in enumerate(query_ids):
        if q in doc_index:
            distances[i, doc_index[q]] = np.inf
    return distances


def relevance_grades(query_ids: list[str], qrels: dict[str, dict[str, int]], points: CollectionPoints) -> np.ndarray:
    """The (queries × documents) matrix of qrels grades, 0 where unjudged."""
    doc_index = points.doc_index
    grades = np.zeros((len(query_ids), len(points.doc_ids)))
    for i, q in enumerate(query_ids):
        for doc, grade in qrels.get(q, {}).items():
            if doc in doc_index:
                grades[i, doc_index[doc]] = grade
    return grades
