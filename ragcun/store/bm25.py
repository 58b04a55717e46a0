"""BM25 sparse vectors, made offline by qdrant-edge's own ``Bm25`` (no model hub, no inference server).

The same tokenizer (English stop words and Snowball stemmer, terms hashed to ids) makes the vectors of
documents at write time and of queries at search time, for every engine. A document's weights are
its terms' BM25-saturated frequencies; a query's terms weigh 1. The IDF factor is left to the engine
(Qdrant's ``Modifier.IDF``), so it stays right as the collection changes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import qdrant_edge as qe
from qdrant_client import models

# BM25's term-frequency saturation and length normalisation (the usual values).
BM25_K = 1.2
BM25_B = 0.75
# Length (in BM25 tokens, stop words removed) of an average chunk. Fixed rather than measured per
# collection, so that a document's vector never changes when others are added; the chunks of the five
# shared collections average 70–160 tokens (ADI 24).
BM25_AVG_LEN = 100.0


@functools.cache
def _model() -> qe.Bm25:
    return qe.Bm25(qe.Bm25Config(k=BM25_K, b=BM25_B, avg_len=BM25_AVG_LEN, language="english"))


def _sparse(vector: qe.SparseVector) -> models.SparseVector:
    return models.SparseVector(indices=list(vector.indices), values=list(vector.values))


def document_vector(text: str) -> models.SparseVector:
    """The BM25 sparse vector of a document (chunk) text."""
    return _sparse(_model().embed_document(text))


def document_vectors(texts: Sequence[str]) -> list[models.SparseVector]:
    return [document_vector(text) for text in texts]


def query_vector(text: str) -> models.SparseVector:
    """The BM25 sparse vector of a query: each distinct term weighs 1."""
    return _sparse(_model().embed_query(text))
