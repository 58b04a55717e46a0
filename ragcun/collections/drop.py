"""Dropping collections: one physical version (what gc does), or a logical collection with all its documents."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ragcun.catalog.models import Collection, Document, IngestRun, Source
from ragcun.collections import journal
from ragcun.collections.documents import delete_documents
from ragcun.errors import CollectionNotFound
from ragcun.faults import fault_point
from ragcun.workspace import Workspace


@dataclass
class CollectionDropped:
    name: str
    physical_dropped: list[str]
    documents_deleted: int

    def to_dict(self) -> dict:
        return asdict(self)


def drop_physical(ws: Workspace, session: Session, collection: Collection, path: str = "drop") -> None:
    """Drop one physical collection: its catalog row (with what ``session`` holds staged), then its store folder.

    Its runs are kept, unlinked. The catalog row goes first, in the transaction that journals the drop
    (fault point ``PATH.after_catalog``), then the store's collection (``PATH.after_drop``), so a kill
    leaves at most an unclaimed collection that the next command drops (:mod:`ragcun.collections.journal`).
    """
    physical = collection.physical_name
    for run in session.scalars(select(IngestRun).where(IngestRun.collection_id == collection.id)):
        run.collection_id = None
    session.delete(collection)
    change = journal.record(session, physical, "drop")
    session.commit()
    fault_point(f"{path}.after_catalog")
    ws.store.drop_collection(physical)
    fault_point(f"{path}.after_drop")
    journal.done(session, [change])


def drop_collection(ws: Workspace, name: str) -> CollectionDropped:
    """Drop every physical collection of ``name`` and the catalog's record of its documents and sources."""
    ws.open_store()  # first: opening settles what a killed command left
    with ws.catalog.session() as session:
        rows = session.scalars(select(Collection).where(Collection.name == name)).all()
        if not rows:
            raise CollectionNotFound(f"no collection named {name!r}")
        documents = list(session.scalars(select(Document).where(Document.collection_name == name)))
        deleted = delete_documents(ws, session, documents, [], path="drop")  # their points go with the collections
        for collection in rows:
            drop_physical(ws, session, collection)
        for source in session.scalars(select(Source).where(Source.collection_name == name)):
            session.delete(source)
        session.commit()
        return CollectionDropped(name, [c.physical_name for c in rows], deleted)
