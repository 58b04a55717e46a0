"""Vector storage: one interface (:class:`VectorStore`), one adapter per Qdrant engine."""

from __future__ import annotations

from ragcun.settings import Settings
from ragcun.store.base import CollectionParams, CollectionShape, VectorStore
from ragcun.store.client import ClientStore
from ragcun.store.edge import EdgeStore
from ragcun.store.memory import MemoryStore


def open_store(settings: Settings) -> VectorStore:
    """The configured engine: a Qdrant server when ``QDRANT_URL`` is set, else the embedded one."""
    if settings.qdrant_url:
        return ClientStore.connect(settings.qdrant_url, settings.qdrant_api_key, settings.qdrant_grpc)
    return EdgeStore(settings.store_path, settings.wait)


__all__ = [
    "ClientStore",
    "CollectionParams",
    "CollectionShape",
    "EdgeStore",
    "MemoryStore",
    "VectorStore",
    "open_store",
]
