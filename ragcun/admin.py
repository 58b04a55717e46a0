"""Read-and-manage operations behind the admin commands. Each returns plain data (dicts)."""

from __future__ import annotations

from sqlalchemy import select

from pathlib import Path

from ragcun.catalog.models import Chunk, Collection, CollectionChunk, Document, IngestRun, ModelVersion, Source
from ragcun.catalog.ops import (
    collection_counts,
    delete_documents,
    document_uuid,
    mark_interrupted_runs,
    register_model_version,
)
from ragcun.errors import CollectionNotFound, RagcunError
from ragcun.workspace import Workspace


def _collection_row(session, collection: Collection) -> dict:
    version = collection.model_version
    return {
        "name": collection.name,
        "physical_name": collection.physical_name,
        "engine": collection.engine,
        "status": collection.status,
        "model_version": version.fingerprint,
        "dim": version.dim,
        **collection_counts(session, collection),
        "created_at": collection.created_at,
    }


def list_collections(ws: Workspace) -> list[dict]:
    with ws.catalog.session() as session:
        rows = session.scalars(select(Collection).order_by(Collection.name, Collection.id)).all()
        return [_collection_row(session, c) for c in rows]


def show_collection(ws: Workspace, name: str) -> dict:
    """Catalog view of every physical collection behind ``name``, plus what the engine reports."""
    with ws.catalog.session() as session:
        rows = session.scalars(select(Collection).where(Collection.name == name).order_by(Collection.id)).all()
        if not rows:
            raise CollectionNotFound(f"no collection named {name!r}")
        physical = []
        for collection in rows:
            row = _collection_row(session, collection)
            row["settings"] = collection.settings
            if ws.store.collection_exists(collection.physical_name):
                shape = ws.store.shape(collection.physical_name)
                row["engine_points"], row["engine_dim"], row["distance"] = shape.points, shape.dim, shape.distance.value
            else:
                row["engine_points"] = None
            physical.append(row)
        return {"name": name, "physical": physical}


def drop_collection(ws: Workspace, name: str) -> dict:
    """Drop every physical collection of ``name`` and the catalog's record of its documents."""
    with ws.catalog.session() as session:
        rows = session.scalars(select(Collection).where(Collection.name == name)).all()
        if not rows:
            raise CollectionNotFound(f"no collection named {name!r}")
        for collection in rows:
            ws.store.drop_collection(collection.physical_name)
        documents = list(session.scalars(select(Document).where(Document.collection_name == name)))
        deleted = delete_documents(session, documents, ws.store, [])
        for run in session.scalars(select(IngestRun).where(IngestRun.collection_id.in_([c.id for c in rows]))):
            run.collection_id = None
        for collection in rows:
            session.delete(collection)
        for source in session.scalars(select(Source).where(Source.collection_name == name)):
            session.delete(source)
        session.commit()
        return {"name": name, "physical_dropped": [c.physical_name for c in rows], "documents_deleted": deleted}


def _run_row(run: IngestRun) -> dict:
    return {
        "id": run.id, "collection": run.collection_name, "status": run.status, "started_at": run.started_at,
        "finished_at": run.finished_at, "model_version": run.model_version.fingerprint if run.model_version else None,
        **(run.counts or {}), "errors": len(run.errors or []),
    }


def list_runs(ws: Workspace, collection: str | None = None, limit: int = 50) -> list[dict]:
    with ws.catalog.session() as session:
        mark_interrupted_runs(session)
        query = select(IngestRun).order_by(IngestRun.id.desc()).limit(limit)
        if collection:
            query = query.where(IngestRun.collection_name == collection)
        return [_run_row(run) for run in session.scalars(query)]


def show_run(ws: Workspace, run_id: int) -> dict:
    with ws.catalog.session() as session:
        mark_interrupted_runs(session)
        run = session.get(IngestRun, run_id)
        if run is None:
            raise RagcunError(f"no ingest run {run_id}")
        return {**_run_row(run), "errors": run.errors, "inputs": run.inputs, "pid": run.pid,
                "ragcun_version": run.ragcun_version}


def chunk_lineage(ws: Workspace, chunk_id: str) -> dict:
    """Where a search hit came from: its document, source file and hash, run and model version."""
    with ws.catalog.session() as session:
        chunk = session.get(Chunk, chunk_id)
        if chunk is None:
            raise RagcunError(f"no chunk {chunk_id} in the catalog")
        document, source = chunk.document, chunk.document.source
        memberships = session.execute(
            select(Collection, CollectionChunk).join(CollectionChunk, CollectionChunk.collection_id == Collection.id)
            .where(CollectionChunk.chunk_id == chunk_id)).all()
        runs = {run.id: run for run in session.scalars(select(IngestRun).where(
            IngestRun.id.in_([m.ingest_run_id for _, m in memberships])))}
        return {
            "chunk_id": chunk.id, "ordinal": chunk.ordinal, "sha256": chunk.sha256, "tokens": chunk.token_count,
            "text": chunk.text,
            "document": {"doc_id": document.doc_id, "title": document.title, "sha256": document.sha256,
                         "metadata": document.metadata_, "collection": document.collection_name},
            "source": {"uri": source.uri, "sha256": source.sha256, "size": source.size, "mtime": source.mtime},
            "collections": [
                {"physical_name": c.physical_name, "status": c.status, "model_version": c.model_version.fingerprint,
                 "base_model": c.model_version.base_model, "norm": m.norm, "ingest_run": m.ingest_run_id,
                 "ingest_run_started_at": runs[m.ingest_run_id].started_at if m.ingest_run_id in runs else None}
                for c, m in memberships
            ],
        }


