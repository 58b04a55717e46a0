"""Micro-batching of query embeddings: concurrent requests share one encoder pass.

A query waits up to a short window for others; then every waiting query of the same model is encoded
in one batch on the encoder thread. While a batch encodes, the next one gathers, so under load the
batches grow with the number of clients and the encoder's per-call overhead is paid once per batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the model imports torch; annotations alone need not
    from ragcun.model import GaussianEmbedder

logger = logging.getLogger(__name__)

MAX_BATCH = 64


@dataclass
class _Pending:
    embedder: GaussianEmbedder
    text: str
    future: asyncio.Future


class EmbeddingBatcher:
    """Embeds single texts, batching those that arrive within ``window_s`` of each other.

    Args:
        executor: Where the encoder runs (one thread: torch uses the cores itself).
        window_s: How long the first query of a batch waits for others (0: no wait; the batch is
            whatever queued while the previous one encoded).
        max_batch: Most texts per encoder call.
        on_batch: Called with each batch's size (the ``/metrics`` histogram).
    """

    def __init__(
        self,
        executor: Executor,
        window_s: float = 0.002,
        max_batch: int = MAX_BATCH,
        on_batch: Callable[[int], None] | None = None,
    ):
        self.executor = executor
        self.window_s = window_s
        self.max_batch = max_batch
        self.on_batch = on_batch
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task | None = None

    async def embed(self, embedder: GaussianEmbedder, text: str) -> np.ndarray:
        """``embedder.encode_queries([text])[0]`` (a query: through an adapted head's query map), computed in a
        batch with the texts of concurrent callers."""
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run(self._queue))
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(embedder, text, future))
        return await future

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None

    async def _run(self, queue: asyncio.Queue[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            if self.window_s > 0:
                await asyncio.sleep(self.window_s)
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            # A caller that went away (client disconnected) costs no encoder time.
            batch = [p for p in batch if not p.future.done()]
            groups: dict[str, list[_Pending]] = {}
            for pending in batch:
                groups.setdefault(pending.embedder.fingerprint, []).append(pending)
            for group in groups.values():
                if self.on_batch is not None:
                    self.on_batch(len(group))
                try:
                    vectors = await loop.run_in_executor(self.executor, _encode, group)
                except Exception as exc:  # the callers get the error; the batcher keeps serving
                    for pending in group:
                        if not pending.future.done():
                            pending.future.set_exception(exc)
                    continue
                for pending, vector in zip(group, vectors, strict=True):
                    if not pending.future.done():
                        pending.future.set_result(vector)


def _encode(group: list[_Pending]) -> np.ndarray:
    return group[0].embedder.encode_queries([p.text for p in group], batch_size=len(group), show_progress_bar=False)
