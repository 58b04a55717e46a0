"""Search over a persistent collection, with the model version that built it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ragcun.catalog.ops import require_collection
from ragcun.errors import ModelMismatchError
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

    def to_dict(self) -> dict:
        return asdict(self)


def search(ws: Workspace, collection_name: str, query: str, top_k: int = 10, embedder=None,
           hnsw_ef: int | None = None, exact: bool = False) -> list[Hit]:
    """The ``top_k`` chunks nearest to ``query`` by true L2 distance, nearest first.

    The query is embedded by the collection's own model version; passing an ``embedder`` of
    another version is refused rather than silently mixing vector spaces.
    """
    if not isinstance(query, str) or not query.strip():
        raise ValueError("query must be a non-empty string")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
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
    vector = embedder.encode([query])[0]
    return search_vector(ws, physical, vector, top_k, hnsw_ef=hnsw_ef, exact=exact)


def search_vector(ws: Workspace, physical_name: str, vector: np.ndarray, top_k: int,
                  hnsw_ef: int | None = None, exact: bool = False) -> list[Hit]:
    points = ws.store.search(physical_name, vector, limit=top_k, hnsw_ef=hnsw_ef, exact=exact)
    return [
        Hit(chunk_id=str(p.id), doc_id=p.payload["doc_id"], distance=float(p.score), norm=p.payload["norm"],
            text=p.payload["text"], source=p.payload.get("source"), chunk=p.payload.get("chunk", 0),
            title=p.payload.get("title"))
        for p in points
    ]
