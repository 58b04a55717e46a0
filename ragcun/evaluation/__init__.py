"""Measuring what Gaussian embeddings promise: retrieval quality, separation, norm as confidence,
calibrated probabilities and isotropy, for a collection against baselines."""

from ragcun.evaluation.calibration import Calibration, calibrate, fit_sigma, set_sigma
from ragcun.evaluation.data import EvaluationError, judged_queries, read_qrels_strict, read_queries_strict
from ragcun.evaluation.evaluate import BASELINES, EvalReport, MethodResult, evaluate, evaluate_beir, list_evals
from ragcun.evaluation.metrics import expected_calibration_error, gaussian_probabilities, per_query_metrics, separation
from ragcun.evaluation.stats import CollectionStats, collection_stats, vector_stats

__all__ = [
    "BASELINES",
    "Calibration",
    "CollectionStats",
    "EvalReport",
    "EvaluationError",
    "MethodResult",
    "calibrate",
    "collection_stats",
    "evaluate",
    "evaluate_beir",
    "expected_calibration_error",
    "fit_sigma",
    "gaussian_probabilities",
    "judged_queries",
    "list_evals",
    "per_query_metrics",
    "read_qrels_strict",
    "read_queries_strict",
    "separation",
    "set_sigma",
    "vector_stats",
]
