"""The SQLite (or any SQLAlchemy database) provenance catalog."""

from ragcun.catalog.db import Catalog, current_revision, downgrade, head_revision, make_engine, upgrade
from ragcun.catalog.models import (
    Base,
    Chunk,
    Collection,
    CollectionChunk,
    Document,
    IngestRun,
    ModelVersion,
    Source,
)

__all__ = [
    "Base",
    "Catalog",
    "Chunk",
    "Collection",
    "CollectionChunk",
    "Document",
    "IngestRun",
    "ModelVersion",
    "Source",
    "current_revision",
    "downgrade",
    "head_revision",
    "make_engine",
    "upgrade",
]
