"""Dropping collections: one physical version (what gc does), or a logical collection with all its documents."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ragcun.catalog.models import Collection, Document, IngestRun, PendingChange, Source
from ragcun.collections import journal
from ragcun.collections.documents import stage_document_deletion
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


def forget_physical(session: Session, collection: Collection) -> PendingChange:
    """Stage removing one physical collection's catalog row (its runs are kept, unlinked) and journaling its drop."""
    for run in session.scalars(select(IngestRun).where(IngestRun.collection_id == collection.id)):
        run.collection_id = None
    session.delete(collection)
    return journal.record(session, collection.physical_name, "drop")


def drop_physical(ws: Workspace, session: Session, collection: Collection, path: str = "drop") -> None:
    """Drop one physical collection: its catalog row (with what ``session`` holds staged), then its store folder.

    The catalog row goes first, in the transaction that journals the drop (fault point
    ``PATH.after_catalog``), then the store's collection (``PATH.after_drop``), so a kill leaves at most
    an unclaimed collection that the next command drops (:mod:`ragcun.collections.journal`).
    """
    change = forget_physical(session, collection)
    session.commit()
    fault_point(f"{path}.after_catalog")
    ws.store.drop_collection(collection.physical_name)
    fault_point(f"{path}.after_drop")
    journal.done(session, [change])


def drop_collection(ws: Workspace, name: str) -> CollectionDropped:
    """Drop every physical collection of ``name`` and the catalog's record of its documents and sources.

    The whole catalog change is one transaction (``drop.after_catalog``), then the store's collections go
    (``drop.after_drop``): a kill in between leaves unclaimed collections the next command drops.
    """
    ws.open_store()  # first: opening settles what a killed command left
    with ws.catalog.session() as session:
        rows = session.scalars(select(Collection).where(Collection.name == name)).all()
        if not rows:
            raise CollectionNotFound(f"no collection named {name!r}")
        documents = list(session.scalars(select(Document).where(Document.collection_name == name)))
        if documents:  # their points go with the collections
            stage_document_deletion(session, documents, [])
        session.flush()  # documents before the sources they belong to
        for source in session.scalars(select(Source).where(Source.collection_name == name)):
            session.delete(source)
        changes = [forget_physical(session, c) for c in rows]
        session.commit()
        fault_point("drop.after_catalog")
        for collection in rows:
            ws.store.drop_collection(collection.physical_name)
        fault_point("drop.after_drop")
        journal.done(session, changes)
        return CollectionDropped(name, [c.physical_name for c in rows], len(documents))
