"""qdrant-client adapter: a Qdrant server or cluster (``url=``), or local mode (``path=``).

Local mode is qdrant-client's pure-Python engine; the tests use it to exercise this same code
without a server.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from ragcun.errors import CollectionNotFound, InvalidInputError, StoreLockedError, StoreUnreachableError
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

logger = logging.getLogger(__name__)

UPSERT_BATCH = 256


class ClientStore(VectorStore):
    engine = "server"

    def __init__(self, client: QdrantClient, local: bool = False):
        self.client = client
        self.local = local
        self._layouts: dict[str, bool] = {}
        if local:
            self.engine = "local"

    @classmethod
    def connect(cls, url: str, api_key: str | None = None, prefer_grpc: bool = False, timeout: int = 60) -> ClientStore:
        """A store on the Qdrant server at ``url``, asked once for its collections so that an unreachable
        server is one clear error here rather than a transport traceback in the middle of a command."""
        # Probed first by a client without qdrant-client's version check, which would warn from a thread.
        probe = QdrantClient(
            url=url, api_key=api_key, prefer_grpc=prefer_grpc, timeout=timeout, check_compatibility=False
        )
        try:
            probe.get_collections()
        except Exception as exc:  # httpx, grpc and qdrant-client each raise their own transport errors
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise StoreUnreachableError(
                f"no Qdrant server answers at QDRANT_URL={url} ({reason[:200]}): start the server, fix "
                "QDRANT_URL, or unset it to use the embedded store"
            ) from None
        finally:
            probe.close()
        client = QdrantClient(url=url, api_key=api_key, prefer_grpc=prefer_grpc, timeout=timeout)
        return cls(client)

    @classmethod
    def local_path(cls, path: str | Path) -> ClientStore:
        try:
            client = QdrantClient(path=str(path))
        except RuntimeError as exc:
            if "already accessed" in str(exc):
                raise StoreLockedError(
                    f"{path} is in use by another process; qdrant-client local mode allows one process at a "
                    "time: wait for it, or run a Qdrant server and set QDRANT_URL"
                ) from None
            raise
        return cls(client, local=True)

    def _require(self, name: str) -> None:
        if not self.client.collection_exists(name):
            raise CollectionNotFound(f"collection {name!r} does not exist on the Qdrant {self.engine}")

    def create_collection(self, name: str, params: CollectionParams) -> None:
        if self.client.collection_exists(name):
            raise InvalidInputError(f"collection {name!r} already exists")
        self.client.create_collection(
            name,
            vectors_config={
                DENSE: models.VectorParams(size=params.dim, distance=models.Distance.EUCLID, on_disk=params.on_disk)
            },
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            hnsw_config=models.HnswConfigDiff(m=params.hnsw_m, ef_construct=params.hnsw_ef_construct),
            shard_number=params.shard_number,
            replication_factor=params.replication_factor,
            write_consistency_factor=params.write_consistency_factor,
        )
        for field in INDEXED_PAYLOAD_FIELDS:
            self.create_index(name, field)

    def create_index(self, name: str, field: str, schema: str = "keyword") -> None:
        self._require(name)
        if not self.local:  # local mode has no payload indexes (and warns about them)
            self.client.create_payload_index(name, field, models.PayloadSchemaType(schema), wait=True)

    def drop_collection(self, name: str) -> None:
        self._layouts.pop(name, None)
        self.client.delete_collection(name)

    def list_collections(self) -> list[str]:
        return sorted(c.name for c in self.client.get_collections().collections)

    def collection_exists(self, name: str) -> bool:
        return self.client.collection_exists(name)

    def shape(self, name: str) -> CollectionShape:
        self._require(name)
        info = self.client.get_collection(name)
        vectors = info.config.params.vectors
        hybrid = False
        if isinstance(vectors, dict) and DENSE in vectors:
            hybrid, vectors = True, vectors[DENSE]
        if not isinstance(vectors, models.VectorParams):  # ragcun creates one unnamed vector, or named dense + BM25
            raise InvalidInputError(f"collection {name!r} does not hold one dense vector per point")
        points = self.client.count(name, exact=True).count
        return CollectionShape(dim=vectors.size, distance=vectors.distance, points=points, hybrid=hybrid)

    def _hybrid(self, name: str) -> bool:
        """Whether the collection has the named dense + BM25 layout (cached: a layout never changes)."""
        if name not in self._layouts:
            vectors = self.client.get_collection(name).config.params.vectors
            self._layouts[name] = isinstance(vectors, dict) and DENSE in vectors
        return self._layouts[name]

    def upsert(
        self,
        name: str,
        ids: Sequence[str],
        vectors: np.ndarray,
        payloads: Sequence[dict],
        sparse: Sequence[models.SparseVector] | None = None,
    ) -> None:
        vectors = check_vectors(vectors, len(ids))
        point_ids = as_point_ids(ids)
        hybrid = self._hybrid(name)
        for start in range(0, len(ids), UPSERT_BATCH):
            end = start + UPSERT_BATCH
            batch = list(payloads[start:end])
            dense = vectors[start:end].tolist()
            if hybrid:
                sparse_batch = sparse_vectors(batch, None if sparse is None else sparse[start:end], len(batch))
                batch_vectors = {DENSE: dense, SPARSE: sparse_batch}
            else:
                batch_vectors = dense
            self.client.upsert(
                name, points=models.Batch(ids=point_ids[start:end], vectors=batch_vectors, payloads=batch), wait=True
            )

    def delete(self, name: str, ids: Sequence[str]) -> None:
        if ids:
            self.client.delete(name, points_selector=models.PointIdsList(points=as_point_ids(ids)), wait=True)

    def query(self, name: str, request: SearchRequest) -> list[models.ScoredPoint]:
        self._require(name)
        hybrid = self._hybrid(name)
        using = DENSE if hybrid else None
        mode = request.mode if hybrid else "dense"
        # Local mode is always exact and warns about search params.
        params = None if self.local else models.SearchParams(hnsw_ef=request.hnsw_ef, exact=request.exact)
        dense = np.asarray(request.vector, dtype=np.float32).tolist()
        depth, where = request.candidates, request.filter
        prefetch: list[models.Prefetch] | None = None
        query: Any
        if mode == "dense":
            query = dense
        elif mode == "bm25":
            query, using = request.sparse, SPARSE
        else:
            nearest = models.Prefetch(query=dense, using=DENSE, limit=depth, params=params, filter=where)
            if request.fusion == "dbsf":
                # DBSF rewards high scores: score the dense side by its log-likelihood −d²/2 first.
                nearest = models.Prefetch(prefetch=[nearest], query=_LOG_LIKELIHOOD, limit=depth, filter=where)
            lexical = models.Prefetch(query=request.sparse, using=SPARSE, limit=depth, filter=where)
            prefetch, using = [nearest, lexical], None
            query = (
                models.RrfQuery(rrf=models.Rrf(k=RRF_K))
                if request.fusion == "rrf"
                else models.FusionQuery(fusion=models.Fusion.DBSF)
            )
        if request.diversity is not None:
            # MMR re-ranks the mode's candidates by relevance to the query and novelty among the picks.
            prefetch = [
                models.Prefetch(query=query, using=using, prefetch=prefetch, limit=depth, params=params, filter=where)
            ]
            using = DENSE if hybrid else None
            query = models.NearestQuery(
                nearest=dense, mmr=models.Mmr(diversity=request.diversity, candidates_limit=depth)
            )
        points = self.client.query_points(
            name,
            query=query,
            using=using,
            prefetch=prefetch,
            limit=request.limit,
            with_payload=True,
            with_vectors=[DENSE] if hybrid else True,
            search_params=params,
            query_filter=where,
        ).points
        for point in points:
            if isinstance(point.vector, dict):
                point.vector = point.vector.get(DENSE)  # type: ignore[assignment]  # the dense vector alone
        return points

    def retrieve(self, name: str, ids: Sequence[str], with_vectors: bool = False) -> list[models.Record]:
        if not ids:
            return []
        return _dense_only(
            self.client.retrieve(name, ids=as_point_ids(ids), with_payload=True, with_vectors=with_vectors)
        )

    def scroll(self, name: str, with_vectors: bool = False, batch_size: int = 256) -> Iterator[models.Record]:
        self._require(name)
        offset = None
        while True:
            page, offset = self.client.scroll(
                name, limit=batch_size, offset=offset, with_payload=True, with_vectors=with_vectors
            )
            yield from _dense_only(page)
            if offset is None:
                return

    supports_aliases = True

    def set_alias(self, alias: str, name: str) -> None:
        operations: list[models.AliasOperations] = []
        if self.get_alias(alias) is not None:
            operations.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
        operations.append(
            models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=name, alias_name=alias))
        )
        # One request: readers of the alias see the old collection or the new one, never neither.
        self.client.update_collection_aliases(change_aliases_operations=operations)

    def get_alias(self, alias: str) -> str | None:
        for description in self.client.get_aliases().aliases:
            if description.alias_name == alias:
                return description.collection_name
        return None

    def close(self) -> None:
        self.client.close()


_LOG_LIKELIHOOD = models.FormulaQuery(
    formula=models.MultExpression(mult=[-0.5, models.PowExpression(pow=models.PowParams(base="$score", exponent=2))])
)


def _dense_only(records: list[models.Record]) -> list[models.Record]:
    """Records whose ``vector`` is the dense vector, named or not."""
    for record in records:
        if isinstance(record.vector, dict):
            record.vector = record.vector.get(DENSE)  # type: ignore[assignment]  # the dense vector alone
    return records
