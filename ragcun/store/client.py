"""qdrant-client adapter: a Qdrant server or cluster (``url=``), or local mode (``path=``).

Local mode is qdrant-client's pure-Python engine; the tests use it to exercise this same code
without a server.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from qdrant_client import QdrantClient, models

from ragcun.errors import CollectionNotFound, InvalidInputError, StoreLockedError
from ragcun.store.base import (
    INDEXED_PAYLOAD_FIELDS,
    CollectionParams,
    CollectionShape,
    VectorStore,
    as_point_ids,
    check_vectors,
)

logger = logging.getLogger(__name__)

UPSERT_BATCH = 256


class ClientStore(VectorStore):
    engine = "server"

    def __init__(self, client: QdrantClient, local: bool = False):
        self.client = client
        self.local = local
        if local:
            self.engine = "local"

    @classmethod
    def connect(cls, url: str, api_key: str | None = None, prefer_grpc: bool = False, timeout: int = 60) -> ClientStore:
        return cls(QdrantClient(url=url, api_key=api_key, prefer_grpc=prefer_grpc, timeout=timeout))

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
            vectors_config=models.VectorParams(
                size=params.dim, distance=models.Distance.EUCLID, on_disk=params.on_disk
            ),
            hnsw_config=models.HnswConfigDiff(m=params.hnsw_m, ef_construct=params.hnsw_ef_construct),
            shard_number=params.shard_number,
            replication_factor=params.replication_factor,
            write_consistency_factor=params.write_consistency_factor,
        )
        if not self.local:  # local mode has no payload indexes (and warns about them)
            for field in INDEXED_PAYLOAD_FIELDS:
                self.client.create_payload_index(name, field, models.PayloadSchemaType.KEYWORD, wait=True)

    def drop_collection(self, name: str) -> None:
        self.client.delete_collection(name)

    def list_collections(self) -> list[str]:
        return sorted(c.name for c in self.client.get_collections().collections)

    def collection_exists(self, name: str) -> bool:
        return self.client.collection_exists(name)

    def shape(self, name: str) -> CollectionShape:
        self._require(name)
        info = self.client.get_collection(name)
        vectors = info.config.params.vectors
        if not isinstance(vectors, models.VectorParams):  # ragcun creates one unnamed vector per point
            raise InvalidInputError(f"collection {name!r} does not hold one unnamed vector per point")
        points = self.client.count(name, exact=True).count
        return CollectionShape(dim=vectors.size, distance=vectors.distance, points=points)

    def upsert(self, name: str, ids: Sequence[str], vectors: np.ndarray, payloads: Sequence[dict]) -> None:
        vectors = check_vectors(vectors, len(ids))
        point_ids = as_point_ids(ids)
        for start in range(0, len(ids), UPSERT_BATCH):
            end = start + UPSERT_BATCH
            self.client.upsert(
                name,
                points=models.Batch(
                    ids=point_ids[start:end], vectors=vectors[start:end].tolist(), payloads=list(payloads[start:end])
                ),
                wait=True,
            )

    def delete(self, name: str, ids: Sequence[str]) -> None:
        if ids:
            self.client.delete(name, points_selector=models.PointIdsList(points=as_point_ids(ids)), wait=True)

    def search(
        self, name: str, vector: np.ndarray, limit: int, hnsw_ef: int | None = None, exact: bool = False
    ) -> list[models.ScoredPoint]:
        self._require(name)
        return self.client.query_points(
            name,
            query=np.asarray(vector, dtype=np.float32).tolist(),
            limit=limit,
            with_payload=True,
            # Local mode is always exact and warns about search params.
            search_params=None if self.local else models.SearchParams(hnsw_ef=hnsw_ef, exact=exact),
        ).points

    def retrieve(self, name: str, ids: Sequence[str], with_vectors: bool = False) -> list[models.Record]:
        if not ids:
            return []
        return self.client.retrieve(name, ids=as_point_ids(ids), with_payload=True, with_vectors=with_vectors)

    def scroll(self, name: str, with_vectors: bool = False, batch_size: int = 256) -> Iterator[models.Record]:
        self._require(name)
        offset = None
        while True:
            page, offset = self.client.scroll(
                name, limit=batch_size, offset=offset, with_payload=True, with_vectors=with_vectors
            )
            yield from page
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