def delete_document(ws: Workspace, collection_name: str, doc_id: str) -> dict:
    with ws.catalog.session() as session:
        document = session.get(Document, document_uuid(collection_name, doc_id))
        if document is None:
            raise RagcunError(f"no document {doc_id!r} in collection {collection_name!r}")
        physical = list(session.scalars(select(Collection.physical_name).where(Collection.name == collection_name)))
        chunks = len(document.chunks)
        # Its source must be re-read next time, or an unchanged file would never bring it back.
        document.source.complete_sha256 = None
        delete_documents(session, [document], ws.store, physical)
        session.commit()
        return {"collection": collection_name, "doc_id": doc_id, "chunks_deleted": chunks}


def status(ws: Workspace) -> dict:
    from ragcun.catalog.db import current_revision

    settings = ws.settings
    with ws.catalog.session() as session:
        mark_interrupted_runs(session)
        collections = [_collection_row(session, c) for c in
                       session.scalars(select(Collection).where(Collection.status == "active"))]
        running = session.scalars(select(IngestRun.id).where(IngestRun.status == "running")).all()
    return {
        "home": str(settings.home), "catalog": settings.db_url,
        "catalog_revision": current_revision(ws.catalog.engine), "engine": settings.engine,
        "qdrant_url": settings.qdrant_url, "collections": collections, "running_ingests": list(running),
    }


def _model_row(session, version: ModelVersion) -> dict:
    bound = session.scalars(select(Collection).where(Collection.model_version_id == version.id)).all()
    return {"fingerprint": version.fingerprint, "base_model": version.base_model, "head": version.head["kind"],
            "dim": version.dim, "path": version.path, "created_at": version.created_at,
            "collections": [{"name": c.name, "physical_name": c.physical_name, "status": c.status} for c in bound]}


def find_model_version(session, ref: str) -> ModelVersion:
    """A registered model version by fingerprint (or a unique prefix of at least 6 characters)."""
    if len(ref) < 6:
        raise RagcunError(f"model version {ref!r} is too short; give at least 6 characters of its fingerprint")
    matches = session.scalars(select(ModelVersion).where(ModelVersion.fingerprint.startswith(ref))).all()
    if len(matches) != 1:
        state = "no" if not matches else "more than one"
        raise RagcunError(f"{state} registered model version matches {ref!r}; see `ragcun models list`")
    return matches[0]


def load_model_ref(ws: Workspace, ref: str):
    """A model given as a directory, or as the fingerprint (prefix) of a registered version."""
    from ragcun.model import GaussianEmbedder

    if Path(ref).is_dir():
        return GaussianEmbedder.load(ref)
    with ws.catalog.session() as session:
        return GaussianEmbedder.load(find_model_version(session, ref).path)


def list_models(ws: Workspace) -> list[dict]:
    with ws.catalog.session() as session:
        return [_model_row(session, v) for v in session.scalars(select(ModelVersion).order_by(ModelVersion.id))]


def show_model(ws: Workspace, ref: str) -> dict:
    with ws.catalog.session() as session:
        return _model_row(session, find_model_version(session, ref))


def register_model(ws: Workspace, path: str) -> dict:
    from ragcun.model import GaussianEmbedder

    embedder = GaussianEmbedder.load(path)
    with ws.catalog.session() as session:
        version = register_model_version(session, embedder, ws.models_dir)
        session.commit()
        return _model_row(session, version)


def remove_model(ws: Workspace, ref: str) -> dict:
    """Forget a model version; refused while any collection (even a retired one) is bound to it."""
    import shutil

    with ws.catalog.session() as session:
        version = find_model_version(session, ref)
        row = _model_row(session, version)
        if row["collections"]:
            names = ", ".join(f"{c['physical_name']} ({c['status']})" for c in row["collections"])
            raise RagcunError(f"model {version.fingerprint[:12]} is bound to {names}; drop or gc those first")
        if session.scalar(select(IngestRun.id).where(IngestRun.model_version_id == version.id).limit(1)):
            for run in session.scalars(select(IngestRun).where(IngestRun.model_version_id == version.id)):
                run.model_version_id = None
        session.delete(version)
        session.commit()
        if Path(version.path).parent == ws.models_dir:
            shutil.rmtree(version.path, ignore_errors=True)
        return row
