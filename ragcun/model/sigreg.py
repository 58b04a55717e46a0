"""SIGReg (LeJEPA, Balestriero & LeCun 2025): how far a batch of embeddings is from N(0, I).

Epps–Pulley statistic of one column x₁…x_N against N(0, 1)::

    EP(x) = N · ∫ |φ̂_N(t) − φ(t)|² φ(t) dt,   φ̂_N(t) = (1/N) Σ_n exp(i t x_n),   φ(t) = exp(−t²/2)

with |φ̂_N − φ|² = (mean cos(t x) − φ(t))² + (mean sin(t x))². The integrand is even in t, so the
integral over ℝ is twice the one over [0, ∞); it is truncated to [0, 3] (φ(3)² ≈ 1e-4) and taken by
the trapezoid rule on 17 points. For x ~ N(0, 1), N · E|φ̂_N − φ|² = 1 − φ(t)², so E[EP] ≈ 1.05 for
any N; a constant column gives N · ∫(1 − φ)² φ, which grows linearly with N.

SIGReg projects a batch x ∈ ℝ^{N×D} on M random unit directions a_m and averages EP(x a_m): by
Cramér–Wold, every 1-D projection of N(0, I) is N(0, 1), so the average is small only for an
isotropic standard Gaussian.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from ragcun.errors import InvalidInputError

T_MAX = 3.0
T_POINTS = 17


def _nodes(dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """The t grid, φ(t), and trapezoid weights on [0, T_MAX] times φ(t), doubled for t < 0."""
    t = torch.linspace(0.0, T_MAX, T_POINTS, dtype=dtype, device=device)
    phi = torch.exp(-0.5 * t * t)
    dt = T_MAX / (T_POINTS - 1)
    trapezoid = torch.full_like(t, dt)
    trapezoid[0] = trapezoid[-1] = dt / 2
    return t, phi, 2.0 * trapezoid * phi


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def epps_pulley(x: Tensor, *, all_reduce: bool = True) -> Tensor:
    """Epps–Pulley statistic of each column of ``x`` (N × K) against N(0, 1); returns shape (K,).

    Precision: half-precision inputs (bf16/fp16 under autocast) are computed in float32, because
    cos/sin of t·x and the mean over N lose the small differences the statistic measures; float64
    inputs stay float64 so ``torch.autograd.gradcheck`` can check the gradient, which would be
    meaningless through a float32 round trip. So: "at least float32", never lower.

    Under ``torch.distributed`` (more than one rank) the characteristic-function sums and N are
    all-reduced with a differentiable all-reduce, so every rank gets the statistic of the full,
    concatenated batch. ``all_reduce=False`` keeps it local (evaluation on one rank).
    """
    if x.ndim != 2:
        raise InvalidInputError(f"epps_pulley expects an (N, K) matrix, got shape {tuple(x.shape)}")
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    x = x.to(dtype)
    t, phi, weights = _nodes(dtype, x.device)
    xt = x.unsqueeze(-1) * t  # N × K × T
    sums = torch.stack([torch.cos(xt).sum(0), torch.sin(xt).sum(0)])  # 2 × K × T
    n = torch.tensor(float(x.shape[0]), dtype=dtype, device=x.device)
    if all_reduce and _distributed():
        from torch.distributed.nn.functional import all_reduce as differentiable_all_reduce

        sums = differentiable_all_reduce(sums)
        n = n.clone()
        dist.all_reduce(n)
    cos_mean, sin_mean = sums / n
    error = (cos_mean - phi) ** 2 + sin_mean**2  # K × T
    return n * (error @ weights)


def random_directions(dim: int, num_slices: int, seed: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``num_slices`` unit vectors in ℝ^dim (as columns), drawn on the CPU so every device and rank agrees."""
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(dim, num_slices, generator=generator, dtype=torch.float64)
    directions = directions / directions.norm(dim=0, keepdim=True)
    return directions.to(dtype=dtype, device=device)


def sigreg(x: Tensor, num_slices: int = 1024, seed: int = 0, *, all_reduce: bool = True) -> Tensor:
    """SIGReg of a batch ``x`` (N × D): mean over slices of ``epps_pulley(x @ a_m)``, a scalar.

    The directions come from a generator seeded by ``seed``: the trainer passes its step, so they
    change every step (over training, every direction gets tested) yet a run is reproducible.
    """
    if x.ndim != 2:
        raise InvalidInputError(f"sigreg expects an (N, D) matrix, got shape {tuple(x.shape)}")
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    x = x.to(dtype)
    directions = random_directions(x.shape[1], num_slices, seed, dtype, x.device)
    return epps_pulley(x @ directions, all_reduce=all_reduce).mean()
