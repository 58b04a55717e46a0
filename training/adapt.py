"""Label-free adaptation of a head to one collection, from the base embeddings of its own chunks.

Nothing here reads a query or a relevance judgement: the training set is the collection. The input
is x ∈ ℝ^{N×D}, the base encoder's pooled (pre-head, unnormalized) embeddings of the N chunks, so
adapting never runs the encoder; optional short spans of the chunks (query-like inputs), embedded
by the caller, add positives and a second isotropy view.

The recipe, in order:

1. **Spectral init.** u = x/‖x‖ (the base's cosine geometry), μ = mean(u), Σ = cov(u) = V Λ Vᵀ.
   z = s · Λ_k^{−γ/2} V_kᵀ (u − μ): centre, rotate to the top-k principal axes and scale each by
   λ^{−γ/2} (γ = 1 whitens, γ = 0 only rotates), s so that E‖z‖² = k. Training-free.
2. **Listwise neighbour distillation** (optional, ``steps > 0``): for every chunk i, its base-cosine
   top-K over the *whole* corpus; the head is trained so that its L2 neighbour distribution over
   those K plus random chunks matches the teacher's.
3. **SIGReg** on the chunks' embeddings, with random slices *and* slices along the batch's own
   principal axes (random slices barely see covariance anisotropy in high dimension).
4. **Span positives**: two spans of one chunk, or span → chunk, by InfoNCE on −‖a − b‖².
5. **Query map** (``queries="rotate"``): queries are rotated into the same top-k axes, centred on the
   mean of the query-like spans (the chunks' mean without spans), and *not* rescaled: the documents
   carry the whole λ^(−γ/2), so a query–document cosine is rescaled once, not twice (measured: the
   symmetric map loses 0.03 nDCG@10 on Cranfield and SciFact, this one none; benchmarks/adapt.py).

:func:`fit` returns the head (:mod:`ragcun.model.head` kind ``unit-linear-unit-query``: Normalize, one
Linear, then the sphere of radius √k, and the query map onto the same sphere; ``unit-linear-unit``
without the query map, ``unit-linear`` without the sphere either) and a dict of metrics for
``training_run.json``; :func:`acceptance_gate` decides, from the
collection alone, whether the fitted head may replace the current one.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ragcun.evaluation.isotropy import isotropy
from ragcun.model.head import HeadSpec, QueryMapHead, build_head, query_map
from ragcun.model.sigreg import epps_pulley, sigreg

logger = logging.getLogger(__name__)


@dataclass
class AdaptConfig:
    """Every knob of :func:`fit`; defaults are the measured recipe (see ``benchmarks/adapt.py``).

    Args:
        out_dim: Width of the Gaussian space, at most the base width and half the chunk count; the
            top principal axes are kept.
            ``None``: the participation ratio of the chunks' base (unit) embeddings' spectrum, i.e. as
            many axes as the collection really uses.
        gamma: Partial spectral scaling exponent: each axis is scaled by λ^(−γ/2). ``None``: the
            smallest γ whose output has effective rank / width ``target_effective_rank``.
        target_effective_rank: The isotropy the automatic γ buys, and no more (more γ costs quality).
        sphere: Put the output on the sphere of radius √k (head ``unit-linear-unit``), where
            N(0, I_k) concentrates; L2 then ranks by the cosine of the rescaled space.
        queries: ``"rotate"``: queries get their own map (head ``unit-linear-unit-query``, needs
            ``sphere``): the top-k axes without rescaling, centred on the spans' mean. ``"same"``:
            queries take the documents' map.
        steps: Optimiser steps of the trained stage; 0 keeps the training-free spectral map.
        batch_size: Anchor chunks per step.
        neighbours: K, the base-cosine neighbours per chunk over the whole corpus (the teacher's list).
        random_candidates: Random chunks added to every anchor's candidate list.
        teacher_temperature: τ_t of the teacher's softmax over cosines.
        distill_weight: w_d of the listwise distillation term.
        sigreg_weight: λ of SIGReg on the chunks' embeddings.
        random_slices / principal_slices: SIGReg directions per step, random and along principal axes.
        span_weight: w_s of the span-positive InfoNCE (needs spans).
        span_temperature: τ of that InfoNCE, in units of the width (logits −‖a − b‖² / (τ · k)).
        lr: AdamW learning rate.
        seed: Every random draw (candidates, slices, batches).
    """

    out_dim: int | None = 192
    gamma: float | None = None
    target_effective_rank: float = 0.93
    sphere: bool = True
    queries: str = "rotate"
    steps: int = 0
    batch_size: int = 512
    neighbours: int = 32
    random_candidates: int = 64
    teacher_temperature: float = 0.05
    distill_weight: float = 1.0
    sigreg_weight: float = 1.0
    random_slices: int = 256
    principal_slices: int = 64
    span_weight: float = 0.0
    span_temperature: float = 0.05
    lr: float = 1e-3
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def unit(x: Tensor) -> Tensor:
    return F.normalize(x.double(), dim=1)


def spectral_effective_rank(eigenvalues: Tensor) -> float:
    """exp(entropy) of the normalised spectrum: the effective rank of a covariance with these eigenvalues."""
    p = eigenvalues.clamp_min(0) / eigenvalues.clamp_min(0).sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def participation_ratio(eigenvalues: Tensor) -> float:
    """(Σλ)² / Σλ²: how many axes carry the variance, counting the dominant ones (≤ the entropy rank)."""
    return float(eigenvalues.sum() ** 2 / (eigenvalues**2).sum())


def solve_gamma(eigenvalues: Tensor, target: float) -> float:
    """Smallest γ ∈ [0, 1] with effective rank(λ^(1−γ)) / k ≥ ``target`` (bisection; rank rises with γ)."""
    k = len(eigenvalues)
    if spectral_effective_rank(eigenvalues) / k >= target:
        return 0.0
    low, high = 0.0, 1.0
    for _ in range(30):
        mid = (low + high) / 2
        low, high = (low, mid) if spectral_effective_rank(eigenvalues ** (1 - mid)) / k >= target else (mid, high)
    return high


def spectrum(u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Mean, and eigenvalues (descending) and eigenvectors (columns) of the covariance of the rows of ``u``."""
    mean = u.mean(0)
    eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov((u - mean).T))
    order = eigenvalues.argsort(descending=True)
    return mean, eigenvalues[order].clamp_min(1e-12), eigenvectors[:, order]


