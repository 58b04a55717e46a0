"""Creating a collection: the physical collection in the store and its catalog row, together."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from ragcun.catalog.models import PAYLOAD_INDEXES, Collection, ModelVersion, utcnow
from ragcun.catalog.ops import active_collection, require_collection
from ragcun.collections.versions import register_model_version
from ragcun.errors import InvalidInputError, ModelMismatchError
from ragcun.store import CollectionParams
from ragcun.workspace import Workspace

if TYPE_CHECKING:  # the model imports torch; annotations alone need not
    from ragcun.model import GaussianEmbedder


SCHEMAS = ("keyword", "integer", "float", "bool", "datetime")


def index_payload(ws: Workspace, name: str, field: str, schema: str = "keyword") -> dict:
    """A payload index on ``field`` of collection ``name``'s active version (kept by later reindexes)."""
    from ragcun.retrieve.filters import check_key

    check_key(field)
    if schema not in SCHEMAS:
        raise InvalidInputError(f"index type must be one of {', '.join(SCHEMAS)}, got {schema!r}")
    with ws.catalog.session() as session:
        collection = require_collection(session, name)
        ws.store.create_index(collection.physical_name, field, schema)
        indexes = {**collection.settings.get(PAYLOAD_INDEXES, {}), field: schema}
        collection.settings = {**collection.settings, PAYLOAD_INDEXES: indexes}
        session.commit()
        return {
            "collection": name,
            "physical_name": collection.physical_name,
            "field": field,
            "schema": schema,
            "indexes": indexes,
        }


def carry_indexes(ws: Workspace, source: Collection, target: Collection) -> None:
    """Give ``target`` the payload indexes users asked for on ``source`` (the caller commits)."""
    indexes = source.settings.get(PAYLOAD_INDEXES, {})
    for field, schema in indexes.items():
        ws.store.create_index(target.physical_name, field, schema)
    if indexes:
        target.settings = {**target.settings, PAYLOAD_INDEXES: indexes}


def physical_name(name: str, fingerprint: str) -> str:
    """The physical collection that ``fingerprint``'s model builds for logical collection ``name``."""
    return f"{name}-{fingerprint[:12]}"


def create_collection(
    ws: Workspace,
    session: Session,
    name: str,
    version: ModelVersion,
    params: CollectionParams,
    status: str,
    physical: str | None = None,
) -> Collection:
    """The physical collection of ``name`` built by ``version``, created in the store and catalog if missing.

    ``physical``: its name (default :func:`physical_name`; a hybrid rebuild of a legacy collection
    by the same model needs another).

    The store side is created first, so the catalog never records a collection the store lacks; a
    crash between the two is mended by calling again. An existing collection is given ``status``.
    """
    physical = physical or physical_name(name, version.fingerprint)
    collection = session.scalar(select(Collection).where(Collection.physical_name == physical))
    settings = collection.settings if collection is not None else params.to_dict()
    if not ws.store.collection_exists(physical):
        ws.store.create_collection(physical, CollectionParams.from_settings(settings))
        for field, schema in settings.get(PAYLOAD_INDEXES, {}).items():
            ws.store.create_index(physical, field, schema)
    if collection is None:
        collection = Collection(
            name=name,
            physical_name=physical,
            engine=ws.store.engine,
            model_version_id=version.id,
            status=status,
            status_changed_at=utcnow(),
            settings=settings,
        )
        session.add(collection)
    elif collection.status != status:
        collection.status, collection.status_changed_at = status, utcnow()
    session.commit()
    return collection


def ensure_collection(
    ws: Workspace, session: Session, name: str, embedder: GaussianEmbedder, params: dict
) -> Collection:
    """The active collection ``name``, created for ``embedder`` if missing; refuses another model."""
    version = register_model_version(session, embedder, ws.models_dir)
    collection = active_collection(session, name)
    if collection is None:
        collection = create_collection(
            ws, session, name, version, CollectionParams(dim=embedder.dim, **params), status="active"
        )
        ws.store.set_alias(name, collection.physical_name)
        return collection
    if collection.model_version.fingerprint != version.fingerprint:
        raise ModelMismatchError(
            f"collection {name!r} was built by model {collection.model_version.fingerprint[:12]}, not "
            f"{version.fingerprint[:12]}; ingest with that model, or reindex the collection"
        )
    shape = ws.store.shape(collection.physical_name)
    if shape.dim != embedder.dim:
        raise ModelMismatchError(f"collection {name!r} stores {shape.dim}-d vectors; the model makes {embedder.dim}-d")
    return collection
