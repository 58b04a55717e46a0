"""Calibrating σ of the Gaussian probabilities P(hit) = softmax(−d² / (2σ²)) on judged dev queries."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar

from ragcun.catalog.ops import require_collection
from ragcun.errors import InvalidInputError
from ragcun.evaluation.corpus import doc_distances, exclude_self_hits, load_points, relevance_grades
from ragcun.evaluation.data import EvaluationError, judged_queries, read_qrels_strict, read_queries_strict
from ragcun.evaluation.metrics import expected_calibration_error, gaussian_probabilities
from ragcun.validation import check_sigma
from ragcun.workspace import Workspace

DEFAULT_SIGMA = 1.0


@dataclass
class Calibration:
    collection: str
    sigma: float
    previous_sigma: float
    num_queries: int
    top_k: int
    log_loss: float | None
    ece_before: float | None
    ece_after: float | None
    source: str

    def to_dict(self) -> dict:
        return asdict(self)


def log_loss(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean binary cross-entropy of P(relevant) against the judgements."""
    p = np.clip(probabilities, 1e-12, 1 - 1e-12)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def fit_sigma(distances: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The σ minimising the log loss of each candidate's probability against its relevance.

    ``distances`` and ``labels`` are (queries × candidates). Log loss is a proper scoring rule, so
    its minimiser is the σ whose probabilities best match observed relevance rates; searched over
    log σ, since σ acts multiplicatively on the distances.
    """
    labels = labels.astype(float)
    if not labels.any():
        raise EvaluationError("no relevant document among the candidates: σ cannot be calibrated")
    scale = float(np.median(distances)) or 1.0
    objective = lambda log_sigma: log_loss(gaussian_probabilities(distances, np.exp(log_sigma)), labels)  # noqa: E731
    best = minimize_scalar(objective, bounds=(np.log(scale) - 8, np.log(scale) + 8), method="bounded")
    return float(np.exp(best.x)), float(best.fun)


def set_sigma(ws: Workspace, collection_name: str, sigma: float, details: dict | None = None) -> float:
    """Store σ in the active collection's settings; returns the σ it replaces."""
    sigma = check_sigma(sigma)
    with ws.catalog.session() as session:
        collection = require_collection(session, collection_name)
        previous = float(collection.settings.get("sigma", DEFAULT_SIGMA))
        # A new dict, so SQLAlchemy sees the JSON column change.
        collection.settings = {
            **collection.settings,
            "sigma": float(sigma),
            "calibration": details or {"source": "set by hand"},
        }
        session.commit()
    return previous


def calibrate(
    ws: Workspace,
    collection_name: str,
    queries_path: str | Path,
    qrels_path: str | Path,
    top_k: int = 10,
    ignore_identical_ids: bool = True,
) -> Calibration:
    """Fit σ on dev queries over each query's ``top_k`` nearest documents, and store it.

    Use a dev split (for SciFact, ``qrels/train.tsv``), never the test qrels you report on.
    """
    if top_k < 2:
        raise InvalidInputError(f"top_k must be at least 2 (a softmax over one candidate is always 1), got {top_k}")
    points = load_points(ws, collection_name)
    judged = judged_queries(read_queries_strict(queries_path), read_qrels_strict(qrels_path), set(points.doc_ids))
    with ws.catalog.session() as session:
        embedder = ws.embedder_for(require_collection(session, collection_name))
    queries = embedder.encode_queries(judged.texts)
    distances = doc_distances(queries, points.vectors, points.chunk_doc, len(points.doc_ids))
    if ignore_identical_ids:  # the same rule as `evaluate`, so σ is fitted on the candidates it will score
        distances = exclude_self_hits(distances, judged.query_ids, points)
    cut = np.argsort(distances, axis=1, kind="stable")[:, :top_k]
    candidates = np.take_along_axis(distances, cut, axis=1)
    labels = np.take_along_axis(relevance_grades(judged.query_ids, judged.qrels, points), cut, axis=1) > 0
    sigma, loss = fit_sigma(candidates, labels)
    previous = float(points.settings.get("sigma", DEFAULT_SIGMA))
    result = Calibration(
        collection_name,
        sigma,
        previous,
        len(judged.query_ids),
        top_k,
        loss,
        expected_calibration_error(gaussian_probabilities(candidates, previous), labels),
        expected_calibration_error(gaussian_probabilities(candidates, sigma), labels),
        f"{queries_path} + {qrels_path}",
    )
    set_sigma(ws, collection_name, sigma, {k: v for k, v in result.to_dict().items() if k != "collection"})
    return result
