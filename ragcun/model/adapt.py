"""Fitting a corpus's own head with no labels: query-like spans, the ``adapt`` recipe, its acceptance gate.

Storage-free: :func:`fit_candidate` takes the base embeddings of a corpus and the model that serves
it now, and returns the fitted model and the gate's verdict. :func:`ragcun.collections.adapt.adapt_collection`
(a persistent collection) and :meth:`ragcun.GaussianRetriever.adapt` (in memory) both call it. The
recipe itself lives in ``ragcun.training.adapt`` and is reached through the ``ragcun.recipes``
entry point ``adapt`` (the library never imports training code).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ragcun.model.cache import base_embeddings
from ragcun.model.embedder import GaussianEmbedder
from ragcun.plugins import load_recipe

RECIPE = "adapt"


@dataclass(frozen=True)
class SpanOptions:
    """The query-like inputs cut from the text: ``per_chunk`` spans of ``words`` words per text, ``cap`` in all."""

    per_chunk: int = 2
    words: int = 12
    cap: int = 4000
    seed: int = 0


@dataclass
class Fitted:
    """A fitted candidate: the model, the gate's verdict, every logged term of the fit, and the time taken."""

    model: GaussianEmbedder
    passed: bool
    reason: str
    gate: dict
    metrics: dict
    spans: int
    seconds: dict[str, float] = field(default_factory=dict)  # spans (embedding them), fit, gate
    activated: bool = False  # set by the caller that switches to the model

    def record(self) -> dict:
        """What ``training_run.json`` keeps of the fit (everything but the model itself)."""
        return {
            "recipe": RECIPE,
            "recipe_module": "ragcun.training.adapt",
            "labels": "none",
            "passed": self.passed,
            "reason": self.reason,
            "gate": self.gate,
            "spans": self.spans,
            "seconds": self.seconds,
            "metrics": self.metrics,
        }


def cut_spans(texts: list[str], options: SpanOptions = SpanOptions()) -> tuple[list[str], np.ndarray]:
    """Up to ``per_chunk`` spans of ``words`` consecutive words of each text (``cap`` in all): ``(spans, text index)``.

    A text no longer than a span gives none: its span would be the whole text, not a query-like part.
    """
    rng = random.Random(options.seed)
    order = list(range(len(texts)))
    rng.shuffle(order)  # the cap must not favour the first texts
    spans: list[str] = []
    owner: list[int] = []
    for i in order:
        words = texts[i].split()
        room = len(words) - options.words
        if room <= 0:
            continue
        for start in sorted(rng.sample(range(room + 1), min(options.per_chunk, room + 1))):
            spans.append(" ".join(words[start : start + options.words]))
            owner.append(i)
        if len(spans) >= options.cap:
            break
    return spans[: options.cap], np.asarray(owner[: options.cap], dtype=np.int64)


def fit_candidate(
    current: GaussianEmbedder,
    base: np.ndarray,
    texts: list[str],
    *,
    config: Any = None,
    spans: SpanOptions = SpanOptions(),
    cache_dir: str | Path | None = None,
) -> Fitted:
    """Fit a head on a corpus's base embeddings and judge it against ``current``, from the corpus alone.

    Args:
        current: The model serving the corpus now; its base encoder embeds the spans and is shared
            (not reloaded) by the candidate.
        base: The corpus's base embeddings, rows aligned with ``texts``.
        texts: The corpus's texts, to cut query-like spans from.
        config: The recipe's ``AdaptConfig``; ``None``: its defaults.
        spans: How many spans to cut.
        cache_dir: A base-embedding cache (:func:`ragcun.model.cache.base_embeddings`) the spans are read from
            and added to, so adapting the same corpus again encodes only spans it has not seen; ``None``:
            encode them all.
    """
    recipe = load_recipe(RECIPE)
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    span_texts, span_owner = cut_spans(texts, spans)
    span_base = None
    if span_texts and cache_dir is not None:
        span_base = base_embeddings(current, span_texts, cache_dir, batch_size=32).numpy()
    elif span_texts:
        span_base = current.encode_with_base(span_texts, show_progress_bar=False)[1]
    owner = span_owner if span_base is not None else None
    seconds["spans"] = time.perf_counter() - t
    t = time.perf_counter()
    spec, head, metrics = recipe.fit(base, config if config is not None else recipe.AdaptConfig(), span_base, owner)
    seconds["fit"] = time.perf_counter() - t
    model = GaussianEmbedder(base_model=current.base_model, head=spec, base_encoder=current.base)
    model.head.load_state_dict(head.state_dict(), strict=True)
    model.head.eval()
    t = time.perf_counter()
    gate = recipe.acceptance_gate(base, model.head, current.head, span_base, owner)
    seconds["gate"] = time.perf_counter() - t
    return Fitted(model, bool(gate.passed), gate.reason, gate.to_dict(), metrics, len(span_texts), seconds)
