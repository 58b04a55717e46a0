"""The provenance catalog's tables (SQLAlchemy 2.x ORM).

The schema is created and changed only by the Alembic migrations in ``migrations/``; these classes
describe it for the ORM, and a test checks that the two agree.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ModelVersion(Base):
    """A model directory, identified by its fingerprint."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    base_model: Mapped[str] = mapped_column(Text)
    head: Mapped[dict] = mapped_column(JSON)
    dim: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# Collection settings key: the payload indexes users asked for ({field: schema}), rebuilt by a reindex and
# followed by filters (an equality on an integer field matches integers only, so the engine can use the index).
PAYLOAD_INDEXES = "payload_indexes"


class Collection(Base):
    """A physical engine-side collection behind a logical name, built by one model version."""

    __tablename__ = "collections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    physical_name: Mapped[str] = mapped_column(String(255), unique=True)
    engine: Mapped[str] = mapped_column(String(20))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    status: Mapped[str] = mapped_column(String(20), default="building")  # building | active | retired
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the status last changed: retirement age drives `collections gc`, recency drives rollback.
    status_changed_at: Mapped[datetime | None]

    model_version: Mapped[ModelVersion] = relationship()


class Source(Base):
    """An input file (or other URI) as last seen by an ingest into a logical collection."""

    __tablename__ = "sources"
    __table_args__ = (UniqueConstraint("collection_name", "uri"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_name: Mapped[str] = mapped_column(String(200))
    # The file's name in the collection: its path relative to the ingest input, with any --prefix.
    uri: Mapped[str] = mapped_column(Text)
    # Where the file was last read (absolute); moving it changes this, not ``uri``.
    path: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(Integer)
    mtime: Mapped[float | None]
    # The sha256 whose documents are all stored; differs from sha256 while an ingest is unfinished.
    complete_sha256: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Document(Base):
    """One document of a logical collection; ``id`` is a UUID derived from (collection, doc_id)."""

    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("collection_name", "doc_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    collection_name: Mapped[str] = mapped_column(String(200))
    doc_id: Mapped[str] = mapped_column(Text)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict] = mapped_column("metadata", JSON, default=dict)
    ingest_run_id: Mapped[int | None] = mapped_column(ForeignKey("ingest_runs.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    source: Mapped[Source] = relationship()
    chunks: Mapped[list[Chunk]] = relationship(
        back_populates="document", cascade="all, delete-orphan", order_by="Chunk.ordinal"
    )


class Chunk(Base):
    """A passage of a document; ``id`` is also its point id in every collection that holds it."""

    __tablename__ = "chunks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    token_count: Mapped[int] = mapped_column(Integer)
    # Where the chunk sits in its document: {"heading_path": "Security > Keys", "page": 4, "pages": [4, 5]}.
    locator: Mapped[dict | None] = mapped_column(JSON)

    document: Mapped[Document] = relationship(back_populates="chunks")


class BaseVector(Base):
    """A chunk text's base-encoder (pre-head) embedding, float16, so a new head never re-runs the encoder.

    Keyed by what the embedding depends on: the base encoder (reference and truncation length, as
    ``ragcun.collections.base_vectors.base_key``) and the text's sha256 (``Chunk.sha256``). Many chunks, in any
    collection, may share one row.
    """

    __tablename__ = "base_vectors"

    base_key: Mapped[str] = mapped_column(String(400), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # little-endian float16, dim values


class CollectionChunk(Base):
    """Which chunk has a point in which physical collection, written by which run."""

    __tablename__ = "collection_chunks"

    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True)
    chunk_id: Mapped[str] = mapped_column(ForeignKey("chunks.id", ondelete="CASCADE"), primary_key=True, index=True)
    ingest_run_id: Mapped[int | None] = mapped_column(ForeignKey("ingest_runs.id"))
    norm: Mapped[float]


class IngestRun(Base):
    """One ``ragcun ingest`` invocation: what it did and what went wrong, file by file."""

    __tablename__ = "ingest_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default="ingest", server_default="ingest")  # ingest | reindex
    collection_name: Mapped[str] = mapped_column(String(200))
    collection_id: Mapped[int | None] = mapped_column(ForeignKey("collections.id", ondelete="SET NULL"))
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    status: Mapped[str] = mapped_column(String(20), default="running")  # running|completed|failed|interrupted
    pid: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    counts: Mapped[dict] = mapped_column(JSON, default=dict)
    errors: Mapped[list] = mapped_column(JSON, default=list)
    inputs: Mapped[list] = mapped_column(JSON, default=list)
    ragcun_version: Mapped[str] = mapped_column(String(40))

    model_version: Mapped[ModelVersion | None] = relationship()


Index("ix_ingest_runs_status", IngestRun.status)


class EvalResult(Base):
    """One method's scores from one ``ragcun eval`` run; the methods of a run share ``batch``."""

    __tablename__ = "eval_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch: Mapped[str] = mapped_column(String(36), index=True)
    collection_name: Mapped[str] = mapped_column(String(200), index=True)
    collection_id: Mapped[int | None] = mapped_column(ForeignKey("collections.id", ondelete="SET NULL"))
    # The model version scored; None for baselines that are not a registered version (base encoder, BM25).
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    method: Mapped[str] = mapped_column(String(200))
    queries: Mapped[str] = mapped_column(Text)
    qrels: Mapped[str] = mapped_column(Text)
    num_queries: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    model_version: Mapped[ModelVersion | None] = relationship()


class PointRekey(Base):
    """A point whose id a catalog migration changed, waiting to be re-keyed in the vector store."""

    __tablename__ = "point_rekeys"

    old_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    new_id: Mapped[str] = mapped_column(String(36))
    doc_id: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)


class PendingChange(Base):
    """A store write begun and not yet finished: written before the store is touched, deleted when done.

    ``operation`` is ``replace`` (a document's new points written, its stale ones to go), ``write``
    (a batch of points for catalog chunks), ``delete`` (documents' points) or ``drop`` (a whole physical
    collection). ``ragcun.collections.journal`` settles every row the next time the store is opened.
    """

    __tablename__ = "pending_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    physical_name: Mapped[str] = mapped_column(String(255))
    operation: Mapped[str] = mapped_column(String(20))
    document_id: Mapped[str | None] = mapped_column(String(36))  # replace: the document being replaced
    new_chunk_ids: Mapped[list] = mapped_column(JSON, default=list)
    stale_chunk_ids: Mapped[list] = mapped_column(JSON, default=list)
    pid: Mapped[int | None] = mapped_column(Integer)  # the process that began it
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
