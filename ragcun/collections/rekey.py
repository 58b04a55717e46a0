"""Re-keying points after a catalog migration changed their ids (``migrations/versions/0006``).

A migration cannot reach the vector store, so it lists the points it re-keyed in ``point_rekeys``;
this moves each one, vectors as they are, to its new id with the new ``doc_id`` and ``source`` in its
payload, in every physical collection that holds it. New points are written before old ones are
deleted and the list rows last, so an interrupted run is finished by the next.
"""

from __future__ import annotations

import logging

import numpy as np
from sqlalchemy import delete, func, select

from ragcun.catalog.models import Collection, PointRekey
from ragcun.workspace import Workspace

logger = logging.getLogger(__name__)
BATCH = 256


def pending_rekeys(ws: Workspace) -> int:
    with ws.catalog.session() as session:
        return session.scalar(select(func.count()).select_from(PointRekey)) or 0


def apply_rekeys(ws: Workspace) -> int:
    """Move every listed point to its new id; returns how many were listed."""
    with ws.catalog.session() as session:
        rekeys = session.scalars(select(PointRekey)).all()
        if not rekeys:
            return 0
        physical = [
            name for name in session.scalars(select(Collection.physical_name)) if ws.store.collection_exists(name)
        ]
        for name in physical:
            for start in range(0, len(rekeys), BATCH):
                batch = {r.old_id: r for r in rekeys[start : start + BATCH]}
                records = ws.store.retrieve(name, list(batch), with_vectors=True)
                if not records:
                    continue
                ws.store.upsert(
                    name,
                    [batch[str(r.id)].new_id for r in records],
                    np.array([r.vector for r in records], dtype=np.float32),
                    [
                        {**(r.payload or {}), "doc_id": batch[str(r.id)].doc_id, "source": batch[str(r.id)].source}
                        for r in records
                    ],
                )
                ws.store.delete(name, [str(r.id) for r in records])
        session.execute(delete(PointRekey))
        session.commit()
        logger.warning("re-keyed %d point(s) to relative document ids", len(rekeys))
        return len(rekeys)
