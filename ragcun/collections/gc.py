"""Garbage collection: dropping retired physical collections by age or by count."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from ragcun.catalog.models import Collection, utcnow
from ragcun.collections.drop import drop_physical
from ragcun.errors import InvalidInputError
from ragcun.workspace import Workspace


@dataclass
class RetiredCollection:
    name: str
    physical_name: str
    model_version: str
    retired_at: datetime | None

    def to_dict(self) -> dict:
        return asdict(self)


def gc(
    ws: Workspace,
    name: str | None = None,
    older_than_days: float | None = None,
    keep: int | None = None,
    dry_run: bool = False,
) -> list[RetiredCollection]:
    """Drop retired physical collections older than an age, or beyond the ``keep`` most recent per name.

    Returns what was dropped (with ``dry_run``: what would be).
    """
    if older_than_days is None and keep is None:
        raise InvalidInputError("say what to collect: an age (--older-than) or a count to keep (--keep)")
    ws.open_store()  # first: opening settles what a killed command left
    with ws.catalog.session() as session:
        query = select(Collection).where(Collection.status == "retired")
        if name:
            query = query.where(Collection.name == name)
        retired = session.scalars(query.order_by(Collection.name, Collection.status_changed_at.desc())).all()
        doomed: list[Collection] = []
        seen: dict[str, int] = {}
        cutoff = utcnow() - timedelta(days=older_than_days) if older_than_days is not None else None
        for collection in retired:
            rank = seen[collection.name] = seen.get(collection.name, 0) + 1
            too_old = cutoff is not None and (collection.status_changed_at or collection.created_at) < cutoff
            if too_old or (keep is not None and rank > keep):
                doomed.append(collection)
        dropped = [
            RetiredCollection(c.name, c.physical_name, c.model_version.fingerprint, c.status_changed_at) for c in doomed
        ]
        if not dry_run:
            for collection in doomed:
                drop_physical(ws, session, collection, path="gc")
        return dropped
