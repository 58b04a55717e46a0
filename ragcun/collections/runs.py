"""Runs: every write into a collection (ingest, reindex, rollback) is recorded as one, with what it did and
what failed."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ragcun import __version__
from ragcun.catalog.models import Collection, IngestRun, utcnow
from ragcun.errors import RunNotFound
from ragcun.workspace import Workspace


@dataclass
class RunInfo:
    """One run: ``to_dict()`` in full, ``summary()`` for listings (the error count instead of the errors)."""

    id: int
    collection: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    model_version: str | None
    counts: dict = field(default_factory=dict)
    errors: list[dict] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    pid: int | None = None
    ragcun_version: str | None = None

    def summary(self) -> dict:
        return {
            "id": self.id,
            "collection": self.collection,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "model_version": self.model_version,
            **self.counts,
            "errors": len(self.errors),
        }

    def to_dict(self) -> dict:
        return {
            **self.summary(),
            "errors": self.errors,
            "inputs": self.inputs,
            "pid": self.pid,
            "ragcun_version": self.ragcun_version,
        }


def _info(run: IngestRun) -> RunInfo:
    return RunInfo(
        run.id,
        run.collection_name,
        run.status,
        run.started_at,
        run.finished_at,
        run.model_version.fingerprint if run.model_version else None,
        run.counts or {},
        run.errors or [],
        run.inputs or [],
        run.pid,
        run.ragcun_version,
    )


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


def start_run(session: Session, kind: str, collection: Collection, inputs: list[str]) -> IngestRun:
    """A committed ``running`` run of this process writing into ``collection``."""
    run = IngestRun(
        kind=kind,
        collection_name=collection.name,
        collection_id=collection.id,
        model_version_id=collection.model_version_id,
        status="running",
        pid=os.getpid(),
        inputs=inputs,
        ragcun_version=__version__,
    )
    session.add(run)
    session.commit()
    return run


def finish_run(
    session: Session, run: IngestRun, status: str, counts: dict | None = None, errors: list[dict] | None = None
) -> None:
    run.status, run.finished_at = status, utcnow()
    if counts is not None:
        run.counts = counts
    if errors is not None:
        run.errors = errors
    session.commit()


def list_runs(ws: Workspace, collection: str | None = None, limit: int = 50) -> list[RunInfo]:
    """The ``limit`` most recent runs, newest first, optionally into one logical collection."""
    with ws.catalog.session() as session:
        mark_interrupted_runs(session)
        query = select(IngestRun).order_by(IngestRun.id.desc()).limit(limit)
        if collection:
            query = query.where(IngestRun.collection_name == collection)
        return [_info(run) for run in session.scalars(query)]


def show_run(ws: Workspace, run_id: int) -> RunInfo:
    with ws.catalog.session() as session:
        mark_interrupted_runs(session)
        run = session.get(IngestRun, run_id)
        if run is None:
            raise RunNotFound(f"no ingest run {run_id}")
        return _info(run)


@dataclass
class FailedDocuments:
    """Documents of a collection's sources that the last ingest of each could not store."""

    count: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # error message → how many
    run_ids: list[int] = field(default_factory=list)

    def summary(self) -> str:
        """The commonest reasons, most frequent first, e.g. ``'missing id field' ×3``."""
        top = sorted(self.reasons.items(), key=lambda kv: -kv[1])[:2]
        return "; ".join(f"{reason!r} ×{n}" for reason, n in top) + ("; …" if len(self.reasons) > 2 else "")


def failed_documents(session: Session, collection_name: str, uris: list[str] | None = None) -> FailedDocuments:
    """What the latest ingest of each incomplete source (optionally only ``uris``) of a collection failed on.

    A source is incomplete when its last ingest left problems (:attr:`Source.complete_sha256` is not
    its current hash); the problems are that run's errors naming the source.
    """
    from ragcun.catalog.models import Source

    query = select(Source).where(Source.collection_name == collection_name)
    if uris is not None:
        query = query.where(Source.uri.in_(uris))
    incomplete = {s.uri for s in session.scalars(query) if s.complete_sha256 is None or s.complete_sha256 != s.sha256}
    found = FailedDocuments()
    if not incomplete:
        return found
    runs = session.scalars(
        select(IngestRun)
        .where(IngestRun.collection_name == collection_name, IngestRun.kind == "ingest")
        .order_by(IngestRun.id.desc())
    )
    for run in runs:
        errors = [e for e in run.errors or [] if e.get("uri") in incomplete and not e.get("warning")]
        if not errors:
            continue
        incomplete -= {e["uri"] for e in errors}
        found.count += len(errors)
        found.run_ids.append(run.id)
        for error in errors:
            found.reasons[error["error"]] = found.reasons.get(error["error"], 0) + 1
        if not incomplete:
            break
    return found
