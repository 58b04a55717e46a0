"""The embedded engine: one in-process ``qdrant-edge`` shard per collection, under one folder.

Layout: ``<root>/collections/<name>/`` is a shard (segments, WAL, ``edge_config.json``). The whole
root is locked to one process.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import qdrant_edge as qe
from qdrant_client import models

from ragcun.errors import CollectionNotFound, InvalidInputError
from ragcun.store.base import (
    INDEXED_PAYLOAD_FIELDS,
    CollectionParams,
    CollectionShape,
    VectorStore,
    as_point_ids,
    check_vectors,
)
from ragcun.store.lock import FolderLock

logger = logging.getLogger(__name__)

# Segments smaller than this (KB of vectors) are scanned exactly rather than HNSW-indexed.
FULL_SCAN_THRESHOLD_KB = 1000
UPSERT_BATCH = 1024


def _locked(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._mutex:
            return method(self, *args, **kwargs)

    return wrapper


class EdgeStore(VectorStore):
    engine = "edge"

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._lock = FolderLock(self.root)
        self._collections = self.root / "collections"
        self._collections.mkdir(exist_ok=True)
        self._shards: dict[str, qe.EdgeShard] = {}
        # One shard object is shared by every thread of the process (a reindex writing while a
        # search thread reads); serialise calls into it rather than rely on the binding's locking.
        self._mutex = threading.RLock()

    def _path(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise InvalidInputError(f"invalid collection name {name!r}")
        return self._collections / name

    @_locked
    def _shard(self, name: str) -> qe.EdgeShard:
        shard = self._shards.get(name)
        if shard is None:
            path = self._path(name)
            if not (path / "edge_config.json").is_file():
                raise CollectionNotFound(f"collection {name!r} does not exist in {self._collections}")
            shard = self._shards[name] = qe.EdgeShard.load(str(path))
        return shard

    @_locked
    def create_collection(self, name: str, params: CollectionParams) -> None:
        path = self._path(name)
        if path.exists():
            raise InvalidInputError(f"collection {name!r} already exists")
        config = qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=params.dim, distance=qe.Distance.Euclid, on_disk=params.on_disk),
            hnsw_config=qe.HnswIndexConfig(
                m=params.hnsw_m, ef_construct=params.hnsw_ef_construct, full_scan_threshold=FULL_SCAN_THRESHOLD_KB
            ),
        )
        shard = self._shards[name] = qe.EdgeShard.create(str(path), config)
        for field in INDEXED_PAYLOAD_FIELDS:
            shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword))

    @_locked
    def drop_collection(self, name: str) -> None:
        shard = self._shards.pop(name, None)
        if shard is not None:
            shard.close()
        shutil.rmtree(self._path(name), ignore_errors=True)

    def list_collections(self) -> list[str]:
        return sorted(p.name for p in self._collections.iterdir() if (p / "edge_config.json").is_file())

    @_locked
    def shape(self, name: str) -> CollectionShape:
        shard = self._shard(name)
        vectors = json.loads((self._path(name) / "edge_config.json").read_text())["vectors"][""]
        return CollectionShape(
            dim=vectors["size"], distance=models.Distance(vectors["distance"]), points=shard.info().points_count
        )

    @_locked
    def upsert(self, name: str, ids: Sequence[str], vectors: np.ndarray, payloads: Sequence[dict]) -> None:
        shard = self._shard(name)
        vectors = check_vectors(vectors, len(ids))
        for start in range(0, len(ids), UPSERT_BATCH):
            end = start + UPSERT_BATCH
            points = [
                qe.Point(id=point_id, vector=vector.tolist(), payload=payload)
                for point_id, vector, payload in zip(
                    as_point_ids(ids[start:end]), vectors[start:end], payloads[start:end], strict=True
                )
            ]
            shard.update(qe.UpdateOperation.upsert_points(points))

    @_locked
    def delete(self, name: str, ids: Sequence[str]) -> None:
        if ids:
            self._shard(name).update(qe.UpdateOperation.delete_points(as_point_ids(ids)))

    @_locked
    def search(
        self, name: str, vector: np.ndarray, limit: int, hnsw_ef: int | None = None, exact: bool = False
    ) -> list[models.ScoredPoint]:
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(np.asarray(vector, dtype=np.float32).tolist()),
            with_payload=True,
            params=qe.SearchParams(hnsw_ef=hnsw_ef, exact=exact),
        )
        return [
            models.ScoredPoint(id=str(hit.id), version=hit.version, score=hit.score, payload=hit.payload)
            for hit in self._shard(name).query(request)
        ]

    @_locked
    def retrieve(self, name: str, ids: Sequence[str], with_vectors: bool = False) -> list[models.Record]:
        if not ids:
            return []
        records = self._shard(name).retrieve(as_point_ids(ids), with_payload=True, with_vector=with_vectors)
        return [_record(r, with_vectors) for r in records]

    def scroll(self, name: str, with_vectors: bool = False, batch_size: int = 256) -> Iterator[models.Record]:
        shard, offset = self._shard(name), None
        while True:
            with self._mutex:
                page, offset = shard.scroll(
                    qe.ScrollRequest(offset=offset, limit=batch_size, with_payload=True, with_vector=with_vectors)
                )
            yield from (_record(r, with_vectors) for r in page)
            if offset is None:
                return

    @_locked
    def optimize(self, name: str) -> None:
        self._shard(name).optimize()

    @_locked
    def close(self) -> None:
        for shard in self._shards.values():
            shard.flush()
            shard.close()
        self._shards.clear()
        self._lock.release()


def _record(record, with_vectors: bool) -> models.Record:
    vector = record.vector if with_vectors else None
    if isinstance(vector, dict):  # the default (unnamed) vector comes back keyed by ""
        vector = vector.get("")
    return models.Record(id=str(record.id), payload=record.payload, vector=vector)
