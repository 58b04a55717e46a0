"""Runs: every write into a collection (ingest, reindex, rollback) is recorded as one, with what it did and what failed."""

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
