"""Retrieval over Gaussian embeddings."""

from ragcun.retrieve.gaussian import GaussianRetriever

__all__ = ["GaussianRetriever"]
