"""PNG figures of the stats and calibration reports (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    return plt


def plot_stats(vectors: np.ndarray, stats, path: str | Path, projections: int = 3, seed: int = 0) -> Path:
    """Eigen-spectrum, norm histogram over the χ(dim) density, and random 1-D projections over N(0, 1)."""
    from scipy.stats import chi, norm

    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    eig = np.asarray(stats.eigenvalues)
    axes[0].semilogy(np.arange(1, len(eig) + 1), np.maximum(eig, 1e-12), label="covariance eigenvalues")
    axes[0].axhline(1.0, color="k", linestyle="--", label="N(0, I): all 1")
    axes[0].set(
        title=f"Eigen-spectrum (effective rank / dim = {stats.effective_rank_ratio:.2f})",
        xlabel="component",
        ylabel="eigenvalue",
    )
    axes[0].legend()

    norms = np.linalg.norm(vectors, axis=1)
    axes[1].hist(norms, bins=40, density=True, alpha=0.6, label="norms")
    grid = np.linspace(min(norms.min(), chi(stats.dim).ppf(0.001)), max(norms.max(), chi(stats.dim).ppf(0.999)), 300)
    axes[1].plot(grid, chi(stats.dim).pdf(grid), "k--", label=f"χ({stats.dim})")
    axes[1].set(title="Norms", xlabel="‖x‖", ylabel="density")
    axes[1].legend()

    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((stats.dim, projections))
    directions /= np.linalg.norm(directions, axis=0)
    for i, values in enumerate((vectors @ directions).T):
        axes[2].hist(values, bins=40, density=True, alpha=0.4, label=f"projection {i + 1}")
    grid = np.linspace(-4, 4, 200)
    axes[2].plot(grid, norm.pdf(grid), "k--", label="N(0, 1)")
    axes[2].set(
        title=f"Random 1-D projections (SIGReg {stats.sigreg:.2f}, N(0, I) {stats.sigreg_reference:.2f})",
        xlabel="x · a",
        ylabel="density",
    )
    axes[2].legend()
    return _save(fig, path)


def plot_reliability(results, path: str | Path) -> Path:
    """Reliability diagram: observed relevance rate against predicted probability, one line per method."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    for result in results:
        rows = [r for r in result.reliability if r["count"]]
        if rows:
            ax.plot(
                [r["confidence"] for r in rows],
                [r["accuracy"] for r in rows],
                "o-",
                label=f"{result.method} (σ {result.sigma:.3g}, ECE {result.ece:.3f})",
            )
    ax.set(
        title="Reliability of P(relevant)",
        xlabel="predicted probability",
        ylabel="observed relevance rate",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    fig.clear()
    _pyplot().close(fig)
    return path
