"""Scale-free figures of a ranking: pytrec_eval metrics, separation, norm correlations, calibration.

Every function takes plain arrays or run dicts and returns numbers, so the same code scores the
Gaussian model and every baseline.
"""

from __future__ import annotations

import numpy as np
import pytrec_eval
import torch
from scipy.stats import spearmanr

from ragcun.errors import InvalidInputError
from ragcun.retrieve.base import gaussian_probabilities  # noqa: F401  (re-exported)

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")


def rank(queries: np.ndarray, docs: np.ndarray, k: int = 100, metric: str = "l2") -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` document indices per query and their scores (higher is better), exact search.

    ``metric``: ``l2`` ranks by −‖q − d‖² (the Gaussian space), ``cosine`` by the cosine.
    """
    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    d = torch.from_numpy(np.ascontiguousarray(docs, dtype=np.float32))
    if metric == "cosine":
        scores = torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(d, dim=1).T
    elif metric == "l2":
        scores = -torch.cdist(q.double(), d.double()).pow(2)
    else:
        raise InvalidInputError(f"metric must be l2 or cosine, got {metric!r}")
    top_ = scores.topk(min(k, d.shape[0]), dim=1)
    return top_.indices.numpy(), top_.values.numpy()


def run_from_scores(query_ids: list[str], doc_ids: list[str], indices: np.ndarray, scores: np.ndarray) -> dict:
    """A pytrec_eval run from :func:`rank`'s output."""
    return {
        qid: {doc_ids[j]: float(s) for j, s in zip(row, row_scores, strict=True)}
        for qid, row, row_scores in zip(query_ids, indices, scores, strict=True)
    }


def top(run_row: dict[str, float], k: int) -> dict[str, float]:
    """The ``k`` best-scored documents of one query's run."""
    return dict(sorted(run_row.items(), key=lambda item: -item[1])[:k])


def per_query_metrics(
    run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]
) -> dict[str, dict[str, float]]:
    """nDCG@10, Recall@10/100 and MRR@10 of every judged query in ``run`` (pytrec_eval).

    MRR@10 is pytrec_eval's ``recip_rank`` over each run cut to its top 10, since trec_eval's
    ``recip_rank`` has no cutoff.
    """
    judged = {q: docs for q, docs in qrels.items() if q in run and any(g > 0 for g in docs.values())}
    if not judged:
        raise InvalidInputError("no judged query in the run")
    full = pytrec_eval.RelevanceEvaluator(judged, {"ndcg_cut.10", "recall.10", "recall.100"}).evaluate(
        {q: run[q] for q in judged}
    )
    cut = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"}).evaluate({q: top(run[q], 10) for q in judged})
    return {
        q: {
            "ndcg@10": full[q]["ndcg_cut_10"],
            "recall@10": full[q]["recall_10"],
            "recall@100": full[q]["recall_100"],
            "mrr@10": cut[q]["recip_rank"] if q in cut else 0.0,
        }
        for q in judged
    }


def mean_metrics(per_query: dict[str, dict[str, float]]) -> dict[str, float]:
    return {m: float(np.mean([row[m] for row in per_query.values()])) for m in METRICS}


def retrieval_metrics(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """Mean nDCG@10 and Recall@100 over the judged queries: the trainer's dev figures."""
    means = mean_metrics(per_query_metrics(run, qrels))
    return {"ndcg@10": means["ndcg@10"], "recall@100": means["recall@100"]}


def separation(distances: np.ndarray, relevant: np.ndarray, valid: np.ndarray | None = None) -> float:
    """(mean distance to non-relevant − mean distance to relevant) / std of all distances, one query.

    Dividing by the spread of the query's distances makes the figure scale-free, so a space whose
    distances are simply larger does not look better. NaN when a side is empty.
    """
    valid = np.ones_like(relevant, dtype=bool) if valid is None else valid
    d, rel = distances[valid], relevant[valid]
    if rel.all() or not rel.any():
        return float("nan")
    spread = d.std()
    return float((d[~rel].mean() - d[rel].mean()) / spread) if spread > 0 else float("nan")


def spearman(x, y) -> float | None:
    """Spearman's ρ, or ``None`` when undefined (fewer than 3 pairs, or a constant side)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(spearmanr(x, y).statistic)


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> list[dict]:
    """Equal-width probability bins: count, mean predicted probability, observed rate of relevance."""
    p, y = np.ravel(probabilities), np.ravel(labels).astype(float)
    index = np.minimum((p * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        mask = index == b
        rows.append(
            {
                "low": b / bins,
                "high": (b + 1) / bins,
                "count": int(mask.sum()),
                "confidence": float(p[mask].mean()) if mask.any() else None,
                "accuracy": float(y[mask].mean()) if mask.any() else None,
            }
        )
    return rows


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE: Σ_bins (n_b / N) · |mean predicted − observed rate|, over every (query, candidate) pair."""
    total = np.size(probabilities)
    return float(
        sum(
            row["count"] / total * abs(row["confidence"] - row["accuracy"])
            for row in reliability(probabilities, labels, bins)
            if row["count"]
        )
    )
