"""Pure catalog queries and the ids ragcun derives: nothing here writes (writes live in :mod:`ragcun.collections`)."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ragcun.catalog.models import Collection, CollectionChunk, Document
from ragcun.errors import CollectionNotFound

# Namespace of every ragcun UUID, so ids are the same on every machine.
RAGCUN_NAMESPACE = uuid.UUID("6f1c3c1e-2b1f-5a8e-9c7d-52a6c0b1e0aa")


def document_uuid(collection_name: str, doc_id: str) -> str:
    return str(uuid.uuid5(RAGCUN_NAMESPACE, f"document\x00{collection_name}\x00{doc_id}"))


def chunk_uuid(document_id: str, ordinal: int, sha256: str) -> str:
    """The point id of a chunk: the same content at the same place always gets the same id."""
    return str(uuid.uuid5(RAGCUN_NAMESPACE, f"chunk\x00{document_id}\x00{ordinal}\x00{sha256}"))


def active_collection(session: Session, name: str) -> Collection | None:
    return session.scalar(select(Collection).where(Collection.name == name, Collection.status == "active"))


def require_collection(session: Session, name: str) -> Collection:
    collection = active_collection(session, name)
    if collection is None:
        known = session.scalars(select(Collection.name).where(Collection.status == "active").distinct()).all()
        hint = f"; collections: {', '.join(sorted(known))}" if known else "; ingest something first"
        raise CollectionNotFound(f"no collection named {name!r}{hint}")
    return collection


def chunk_ids_in(session: Session, collection_id: int, chunk_ids: list[str]) -> set[str]:
    """Which of ``chunk_ids`` already have a point in the physical collection."""
    present: set[str] = set()
    for start in range(0, len(chunk_ids), 500):  # stay under SQLite's bound-parameter limit
        present.update(
            session.scalars(
                select(CollectionChunk.chunk_id).where(
                    CollectionChunk.collection_id == collection_id,
                    CollectionChunk.chunk_id.in_(chunk_ids[start : start + 500]),
                )
            )
        )
    return present


def collection_counts(session: Session, collection: Collection) -> dict[str, int]:
    chunks = session.scalar(select(func.count()).where(CollectionChunk.collection_id == collection.id))
    documents = session.scalar(
        select(func.count()).select_from(Document).where(Document.collection_name == collection.name)
    )
    return {"documents": documents or 0, "chunks": chunks or 0}
