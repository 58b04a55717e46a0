"""Checks on what callers pass in: query text, ``top_k``, index widths, document lists, σ and query vectors.

Every entry point (:class:`ragcun.GaussianRetriever`, :class:`ragcun.Retriever`, collection search,
the RAG pipeline and generator) validates through these, so one mistake gets one message everywhere.
Each raises :class:`ragcun.errors.InvalidInputError` (a ``ValueError``), or
:class:`~ragcun.errors.InvalidTypeError` (also a ``TypeError``) for a wrong type.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ragcun.errors import InvalidInputError, InvalidTypeError


def require_text(value, name: str) -> str:
    """``value`` if it is a string with something besides whitespace."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{name} must be a non-empty string")
    return value


def check_top_k(top_k) -> int:
    """``top_k`` as an int, if it is a positive integer (``True`` is not)."""
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k <= 0:
        raise InvalidInputError(f"top_k must be a positive integer, got {top_k!r}")
    return int(top_k)


def check_positive(value, name: str, maximum: int = 2**31 - 1) -> int:
    """``value`` as an int, if it is an integer in [1, ``maximum``] (an index parameter: ``hnsw_ef``, ``hnsw_m``…)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= maximum:
        raise InvalidInputError(f"{name} must be an integer from 1 to {maximum}, got {value!r}")
    return int(value)


def check_documents(documents: Sequence[str], name: str = "documents") -> list[str]:
    """A batch of documents as a list of non-blank strings (``name`` names it in errors)."""
    if isinstance(documents, str):
        raise InvalidTypeError(f"{name} must be a list of strings, not a single string")
    documents = list(documents)
    for i, doc in enumerate(documents):
        if not isinstance(doc, str):
            raise InvalidTypeError(f"{name}[{i}] is {type(doc).__name__}, expected str")
        if not doc.strip():
            raise InvalidInputError(f"{name}[{i}] is empty")
    return documents


def check_same_length(documents: Sequence, **columns: Sequence | None) -> None:
    """Every column given (ids, sources…) has one entry per document."""
    given = {name: len(column) for name, column in columns.items() if column is not None}
    if any(n != len(documents) for n in given.values()):
        counts = " and ".join(f"{n} {name}" for name, n in given.items())
        raise InvalidInputError(f"{len(documents)} documents but {counts}")


def check_sigma(sigma) -> float:
    """σ of the Gaussian likelihood behind hit probabilities, if it is a positive finite number."""
    if (
        isinstance(sigma, bool)
        or not isinstance(sigma, (int, float, np.floating, np.integer))
        or not 0 < sigma < float("inf")
    ):
        raise InvalidInputError(f"sigma must be positive and finite, got {sigma!r}")
    return float(sigma)


def check_vector(vector, dim: int) -> np.ndarray:
    """A query embedding as a finite float32 vector of the model's ``dim``."""
    array = np.asarray(vector, dtype=np.float32).reshape(-1) if vector is not None else np.empty(0)
    if array.shape[0] != dim:
        raise InvalidInputError(f"vector has dim {array.shape[0]}, the model's is {dim}")
    if not np.isfinite(array).all():
        raise InvalidInputError("vector has NaN or infinite components")
    return array
