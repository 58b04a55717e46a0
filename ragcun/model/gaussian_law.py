"""What the N(0, I) law of an adapted collection licenses: "closer than chance" p-values and an out-of-domain flag.

If a collection's embeddings follow N(0, I_k) and a document d is unrelated to a query q (independent
of it), then q − d ~ N(0, 2 I_k), so::

    ‖q − d‖² ~ 2 χ²_k                      (q, d ~ N(0, I_k), independent)
    ‖q − d‖² | q ~ χ²_k(nc = ‖q‖²)          (d ~ N(0, I_k), the query held fixed: noncentral χ²)

The p-value of a hit at squared distance s is the chance that an unrelated document lands at least
that close: P(‖q − d‖² ≤ s). A small p means "closer than chance". The best of n unrelated documents
is closer than s with probability 1 − (1 − p)ⁿ (Šidák), which is the figure to abstain on: when even
the nearest hit is no closer than the nearest of n random draws, nothing in the collection answers.

Under the same law ‖q‖² ~ χ²_k, so a query whose squared norm falls in either tail of χ²_k lies
outside the collection's distribution (in high dimension a Gaussian has no mass near its centre
either: the typical set is the shell ‖q‖ ≈ √k).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import chi2, ncx2


def chance_p_values(sq_distances: np.ndarray, dim: int, query_sq_norm: float | np.ndarray | None = None) -> np.ndarray:
    """P(‖q − d‖² ≤ s) for an unrelated d ~ N(0, I_dim): small means closer than chance.

    Args:
        sq_distances: squared L2 distances s (any shape).
        dim: width k of the space.
        query_sq_norm: ‖q‖², broadcastable to ``sq_distances``; given, the law is conditional on the
            query (noncentral χ²_k with noncentrality ‖q‖²), otherwise the unconditional 2 χ²_k.
    """
    s = np.asarray(sq_distances, dtype=np.float64)
    if dim <= 0:
        raise ValueError(f"dim must be positive, got {dim}")
    if query_sq_norm is None:
        return chi2.cdf(s / 2.0, dim)
    return ncx2.cdf(s, dim, np.maximum(np.asarray(query_sq_norm, dtype=np.float64), 1e-12))


def best_of_n_p_value(p_value: np.ndarray | float, n: int) -> np.ndarray:
    """Šidák: the chance that the best of ``n`` unrelated documents is at least as close, 1 − (1 − p)ⁿ."""
    p = np.clip(np.asarray(p_value, dtype=np.float64), 0.0, 1.0)
    return -np.expm1(n * np.log1p(-p)) if n > 0 else np.zeros_like(p)


def norm_tail_p_value(sq_norms: np.ndarray, dim: int) -> np.ndarray:
    """Two-sided tail probability of ‖q‖² under χ²_dim: small means the query lies outside N(0, I_dim)."""
    s = np.asarray(sq_norms, dtype=np.float64)
    return np.minimum(1.0, 2.0 * np.minimum(chi2.cdf(s, dim), chi2.sf(s, dim)))


def out_of_domain(vectors: np.ndarray, alpha: float = 0.01) -> np.ndarray:
    """True for each row whose squared norm is in a χ²_dim tail of total mass ``alpha``."""
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
    return norm_tail_p_value((vectors**2).sum(1), vectors.shape[1]) < alpha
