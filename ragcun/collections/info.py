"""Read-only views: the collections, one collection as catalog and engine see it, and the home at a glance."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ragcun.catalog.models import Collection, IngestRun
from ragcun.catalog.ops import collection_counts
from ragcun.collections.runs import mark_interrupted_runs
from ragcun.errors import CollectionNotFound
from ragcun.workspace import Workspace


@dataclass
class CollectionInfo:
    """One physical collection as the catalog records it."""

    name: str
    physical_name: str
    engine: str
    status: str
    model_version: str
    dim: int
    documents: int
    chunks: int
    created_at: datetime

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PhysicalCollection(CollectionInfo):
    """A :class:`CollectionInfo` with its settings and what the engine reports (``engine_points`` None: missing)."""

    settings: dict = field(default_factory=dict)
    engine_points: int | None = None
    engine_dim: int | None = None
    distance: str | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        if self.engine_points is None:  # the engine has no such collection: nothing else to report
            del data["engine_dim"], data["distance"]
        return data


@dataclass
class CollectionDetail:
    name: str
    physical: list[PhysicalCollection]

    def to_dict(self) -> dict:
        return {"name": self.name, "physical": [p.to_dict() for p in self.physical]}


@dataclass
class HomeStatus:
    home: str
    catalog: str
    catalog_revision: str | None
    engine: str
    qdrant_url: str | None
    collections: list[CollectionInfo]  # the active ones
    running_ingests: list[int]

    def to_dict(self) -> dict:
        return {**asdict(self), "collections": [c.to_dict() for c in self.collections]}


def _info(session: Session, collection: Collection, cls: type[CollectionInfo] = CollectionInfo, **extra):
    version = collection.model_version
    return cls(
        collection.name,
        collection.physical_name,
        collection.engine,
        collection.status,
        version.fingerprint,
        version.dim,
        **collection_counts(session, collection),
        created_at=collection.created_at,
        **extra,
    )


def list_collections(ws: Workspace) -> list[CollectionInfo]:
    """Every physical collection, ordered by logical name."""
    with ws.catalog.session() as session:
        rows = session.scalars(select(Collection).order_by(Collection.name, Collection.id)).all()
        return [_info(session, c) for c in rows]


def show_collection(ws: Workspace, name: str) -> CollectionDetail:
    """Catalog view of every physical collection behind ``name``, plus what the engine reports."""
    with ws.catalog.session() as session:
        rows = session.scalars(select(Collection).where(Collection.name == name).order_by(Collection.id)).all()
        if not rows:
            raise CollectionNotFound(f"no collection named {name!r}")
        physical = []
        for collection in rows:
            engine = {}
            if ws.store.collection_exists(collection.physical_name):
                shape = ws.store.shape(collection.physical_name)
                engine = {"engine_points": shape.points, "engine_dim": shape.dim, "distance": shape.distance.value}
            physical.append(_info(session, collection, PhysicalCollection, settings=collection.settings, **engine))
        return CollectionDetail(name, physical)


def status(ws: Workspace) -> HomeStatus:
    """Home, catalog, engine, active collections and running ingests."""
    from ragcun.catalog.db import current_revision

    settings = ws.settings
    with ws.catalog.session() as session:
        mark_interrupted_runs(session)
        collections = [
            _info(session, c) for c in session.scalars(select(Collection).where(Collection.status == "active"))
        ]
        running = session.scalars(select(IngestRun.id).where(IngestRun.status == "running")).all()
    return HomeStatus(
        str(settings.home),
        settings.db_url,
        current_revision(ws.catalog.engine),
        settings.engine,
        settings.qdrant_url,
        collections,
        list(running),
    )
