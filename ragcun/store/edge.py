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
from typing import Any

import numpy as np
import qdrant_edge as qe
from qdrant_client import models

from ragcun.errors import CollectionNotFound, InvalidInputError
from ragcun.store.base import (
    DENSE,
    INDEXED_PAYLOAD_FIELDS,
    RRF_K,
    SPARSE,
    CollectionParams,
    CollectionShape,
    SearchRequest,
    VectorStore,
    as_point_ids,
    check_vectors,
    sparse_vectors,
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

    def __init__(self, root: str | Path, wait: float = 0.0):
        self.root = Path(root)
        self._lock = FolderLock(self.root, wait)
        self._collections = self.root / "collections"
        self._collections.mkdir(exist_ok=True)
        self._shards: dict[str, qe.EdgeShard] = {}
        # One shard object is shared by every thread of the process (a reindex writing while a
        # search thread reads); serialise calls into it rather than rely on the binding's locking.
        self._mutex = threading.RLock()
        self._layouts: dict[str, bool] = {}

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
            vectors={DENSE: qe.EdgeVectorParams(size=params.dim, distance=qe.Distance.Euclid, on_disk=params.on_disk)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            hnsw_config=qe.HnswIndexConfig(
                m=params.hnsw_m, ef_construct=params.hnsw_ef_construct, full_scan_threshold=FULL_SCAN_THRESHOLD_KB
            ),
        )
        shard = self._shards[name] = qe.EdgeShard.create(str(path), config)
        for field in INDEXED_PAYLOAD_FIELDS:
            shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword))

    @_locked
    def create_index(self, name: str, field: str, schema: str = "keyword") -> None:
        self._shard(name).update(qe.UpdateOperation.create_field_index(field, _EDGE_SCHEMA[schema]))

    @_locked
    def drop_collection(self, name: str) -> None:
        self._layouts.pop(name, None)
        shard = self._shards.pop(name, None)
        if shard is not None:
            shard.close()
        shutil.rmtree(self._path(name), ignore_errors=True)

    def list_collections(self) -> list[str]:
        return sorted(p.name for p in self._collections.iterdir() if (p / "edge_config.json").is_file())

    @_locked
    def shape(self, name: str) -> CollectionShape:
        shard = self._shard(name)
        config = json.loads((self._path(name) / "edge_config.json").read_text())
        hybrid = DENSE in config["vectors"]
        vectors = config["vectors"][DENSE if hybrid else ""]
        return CollectionShape(
            dim=vectors["size"],
            distance=models.Distance(vectors["distance"]),
            points=shard.info().points_count,
            hybrid=hybrid,
        )

    def _hybrid(self, name: str) -> bool:
        """Whether the collection has the named dense + BM25 layout (cached: a layout never changes)."""
        if name not in self._layouts:
            self._layouts[name] = self.shape(name).hybrid
        return self._layouts[name]

    @_locked
    def upsert(
        self,
        name: str,
        ids: Sequence[str],
        vectors: np.ndarray,
        payloads: Sequence[dict],
        sparse: Sequence[models.SparseVector] | None = None,
    ) -> None:
        shard = self._shard(name)
        vectors = check_vectors(vectors, len(ids))
        hybrid = self._hybrid(name)
        for start in range(0, len(ids), UPSERT_BATCH):
            end = start + UPSERT_BATCH
            batch = payloads[start:end]
            dense = [vector.tolist() for vector in vectors[start:end]]
            if hybrid:
                sparse_batch = sparse_vectors(batch, None if sparse is None else sparse[start:end], len(batch))
                point_vectors = [
                    {DENSE: d, SPARSE: qe.SparseVector(s.indices, s.values)}
                    for d, s in zip(dense, sparse_batch, strict=True)
                ]
            else:
                point_vectors = dense
            points = [
                qe.Point(id=point_id, vector=vector, payload=payload)
                for point_id, vector, payload in zip(as_point_ids(ids[start:end]), point_vectors, batch, strict=True)
            ]
            shard.update(qe.UpdateOperation.upsert_points(points))

    @_locked
    def delete(self, name: str, ids: Sequence[str]) -> None:
        if ids:
            self._shard(name).update(qe.UpdateOperation.delete_points(as_point_ids(ids)))

    @_locked
    def query(self, name: str, request: SearchRequest) -> list[models.ScoredPoint]:
        hybrid = self._hybrid(name)
        using = DENSE if hybrid else None
        mode = request.mode if hybrid else "dense"
        params = qe.SearchParams(hnsw_ef=request.hnsw_ef, exact=request.exact)
        where = edge_filter(request.filter)
        dense = np.asarray(request.vector, dtype=np.float32).tolist()
        sparse = None if request.sparse is None else qe.SparseVector(request.sparse.indices, request.sparse.values)
        depth = request.candidates
        prefetches: list[qe.Prefetch] | None = None
        query: Any  # a Query, a Fusion or an Mmr
        if mode == "dense":
            query = qe.Query.Nearest(dense, using=using)
        elif mode == "bm25":
            query = qe.Query.Nearest(_required(sparse), using=SPARSE)
        else:
            nearest = qe.Prefetch(limit=depth, query=qe.Query.Nearest(dense, using=DENSE), params=params, filter=where)
            if request.fusion == "dbsf":
                # DBSF rewards high scores: score the dense side by its log-likelihood −d²/2 first.
                nearest = qe.Prefetch(limit=depth, prefetches=[nearest], query=_LOG_LIKELIHOOD, filter=where)
            lexical = qe.Prefetch(limit=depth, query=qe.Query.Nearest(_required(sparse), using=SPARSE), filter=where)
            prefetches = [nearest, lexical]
            query = qe.Fusion.Rrf(k=RRF_K) if request.fusion == "rrf" else qe.Fusion.Dbsf()
        if request.diversity is not None:
            # MMR re-ranks the mode's candidates by relevance to the query and novelty among the picks.
            prefetches = [qe.Prefetch(limit=depth, query=query, prefetches=prefetches, params=params, filter=where)]
            query = qe.Mmr(dense, lambda_=1.0 - request.diversity, candidates_limit=depth, using=using)
        hits = self._shard(name).query(
            qe.QueryRequest(
                limit=request.limit,
                query=query,
                prefetches=prefetches,
                with_payload=True,
                with_vector=[using] if using else True,
                params=params,
                filter=where,
            )
        )
        return [
            models.ScoredPoint(
                id=str(hit.id), version=hit.version, score=hit.score, payload=hit.payload, vector=_dense(hit.vector)
            )
            for hit in hits
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


_EDGE_SCHEMA = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "integer": qe.PayloadSchemaType.Integer,
    "float": qe.PayloadSchemaType.Float,
    "bool": qe.PayloadSchemaType.Bool,
    "datetime": qe.PayloadSchemaType.Datetime,
}

