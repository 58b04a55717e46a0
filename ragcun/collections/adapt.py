"""``adapt``: fit a collection's own model version from its chunks, with no labels, and activate it if it passes.

The chunks' base vectors come from the base-vector store (:mod:`ragcun.collections.base_vectors`;
chunks it lacks are encoded once and kept). :func:`ragcun.model.adapt.fit_candidate` cuts and embeds
a few query-like spans of the chunk text (through the home's base-embedding cache: adapting again
encodes only spans it has not seen), runs the ``adapt`` recipe and its label-free acceptance
gate against the current version. A head that passes (or ``force``) is activated through the
zero-downtime :func:`~ragcun.collections.reindex.reindex`, which runs only the head (every base
vector is stored by then); the previous version stays for ``rollback``. A refused head stays
registered as a candidate, with the reason in its ``training_run.json``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ragcun.catalog.models import Chunk, CollectionChunk
from ragcun.catalog.ops import require_collection
from ragcun.collections.base_vectors import base_matrix, has_base
from ragcun.collections.reindex import reindex
from ragcun.collections.versions import register_model_version
from ragcun.errors import InvalidInputError
from ragcun.workspace import Workspace

logger = logging.getLogger(__name__)

TRAINING_RUN_FILE = "training_run.json"
# Exit status of `ragcun adapt` (and `ingest --adapt`) when the gate refuses the candidate (it stays registered).
EXIT_REFUSED = 3


@dataclass
class AdaptResult:
    """What ``adapt`` did: the candidate, the gate's verdict, whether it was activated, and where the time went."""

    collection: str
    candidate: str  # fingerprint of the fitted model version
    previous: str  # fingerprint of the version that served the collection before
    activated: bool
    forced: bool  # activated although the gate refused it
    passed: bool
    reason: str
    gate: dict
    chunks: int
    spans: int
    chunks_encoded: int  # chunks the base-vector store lacked (encoded now, and kept)
    model_path: str
    seconds: dict[str, float] = field(default_factory=dict)  # base, spans, fit, gate, reindex, total
    reindex: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def adapt_collection(
    ws: Workspace, name: str, *, force: bool = False, config: Any = None, spans: Any = None, batch_size: int = 128
) -> AdaptResult:
    """Fit, gate and (if it passes, or ``force``) activate a label-free model version for collection ``name``.

    Args:
        ws: The workspace.
        name: The logical collection; its active version's model supplies the base encoder.
        force: Activate even when the gate refuses.
        config: The recipe's config (``AdaptConfig``); ``None``: its defaults.
        spans: :class:`ragcun.model.adapt.SpanOptions`; ``None``: the defaults.
        batch_size: Chunks per batch of the reindex.

    Raises:
        NotFoundError: when the ``adapt`` recipe is not installed; ``CollectionNotFound``.
        InvalidInputError: when the collection's model has no base encoder, or holds too few chunks.
    """
    from ragcun.model.adapt import SpanOptions, fit_candidate

    spans = spans if spans is not None else SpanOptions()
    started = time.perf_counter()
    with ws.catalog.session() as session:
        active = require_collection(session, name)
        current = ws.embedder_for(active)
        if not has_base(current):
            raise InvalidInputError(f"collection {name!r} is served by a model without a base encoder; cannot adapt it")
        previous = active.model_version.fingerprint
        chunks = list(
            session.scalars(
                select(Chunk)
                .join(CollectionChunk, CollectionChunk.chunk_id == Chunk.id)
                .where(CollectionChunk.collection_id == active.id)
                .order_by(Chunk.id)
            )
        )
        if len(chunks) < 3:
            raise InvalidInputError(f"collection {name!r} holds {len(chunks)} chunks; adapting needs at least 3")
        texts = [c.text for c in chunks]
        base, encoded, _ = base_matrix(session, current, texts, [c.sha256 for c in chunks])
        session.commit()
    seconds = {"base": time.perf_counter() - started}
    fitted = fit_candidate(current, base, texts, config=config, spans=spans, cache_dir=ws.settings.cache_dir)
    seconds.update(fitted.seconds)
    candidate = fitted.model
    with ws.catalog.session() as session:
        model_path = register_model_version(session, candidate, ws.models_dir).path
        session.commit()
    result = AdaptResult(
        name,
        candidate.fingerprint,
        previous,
        False,
        force and not fitted.passed,
        fitted.passed,
        fitted.reason,
        fitted.gate,
        len(chunks),
        fitted.spans,
        len(encoded),
        model_path,
        seconds,
    )
    if fitted.passed or force:
        t = time.perf_counter()
        result.reindex = reindex(ws, name, candidate, batch_size).to_dict()
        seconds["reindex"] = time.perf_counter() - t
        result.activated = True
    seconds["total"] = time.perf_counter() - started
    record = {
        **fitted.record(),
        "collection": name,
        "chunks": len(chunks),
        "span_options": asdict(spans),
        "previous_model_version": previous,
        "activated": result.activated,
        "forced": result.forced,
        "seconds": seconds,
    }
    text = json.dumps(record, indent=2, sort_keys=True, default=float)
    (Path(model_path) / TRAINING_RUN_FILE).write_text(text + "\n")
    logger.info(
        "adapt %s: candidate %s %s (%s)",
        name,
        candidate.fingerprint[:12],
        "activated" if result.activated else "kept as a candidate",
        fitted.reason,
    )
    return result


@dataclass
class IngestAdaptResult:
    """An ingest followed by ``adapt`` on the same collection, with both wall times (``ingest --adapt``)."""

    ingest: dict
    adapt: AdaptResult
    ingest_seconds: float
    adapt_seconds: float

    @property
    def adapt_to_ingest(self) -> float:
        """``adapt`` wall time over the ingest's: the issue's target is ≤ 1 on 10,000 chunks."""
        return self.adapt_seconds / self.ingest_seconds if self.ingest_seconds > 0 else float("inf")

    def to_dict(self) -> dict:
        return {
            "ingest": self.ingest,
            "adapt": self.adapt.to_dict(),
            "ingest_seconds": self.ingest_seconds,
            "adapt_seconds": self.adapt_seconds,
            "adapt_to_ingest": self.adapt_to_ingest,
        }


def ingest_and_adapt(
    ws: Workspace, paths: list, name: str, embedder, options: Any = None, *, force: bool = False, config: Any = None
) -> IngestAdaptResult:
    """Ingest ``paths`` into ``name`` with ``embedder``, then :func:`adapt_collection` it, timing both (wall clock).

    ``benchmarks/adapt.py`` calls this to set ``adapt``'s time against the ingest time of the same
    corpus in the same run; ``ragcun ingest --adapt`` is this call.
    """
    from ragcun.ingest import IngestOptions, ingest

    started = time.perf_counter()
    ingested = ingest(ws, paths, name, embedder, options if options is not None else IngestOptions())
    ingest_seconds = time.perf_counter() - started
    started = time.perf_counter()
    adapted = adapt_collection(ws, name, force=force, config=config)
    return IngestAdaptResult(ingested.to_dict(), adapted, ingest_seconds, time.perf_counter() - started)
