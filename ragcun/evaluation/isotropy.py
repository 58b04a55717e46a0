"""How isotropic a cloud of vectors is: effective rank and mean SIGReg, for ``ragcun stats`` and the trainer."""

from __future__ import annotations

import numpy as np
import torch

from ragcun.model.sigreg import sigreg


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
