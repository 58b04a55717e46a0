"""Retrieval and isotropy metrics shared by the trainer's dev monitoring and ``benchmarks/quality.py``."""

from __future__ import annotations

import numpy as np
import pytrec_eval
import torch

from training.sigreg import sigreg


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
        raise ValueError(f"metric must be l2 or cosine, got {metric!r}")
    top = scores.topk(min(k, d.shape[0]), dim=1)
    return top.indices.numpy(), top.values.numpy()


def run_from_scores(query_ids: list[str], doc_ids: list[str], indices: np.ndarray, scores: np.ndarray) -> dict:
    return {qid: {doc_ids[j]: float(s) for j, s in zip(row, row_scores)}
            for qid, row, row_scores in zip(query_ids, indices, scores)}


def retrieval_metrics(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """Mean nDCG@10 and Recall@100 over the queries that have relevance judgements (pytrec_eval)."""
    qrels = {q: docs for q, docs in qrels.items() if q in run and any(g > 0 for g in docs.values())}
    if not qrels:
        raise ValueError("no judged query in the run")
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"}).evaluate(
        {q: run[q] for q in qrels})
    return {
        "ndcg@10": float(np.mean([m["ndcg_cut_10"] for m in per_query.values()])),
        "recall@100": float(np.mean([m["recall_100"] for m in per_query.values()])),
    }


def effective_rank(x: np.ndarray | torch.Tensor) -> float:
    """exp(entropy) of the normalized covariance eigenvalues: D for a perfectly isotropic cloud, 1 for a line."""
    x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    eigenvalues = torch.linalg.eigvalsh(torch.cov(x.T)).clamp_min(0)
    p = eigenvalues / eigenvalues.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def mean_sigreg(x: np.ndarray | torch.Tensor, subsets: int = 10, size: int = 1024, seed: int = 0) -> float:
    """Mean SIGReg over ``subsets`` random subsets of ``size`` vectors (all of them when fewer)."""
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    values = []
    for i in range(subsets):
        rows = torch.randperm(x.shape[0], generator=generator)[:size]
        values.append(float(sigreg(x[rows], seed=seed + i, all_reduce=False)))
    return float(np.mean(values))


def isotropy(x: np.ndarray | torch.Tensor, seed: int = 0) -> dict[str, float]:
    """The two isotropy figures reported together: mean SIGReg, and effective rank as a share of the width."""
    return {"sigreg": mean_sigreg(x, seed=seed), "effective_rank": effective_rank(x) / np.asarray(x).shape[1]}
