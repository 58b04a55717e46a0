"""Catalog operations shared by ingest, search and the CLI."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ragcun.catalog.models import Chunk, Collection, CollectionChunk, Document, IngestRun, ModelVersion, utcnow
from ragcun.errors import CollectionNotFound

# Namespace of every ragcun UUID, so ids are the same on every machine.
RAGCUN_NAMESPACE = uuid.UUID("6f1c3c1e-2b1f-5a8e-9c7d-52a6c0b1e0aa")


def document_uuid(collection_name: str, doc_id: str) -> str:
    return str(uuid.uuid5(RAGCUN_NAMESPACE, f"document\x00{collection_name}\x00{doc_id}"))


def chunk_uuid(document_id: str, ordinal: int, sha256: str) -> str:
    """The point id of a chunk: the same content at the same place always gets the same id."""
    return str(uuid.uuid5(RAGCUN_NAMESPACE, f"chunk\x00{document_id}\x00{ordinal}\x00{sha256}"))


def register_model_version(session: Session, embedder, models_dir: Path) -> ModelVersion:
    """The catalog row of ``embedder``'s version, saving a copy of the model under ``models_dir``.

    Keeping a copy in the ragcun home means a collection can always reload the exact model that
    built it, even if the directory it came from is moved or deleted.
    """
    fingerprint = embedder.fingerprint
    version = session.scalar(select(ModelVersion).where(ModelVersion.fingerprint == fingerprint))
    if version is not None:
        return version
    path = models_dir / fingerprint
    if not (path / "fingerprint").is_file():
        embedder.save(path)
    version = ModelVersion(
        fingerprint=fingerprint,
        base_model=embedder.base_model,
        head=embedder.head_spec.to_dict(),
        dim=embedder.dim,
        path=str(path),
    )
    session.add(version)
    session.flush()
    return version


def chunk_payload(*, doc_id: str, ordinal: int, text: str, title: str | None, metadata: dict,
                  source: str | None, norm: float, model_version: str, ingest_run: int | None) -> dict:
    """The payload of a chunk's point: enough for any Qdrant client to show and trace a hit."""
    return {"doc_id": doc_id, "chunk": ordinal, "text": text, "norm": norm, "source": source,
            "model_version": model_version, "ingest_run": ingest_run, "title": title, "metadata": metadata}


def stored_chunk_payload(chunk: Chunk, norm: float, model_version: str, ingest_run: int | None) -> dict:
    """:func:`chunk_payload` of a chunk already in the catalog."""
    document = chunk.document
    return chunk_payload(doc_id=document.doc_id, ordinal=chunk.ordinal, text=chunk.text, title=document.title,
                         metadata=document.metadata_, source=document.source.uri, norm=norm,
                         model_version=model_version, ingest_run=ingest_run)


def active_collection(session: Session, name: str) -> Collection | None:
    return session.scalar(select(Collection).where(Collection.name == name, Collection.status == "active"))


def require_collection(session: Session, name: str) -> Collection:
    collection = active_collection(session, name)
    if collection is None:
        known = session.scalars(select(Collection.name).where(Collection.status == "active").distinct()).all()
        hint = f"; collections: {', '.join(sorted(known))}" if known else "; ingest something first"
        raise CollectionNotFound(f"no collection named {name!r}{hint}")
    return collection


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_interrupted_runs(session: Session) -> int:
    """Runs still marked ``running`` whose process is gone were killed: say so."""
    stale = [
        run
        for run in session.scalars(select(IngestRun).where(IngestRun.status == "running"))
        if run.pid != os.getpid() and not pid_alive(run.pid)
    ]
    for run in stale:
        run.status = "interrupted"
        run.finished_at = run.finished_at or utcnow()
    session.commit()
    return len(stale)


def chunk_ids_in(session: Session, collection_id: int, chunk_ids: list[str]) -> set[str]:
    """Which of ``chunk_ids`` already have a point in the physical collection."""
    present: set[str] = set()
    for start in range(0, len(chunk_ids), 500):  # stay under SQLite's bound-parameter limit
        present.update(session.scalars(select(CollectionChunk.chunk_id).where(
            CollectionChunk.collection_id == collection_id,
            CollectionChunk.chunk_id.in_(chunk_ids[start : start + 500]))))
    return present


def collection_counts(session: Session, collection: Collection) -> dict[str, int]:
    chunks = session.scalar(select(func.count()).where(CollectionChunk.collection_id == collection.id))
    documents = session.scalar(select(func.count()).select_from(Document)
                               .where(Document.collection_name == collection.name))
    return {"documents": documents or 0, "chunks": chunks or 0}


def delete_documents(session: Session, documents: list[Document], store, physical_names: list[str]) -> int:
    """Remove documents' points from every given physical collection, then their catalog rows."""
    if not documents:
        return 0
    document_ids = [d.id for d in documents]
    chunk_ids = list(session.scalars(select(Chunk.id).where(Chunk.document_id.in_(document_ids))))
    for physical in physical_names:
        if store.collection_exists(physical):
            store.delete(physical, chunk_ids)
    session.execute(delete(CollectionChunk).where(CollectionChunk.chunk_id.in_(chunk_ids)))
    session.execute(delete(Chunk).where(Chunk.document_id.in_(document_ids)))
    session.execute(delete(Document).where(Document.id.in_(document_ids)))
    return len(documents)