_E = qe.Expression
_LOG_LIKELIHOOD = qe.Formula(_E.Mult([_E.Constant(-0.5), _E.Pow(_E.Variable("$score"), _E.Constant(2.0))]))


def _dense(vector) -> list[float] | None:
    """The dense vector of a point: the unnamed one (keyed by "") or the one named ``DENSE``."""
    if isinstance(vector, dict):
        return vector.get(DENSE, vector.get(""))
    return vector


def _record(record, with_vectors: bool) -> models.Record:
    return models.Record(
        id=str(record.id), payload=record.payload, vector=_dense(record.vector) if with_vectors else None
    )


def edge_filter(where: models.Filter | None):
    """A qdrant-client filter as qdrant-edge's own types (the conditions ragcun's filters use)."""
    if where is None:
        return None

    def conditions(items) -> list | None:
        if items is None:
            return None
        items = items if isinstance(items, list) else [items]
        return [condition(item) for item in items]

    return qe.Filter(must=conditions(where.must), should=conditions(where.should), must_not=conditions(where.must_not))


def _required(sparse: qe.SparseVector | None) -> qe.SparseVector:
    if sparse is None:
        raise InvalidInputError("bm25 and hybrid searches need the query's BM25 vector")
    return sparse


def condition(item):
    if isinstance(item, models.Filter):
        return edge_filter(item)
    if isinstance(item, models.HasIdCondition):
        return qe.HasIdCondition(set(as_point_ids([str(i) for i in item.has_id])))
    if isinstance(item, models.IsEmptyCondition):
        return qe.IsEmptyCondition(item.is_empty.key)
    if isinstance(item, models.IsNullCondition):
        return qe.IsNullCondition(item.is_null.key)
    if isinstance(item, models.FieldCondition):
        match: Any = item.match  # becomes the engine's own condition types
        range_: Any = item.range
        if isinstance(match, models.MatchValue):
            match = qe.MatchValue(match.value)
        elif isinstance(match, models.MatchAny):
            match = qe.MatchAny(match.any)
        elif isinstance(match, models.MatchExcept):
            match = qe.MatchExcept(match.except_)
        elif match is not None:
            raise InvalidInputError(f"filter condition on {item.key!r}: {type(match).__name__} is not supported")
        if isinstance(range_, models.DatetimeRange):
            range_ = qe.RangeDateTime(**{k: None if v is None else _iso(v) for k, v in range_.model_dump().items()})
        elif isinstance(range_, models.Range):
            range_ = qe.RangeFloat(gte=range_.gte, gt=range_.gt, lte=range_.lte, lt=range_.lt)
        return qe.FieldCondition(key=item.key, match=match, range=range_, is_empty=item.is_empty, is_null=item.is_null)
    raise InvalidInputError(f"filter condition {type(item).__name__} is not supported by the embedded engine")


def _iso(value) -> str:
    return value if isinstance(value, str) else value.isoformat()
