"""Retrieval over Gaussian embeddings: one search path (:func:`search_vector`), one hit type (:class:`Hit`).

:class:`GaussianRetriever` searches documents held in memory, :func:`search` and
:class:`CollectionRetriever` a persistent collection; both compose the query vector with
:func:`query_vector` and search it with :func:`search_vector`.
"""

from ragcun.retrieve.base import Hit, gaussian_probabilities, query_vector, search_vector

# These pull in torch (the model) or the catalog; import them on first use.
_LAZY = {
    "GaussianRetriever": "ragcun.retrieve.gaussian",
    "CollectionRetriever": "ragcun.retrieve.collection",
    "search": "ragcun.retrieve.collection",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ragcun.retrieve' has no attribute {name!r}")


__all__ = ["CollectionRetriever", "GaussianRetriever", "Hit", "gaussian_probabilities", "query_vector", "search",
           "search_vector"]
