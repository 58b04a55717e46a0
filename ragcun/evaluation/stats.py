"""``ragcun stats``: how close a collection's vectors are to the N(0, I) they are trained towards.

Every figure is shown next to what an N(0, I) sample of the same size and width would give, so a
reader does not need to know the reference values by heart.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.stats import chi

from ragcun.evaluation.corpus import load_points
from ragcun.evaluation.data import EvaluationError
from ragcun.evaluation.isotropy import effective_rank, mean_sigreg
from ragcun.workspace import Workspace

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
SIGREG_SUBSETS, SIGREG_SIZE = 10, 1024
# The LID estimate falls as the sample grows, so it is always taken on a subset of one bounded size
# and compared with N(0, I) at that same size.
LID_NEIGHBOURS, LID_SIZE, LID_QUERIES = 20, 10_000, 500


@dataclass
class CollectionStats:
    collection: str
    count: int
    dim: int
    norm: dict  # mean, std, quantiles of the vectors' norms, and the same for χ(dim)
    per_dim_mean: list[float]
    per_dim_var: list[float]
    per_dim_summary: dict
    eigenvalues: list[float]  # of the covariance, descending; N(0, I) has all of them ≈ 1
    effective_rank_ratio: float
    sigreg: float
    sigreg_reference: float  # the same statistic on an N(0, I) sample of the same shape (≈ 1.05)
    local_intrinsic_dim: float | None  # what a graph index (HNSW) sees; None below 3 points
    local_intrinsic_dim_reference: float | None  # the same on an N(0, I) sample of the same shape
    # (count - 1) / dim when there are fewer points than dimensions: the most the effective rank ratio can be
    effective_rank_cap: float | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def local_intrinsic_dim(distances: np.ndarray) -> float | None:
    """Median maximum-likelihood local intrinsic dimension (Levina and Bickel 2004).

    ``distances``: each query's squared L2 distances to its k nearest neighbours (itself
    excluded), ascending. Per query, with r_j the distance to the j-th neighbour,
    ``LID = -1 / mean_{j<k} log(r_j / r_k)``. It is how many dimensions the data around a query
    really spans: globally isotropic vectors can still lie near low-dimensional patches, and the
    local figure is what decides how wide an HNSW search must be. None when no query has a spread.
    """
    r = np.sqrt(np.maximum(np.asarray(distances, dtype=np.float64), 1e-24))
    with np.errstate(divide="ignore"):
        estimates = -1.0 / np.mean(np.log(r[:, :-1] / r[:, -1:]), axis=1)
    # A query whose k neighbours are all duplicates of one point has no defined spread.
    estimates = estimates[np.isfinite(estimates)]
    return float(np.median(estimates)) if len(estimates) else None


def sample_lid(x: np.ndarray, seed: int = 0) -> float | None:
    """:func:`local_intrinsic_dim` of a random subset of ``x``'s rows, by exact leave-one-out kNN."""
    rng = np.random.default_rng(seed)
    x = x[rng.permutation(len(x))[:LID_SIZE]]
    k = min(LID_NEIGHBOURS, len(x) - 1)
    if k < 2:
        return None
    base = torch.as_tensor(x, dtype=torch.float64)
    queries = base[:LID_QUERIES]
    distances = torch.cdist(queries, base).square()
    distances[torch.arange(len(queries)), torch.arange(len(queries))] = float("inf")  # not its own neighbour
    return local_intrinsic_dim(distances.topk(k, largest=False).values.numpy())


def vector_stats(name: str, x: np.ndarray, seed: int = 0) -> CollectionStats:
    """The isotropy figures of the rows of ``x`` (count × dim)."""
    count, dim = x.shape
    if count < 2:
        raise EvaluationError(
            f"collection {name!r} has {count} point(s); stats need at least 2 "
            "(a covariance and a spread are undefined below that)"
        )
    x = x.astype(np.float64)
    norms = np.linalg.norm(x, axis=1)
    reference = chi(dim)
    mean, var = x.mean(axis=0), x.var(axis=0, ddof=1)
    eigenvalues = np.sort(np.linalg.eigvalsh(np.cov(x.T)))[::-1].clip(min=0)
    gaussian = torch.randn(min(count, SIGREG_SIZE), dim, generator=torch.Generator().manual_seed(seed))
    # n centred points span at most n - 1 dimensions, whatever their distribution.
    cap = (count - 1) / dim if count <= dim else None
    warnings = (
        []
        if cap is None
        else [
            (
                f"{count} points in {dim} dimensions: the effective rank / dim cannot exceed "
                f"(points - 1) / dim = {cap:.3f}, "
                "so it says little about isotropy until the collection holds more points than dimensions"
            )
        ]
    )
    return CollectionStats(
        collection=name,
        count=count,
        dim=dim,
        norm={
            "mean": float(norms.mean()),
            "std": float(norms.std(ddof=1)),
            "quantiles": {str(q): float(np.quantile(norms, q)) for q in QUANTILES},
            "chi": {
                "mean": float(reference.mean()),
                "std": float(reference.std()),
                "quantiles": {str(q): float(reference.ppf(q)) for q in QUANTILES},
            },
        },
        per_dim_mean=mean.tolist(),
        per_dim_var=var.tolist(),
        per_dim_summary={
            "mean_abs_mean": float(np.abs(mean).mean()),
            "max_abs_mean": float(np.abs(mean).max()),
            "var_min": float(var.min()),
            "var_median": float(np.median(var)),
            "var_max": float(var.max()),
        },
        eigenvalues=eigenvalues.tolist(),
        effective_rank_ratio=effective_rank(x) / dim,
        sigreg=mean_sigreg(x, subsets=SIGREG_SUBSETS, size=SIGREG_SIZE, seed=seed),
        sigreg_reference=mean_sigreg(gaussian, subsets=SIGREG_SUBSETS, size=SIGREG_SIZE, seed=seed),
        local_intrinsic_dim=sample_lid(x, seed=seed),
        local_intrinsic_dim_reference=sample_lid(
            np.random.default_rng(seed).standard_normal((min(count, LID_SIZE), dim)), seed=seed
        ),
        effective_rank_cap=cap,
        warnings=warnings,
    )


def collection_stats(
    ws: Workspace, collection_name: str, plot: str | Path | None = None, seed: int = 0
) -> CollectionStats:
    """:func:`vector_stats` of a collection's stored vectors; with ``plot``, also write the PNG there."""
    points = load_points(ws, collection_name)
    stats = vector_stats(collection_name, points.vectors, seed=seed)
    if plot is not None:
        from ragcun.evaluation.plots import plot_stats

        plot_stats(points.vectors, stats, plot, seed=seed)
    return stats
