"""The journal of store writes: every change to a collection's points is recorded before the store is touched.

The catalog and the store cannot share a transaction, so a process killed between the two leaves them
apart. Each write path therefore writes a ``pending_changes`` row first (the point ids it will add and the
ones it will remove, per physical collection), then touches the store and the catalog in an order that
keeps one promise (the catalog never claims a point the store lacks), then deletes the row.

The next command that opens the store (:meth:`ragcun.workspace.Workspace.store`) settles every row with one
rule: **delete each journaled point the catalog does not claim** (no membership in that physical
collection), keep every point it does. Because the catalog commit of each write path is one transaction,
that rule rolls back a change killed before its catalog commit (the new points are unclaimed and go; the
stale ones are still claimed and stay) and rolls forward one killed after it (the new points are claimed
and stay; the stale ones are unclaimed and go). A ``drop`` row drops its physical collection once the
catalog no longer has it. Nothing is re-embedded and no file is read, so the outcome does not depend on
whether the input file changed since, and a point the catalog claims is never deleted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from ragcun.catalog.models import Collection, CollectionChunk, PendingChange
from ragcun.workspace import Workspace

logger = logging.getLogger(__name__)
# Ids per SQL ``IN`` list, well under SQLite's limit on bound variables.
ID_BATCH = 500


def record(
    session: Session,
    physical_name: str,
    operation: str,
    new: Sequence[str] = (),
    stale: Sequence[str] = (),
    document_id: str | None = None,
) -> PendingChange:
    """Stage a journal row in ``session``; the caller commits it before touching the store (or with the catalog
    change that makes its points unclaimed, for a deletion)."""
    change = PendingChange(
        physical_name=physical_name,
        operation=operation,
        document_id=document_id,
        new_chunk_ids=list(new),
        stale_chunk_ids=list(stale),
        pid=os.getpid(),
    )
    session.add(change)
    return change


def done(session: Session, changes: Iterable[PendingChange]) -> None:
    """The store and the catalog agree again: delete the journal rows and commit."""
    for change in changes:
        session.delete(change)
    session.commit()


def claimed(session: Session, physical_name: str, ids: Sequence[str]) -> set[str]:
    """The ids among ``ids`` that the catalog claims in ``physical_name`` (a membership row)."""
    found: set[str] = set()
    for start in range(0, len(ids), ID_BATCH):
        found.update(
            session.scalars(
                select(CollectionChunk.chunk_id)
                .join(Collection, Collection.id == CollectionChunk.collection_id)
                .where(
                    Collection.physical_name == physical_name,
                    CollectionChunk.chunk_id.in_(ids[start : start + ID_BATCH]),
                )
            )
        )
    return found


def settle(ws: Workspace) -> int:
    """Finish or undo every pending change (see the module's rule); returns how many were settled.

    On the embedded engine the caller holds the store's lock, so every row was left by a dead process.
    On a Qdrant server other processes may be mid-write: a row whose process is alive is left to it.
    """
    from ragcun.collections.runs import pid_alive

    with ws.catalog.session() as session:
        changes = session.scalars(select(PendingChange).order_by(PendingChange.id)).all()
        if not changes:
            return 0
        exclusive = ws.settings.qdrant_url is None
        settled = 0
        for change in changes:
            if not exclusive and change.pid != os.getpid() and pid_alive(change.pid):
                continue
            physical = change.physical_name
            exists = ws.store.collection_exists(physical)
            if change.operation == "drop":
                if exists and session.scalar(select(Collection.id).where(Collection.physical_name == physical)) is None:
                    ws.store.drop_collection(physical)
            elif exists:
                ids = list(dict.fromkeys([*change.new_chunk_ids, *change.stale_chunk_ids]))
                keep = claimed(session, physical, ids)
                unclaimed = [i for i in ids if i not in keep]
                if unclaimed:
                    ws.store.delete(physical, unclaimed)
            logger.warning(
                "settled an unfinished %s of %s left by process %s (%d new, %d stale point(s))",
                change.operation,
                physical,
                change.pid,
                len(change.new_chunk_ids),
                len(change.stale_chunk_ids),
            )
            session.delete(change)
            session.commit()
            settled += 1
        return settled