def spectral_map(
    u: Tensor, out_dim: int | None, gamma: float | None, target: float = 0.91
) -> tuple[Tensor, Tensor, dict]:
    """Weight W (k × D) and bias b of z = W u + b = s · Λ_k^{−γ/2} V_kᵀ (u − μ), and the k and γ chosen.

    μ, V, Λ: mean, eigenvectors and eigenvalues of cov(u); s makes E‖z‖² = k so that z has unit
    variance on average whatever γ (γ = 1: PCA whitening, cov(z) = I_k). ``out_dim=None`` takes k =
    the effective rank of cov(u); ``gamma=None`` the smallest γ reaching ``target`` effective rank / k.
    """
    mean, eigenvalues, eigenvectors = spectrum(u)
    if out_dim is None:
        out_dim = max(2, round(participation_ratio(eigenvalues)))
    # An axis estimated from fewer than two rows per dimension is noise that γ would then amplify
    # (ADI, 82 chunks: k 81 loses to base cosine, k 41 beats it by 0.07).
    out_dim = max(1, min(out_dim, len(eigenvalues), u.shape[0] // 2))
    lam, v = eigenvalues[:out_dim], eigenvectors[:, :out_dim]
    if gamma is None:
        gamma = solve_gamma(lam, target)
    scaled = lam ** (1.0 - gamma)  # variance of each axis after scaling by λ^(−γ/2)
    s = math.sqrt(out_dim / float(scaled.sum()))
    weight = s * (lam ** (-gamma / 2)).unsqueeze(1) * v.T
    return weight, -weight @ mean, {"out_dim": out_dim, "gamma": gamma}


def query_rotation(u: Tensor, out_dim: int, centre: Tensor) -> tuple[Tensor, Tensor]:
    """Weight and bias of the query map V_kᵀ (u − c): the documents' top-k axes, unscaled, centred on ``centre``.

    On the √k sphere only a query's direction counts, so no scale is needed; the documents' map
    already holds the whole spectral rescaling.
    """
    _, _, eigenvectors = spectrum(u)
    weight = eigenvectors[:, :out_dim].T
    return weight, -weight @ centre


def teacher_neighbours(u: Tensor, k: int, block: int = 2048) -> tuple[Tensor, Tensor]:
    """Each row's top-``k`` cosine neighbours over all rows (itself excluded): indices and cosines."""
    k = min(k, u.shape[0] - 1)
    u32 = u.float()
    indices, values = [], []
    for start in range(0, u.shape[0], block):
        scores = u32[start : start + block] @ u32.T
        rows = torch.arange(start, min(start + block, u.shape[0]))
        scores[rows - start, rows] = -float("inf")
        top = scores.topk(k, dim=1)
        indices.append(top.indices)
        values.append(top.values)
    return torch.cat(indices), torch.cat(values)


def listwise_distillation(
    z_anchor: Tensor, z_candidates: Tensor, teacher_logits: Tensor, student_temperature: Tensor
) -> Tensor:
    """KL(p_t ‖ p_s) over each anchor's candidate list, averaged over anchors.

    p_t = softmax_j(cos(u_i, u_j) / τ_t) over candidates j (its K base neighbours plus random
    chunks); p_s = softmax_j(−‖z_i − z_j‖² / τ_s). z_anchor: B × k, z_candidates: B × C × k.
    """
    sq = (z_anchor.unsqueeze(1) - z_candidates).pow(2).sum(-1)
    log_student = (-sq / student_temperature).log_softmax(1)
    log_teacher = teacher_logits.log_softmax(1)
    return (log_teacher.exp() * (log_teacher - log_student)).sum(1).mean()


def sliced_sigreg(z: Tensor, random_slices: int, principal_slices: int, seed: int) -> tuple[Tensor, Tensor]:
    """(SIGReg over random unit directions, Epps–Pulley mean over the batch's top principal axes).

    Random slices test the marginal shape; along a principal axis v the projection's variance is the
    eigenvalue, so EP(z v) is large whenever the spectrum is not flat: it sees anisotropy that random
    directions average away. The axes are taken from the detached batch covariance.
    """
    rand = sigreg(z, random_slices, seed, all_reduce=False) if random_slices else z.new_zeros(())
    if not principal_slices:
        return rand, z.new_zeros(())
    with torch.no_grad():
        _, vectors = torch.linalg.eigh(torch.cov(z.detach().double().T))
        axes = torch.cat([vectors[:, -principal_slices:], vectors[:, :principal_slices]], 1).to(z.dtype)
    return rand, epps_pulley(z @ axes, all_reduce=False).mean()


def span_nce(z_a: Tensor, z_b: Tensor, temperature: float) -> Tensor:
    """InfoNCE of row i of ``z_a`` against row i of ``z_b`` (in-batch negatives), logits −‖a − b‖² / (τ · k)."""
    logits = -torch.cdist(z_a, z_b).pow(2) / (temperature * z_a.shape[1])
    return F.cross_entropy(logits, torch.arange(z_a.shape[0]))


def head_for(
    weight: Tensor, bias: Tensor, sphere: bool, query: tuple[Tensor, Tensor] | None = None
) -> tuple[HeadSpec, torch.nn.Sequential]:
    """The head of z = W u + b (on the √k sphere if ``sphere``); ``query`` = (W_q, b_q): its query map."""
    kind = ("unit-linear-unit-query" if query is not None else "unit-linear-unit") if sphere else "unit-linear"
    spec = HeadSpec(kind=kind, in_dim=weight.shape[1], out_dim=weight.shape[0])
    head = build_head(spec)
    linear = head[1]
    assert isinstance(linear, torch.nn.Linear)  # unit-linear heads: Normalize, Linear[, sphere]
    with torch.no_grad():
        linear.weight.copy_(weight.float())
        linear.bias.copy_(bias.float())
        if isinstance(head, QueryMapHead) and query is not None:
            head.query_weight.copy_(query[0].float())
            head.query_bias.copy_(query[1].float())
    return spec, head.eval()


@torch.no_grad()
def apply_head(head: Callable[[Tensor], Tensor], x: np.ndarray | Tensor, batch: int = 8192) -> np.ndarray:
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    return torch.cat([head(x[i : i + batch]) for i in range(0, len(x), batch)]).numpy()


def fit(
    x: np.ndarray,
    config: AdaptConfig | None = None,
    spans: np.ndarray | None = None,
    span_chunk: np.ndarray | None = None,
) -> tuple[HeadSpec, torch.nn.Sequential, dict]:
    """Fit a head to a collection from its chunks' base embeddings ``x`` (N × D), with no labels.

    Args:
        x: Base (pre-head, unnormalized) embeddings of the collection's chunks.
        config: The recipe (``None``: the measured defaults of :class:`AdaptConfig`).
        spans: Optional base embeddings of short spans of the chunks (query-like inputs).
        span_chunk: For each span row, the index of its chunk in ``x``.

    Returns:
        (head spec, head in eval mode, metrics: config, per-step log of every term, isotropy of the
        chunks' and spans' embeddings, wall time).
    """
    config = config or AdaptConfig()
    if config.queries not in ("rotate", "same"):
        raise ValueError(f"queries must be 'rotate' or 'same', got {config.queries!r}")
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(config.seed)
    u = unit(torch.as_tensor(np.asarray(x)))
    weight, bias, chosen = spectral_map(u, config.out_dim, config.gamma, config.target_effective_rank)
    out_dim = chosen["out_dim"]
    log: list[dict] = []
    if config.steps > 0:
        weight, bias, log = _train(u, weight, bias, config, generator, spans, span_chunk)
    query = None
    if config.queries == "rotate" and config.sphere:
        has_spans = spans is not None and len(spans) > 1
        centre = unit(torch.as_tensor(np.asarray(spans))).mean(0) if has_spans else u.mean(0)
        query = query_rotation(u, out_dim, centre)
        chosen["query_centre"] = "spans" if has_spans else "chunks"
    spec, head = head_for(weight, bias, config.sphere, query)
    z = apply_head(head, x)
    metrics = {
        "config": config.to_dict(),
        "chunks": len(x),
        **chosen,
        "log": log,
        "chunks_isotropy": isotropy_figures(z),
    }
    if spans is not None and len(spans) > 1:
        # spans stand for queries: they go through the query map
        metrics["spans_isotropy"] = isotropy_figures(apply_head(query_map(head), spans))
    metrics["seconds"] = time.perf_counter() - started
    logger.info(
        "adapted a %d-d head on %d chunks in %.1f s: %s",
        out_dim,
        len(x),
        metrics["seconds"],
        metrics["chunks_isotropy"],
    )
    return spec, head, metrics


def isotropy_figures(z: np.ndarray) -> dict[str, float]:
    """Effective rank / width, mean SIGReg (10 subsets of 1,024) and mean squared norm / width."""
    return {**isotropy(z), "sq_norm_per_dim": float((np.asarray(z, dtype=np.float64) ** 2).sum(1).mean() / z.shape[1])}


def _train(
    u: Tensor,
    weight: Tensor,
    bias: Tensor,
    config: AdaptConfig,
    generator: torch.Generator,
    spans: np.ndarray | None,
    span_chunk: np.ndarray | None,
) -> tuple[Tensor, Tensor, list[dict]]:
    """The trained stage: L = w_d · L_distill + λ · (SIGReg_random + SIGReg_principal)/2 + w_s · L_span.

    It trains the Linear before any final sphere projection (unmeasured for quality so far: see
    benchmarks/adapt.py and the phase-1 notes; the default recipe has ``steps = 0``).
    """
    n = u.shape[0]
    neighbours, _cosines = teacher_neighbours(u, config.neighbours)
    u32 = u.float()
    lin = torch.nn.Linear(weight.shape[1], weight.shape[0]).float()
    with torch.no_grad():
        lin.weight.copy_(weight.float())
        lin.bias.copy_(bias.float())
    k = weight.shape[0]
    # the student's temperature, on squared distances of N(0, I_k) points (≈ 2k apart): start at k / 4
    log_tau = torch.nn.Parameter(torch.tensor(math.log(k / 4)))
    optimizer = torch.optim.AdamW([*lin.parameters(), log_tau], lr=config.lr, weight_decay=0.0)
    span_u = unit(torch.as_tensor(np.asarray(spans))).float() if spans is not None and config.span_weight > 0 else None
    span_chunk_t = torch.as_tensor(np.asarray(span_chunk)) if span_u is not None else None
    log = []
    for step in range(config.steps):
        anchors = torch.randint(n, (min(config.batch_size, n),), generator=generator)
        randoms = torch.randint(n, (len(anchors), config.random_candidates), generator=generator)
        candidates = torch.cat([neighbours[anchors], randoms], 1)
        teacher = (u32[anchors].unsqueeze(1) * u32[candidates]).sum(-1) / config.teacher_temperature
        z_anchor = lin(u32[anchors])
        terms = {"distill": listwise_distillation(z_anchor, lin(u32[candidates]), teacher, log_tau.exp())}
        terms["sigreg_random"], terms["sigreg_principal"] = sliced_sigreg(
            z_anchor, config.random_slices, config.principal_slices, config.seed * 100_003 + step
        )
        loss = (
            config.distill_weight * terms["distill"]
            + config.sigreg_weight * (terms["sigreg_random"] + terms["sigreg_principal"]) / 2
        )
        if span_u is not None and span_chunk_t is not None:
            rows = torch.randint(len(span_u), (min(config.batch_size, len(span_u)),), generator=generator)
            terms["span"] = span_nce(lin(span_u[rows]), lin(u32[span_chunk_t[rows]]), config.span_temperature)
            loss = loss + config.span_weight * terms["span"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 25 == 0 or step == config.steps - 1:
            entry = {
                "step": step,
                "loss": float(loss.detach()),
                "student_temperature": float(log_tau.detach().exp()),
                **{name: float(value.detach()) for name, value in terms.items()},
            }
            log.append(entry)
            logger.info("adapt step %d: %s", step, entry)
    return lin.weight.detach().double(), lin.bias.detach().double(), log


@dataclass
class GateResult:
    """The acceptance gate's verdict: ``passed``, one-line ``reason``, and the figures behind it."""

    passed: bool
    reason: str
    candidate: dict
    current: dict

    def to_dict(self) -> dict:
        return asdict(self)


def _neighbours(queries: Tensor, corpus: Tensor, k: int, exclude: Tensor | None) -> Tensor:
    """Top-``k`` corpus rows by L2 for each query row; ``exclude[i]`` (a corpus row) is never returned."""
    sq = torch.cdist(queries.double(), corpus.double()).pow(2)
    if exclude is not None:
        sq[torch.arange(len(queries)), exclude] = float("inf")
    return sq.topk(min(k, corpus.shape[0] - 1), dim=1, largest=False).indices


def gate_figures(
    x: np.ndarray,
    head: torch.nn.Module | None,
    spans: np.ndarray | None = None,
    span_chunk: np.ndarray | None = None,
    sample: int = 1000,
    k: int = 10,
    seed: int = 0,
) -> dict:
    """Label-free figures of one head on a collection (``head=None``: the base by cosine).

    ``agreement@k``: over ``sample`` random chunks, the share of their k base-cosine neighbours that
    are also among their k neighbours under the head (L2), self excluded: 1.0 for the base itself.
    ``span@1`` / ``span@10``: the share of spans whose own chunk is the nearest / among the 10 nearest
    (spans stand for queries, so they take the head's query map).
    """
    generator = torch.Generator().manual_seed(seed)
    space = (
        (lambda a: unit(torch.as_tensor(np.asarray(a))))
        if head is None
        else (lambda a: torch.as_tensor(apply_head(head, a), dtype=torch.float64))
    )
    query_space = (
        space if head is None else (lambda a: torch.as_tensor(apply_head(query_map(head), a), dtype=torch.float64))
    )
    z = space(x)
    rows = torch.randperm(len(x), generator=generator)[:sample]
    base = unit(torch.as_tensor(np.asarray(x)))
    teacher = _neighbours(base[rows], base, k, rows)
    student = _neighbours(z[rows], z, k, rows)
    agreement = np.mean([len(set(t.tolist()) & set(s.tolist())) / k for t, s in zip(teacher, student, strict=False)])
    figures = {f"agreement@{k}": float(agreement)}
    if spans is not None and len(spans):
        pick = torch.randperm(len(spans), generator=generator)[:sample]
        found = _neighbours(query_space(np.asarray(spans)[pick.numpy()]), z, 10, None)
        truth = torch.as_tensor(np.asarray(span_chunk))[pick].unsqueeze(1)
        figures["span@1"] = float((found[:, :1] == truth).any(1).double().mean())
        figures["span@10"] = float((found == truth).any(1).double().mean())
    return figures


def acceptance_gate(
    x: np.ndarray,
    candidate: torch.nn.Module,
    current: torch.nn.Module | None = None,
    spans: np.ndarray | None = None,
    span_chunk: np.ndarray | None = None,
    *,
    tolerance: float = 0.02,
    min_agreement: float = 0.5,
    sample: int = 1000,
    seed: int = 0,
) -> GateResult:
    """May ``candidate`` replace ``current`` on this collection? Computed from the collection alone.

    Passes when the candidate's agreement@10 with base-cosine neighbours is at least the current
    version's minus ``tolerance`` and at least ``min_agreement``, and its span@10 (when spans are
    given) is at least the current version's minus ``tolerance``. ``current=None`` compares with the
    base by cosine (agreement 1.0 by definition, so only ``min_agreement`` binds there).
    """
    cand = gate_figures(x, candidate, spans, span_chunk, sample, seed=seed)
    cur = gate_figures(x, current, spans, span_chunk, sample, seed=seed)
    reasons = []
    need = max(min_agreement, cur["agreement@10"] - tolerance) if current is not None else min_agreement
    if cand["agreement@10"] < need:
        reasons.append(f"agreement@10 with base-cosine neighbours {cand['agreement@10']:.3f} < {need:.3f}")
    if "span@10" in cand and cand["span@10"] < cur["span@10"] - tolerance:
        reasons.append(f"span@10 {cand['span@10']:.3f} < current {cur['span@10']:.3f} − {tolerance}")
    passed = not reasons
    reason = (
        "; ".join(reasons)
        if reasons
        else (
            f"agreement@10 {cand['agreement@10']:.3f}"
            + (f", span@10 {cand['span@10']:.3f}" if "span@10" in cand else "")
            + f" against current {cur['agreement@10']:.3f}"
            + (f", {cur['span@10']:.3f}" if "span@10" in cur else "")
        )
    )
    return GateResult(passed, reason, cand, cur)
