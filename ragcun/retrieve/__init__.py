"""Retrieval over Gaussian embeddings: one search path (:func:`search_vector`), one hit type (:class:`Hit`).

:class:`GaussianRetriever` searches documents held in memory, :func:`search` and
:class:`CollectionRetriever` a persistent collection; both compose the query vector with
:func:`query_vector` and search it with :func:`search_vector`.
"""

from typing import TYPE_CHECKING

from ragcun.lazy import lazy_attributes
from ragcun.retrieve.base import (
    Hit,
    gaussian_probabilities,
    query_vector,
    search_vector,
)

if TYPE_CHECKING:  # what __getattr__ below imports on first use, named for type checkers
    from ragcun.retrieve.collection import CollectionRetriever, search
    from ragcun.retrieve.gaussian import GaussianRetriever

# These pull in torch (the model) or the catalog; import them on first use.
_LAZY = {
    "GaussianRetriever": "ragcun.retrieve.gaussian",
    "CollectionRetriever": "ragcun.retrieve.collection",
    "search": "ragcun.retrieve.collection",
}


__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = [
    "CollectionRetriever",
    "GaussianRetriever",
    "Hit",
    "gaussian_probabilities",
    "query_vector",
    "search",
    "search_vector",
]
