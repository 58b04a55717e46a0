"""The training objective: contrastive InfoNCE on −‖q − d‖² plus λ · SIGReg, plus an optional JEPA term.

For a batch of B queries q_i with positives d_i (and optional hard negatives n_j)::

    logits_ij = −‖q_i − c_j‖² / τ,        c = [d_1 … d_B, n_1 … n_H]
    L_nce     = −(1/B) Σ_i log softmax_j(logits_i)_i
    L_sigreg  = SIGReg(z)                 z: the view(s) chosen by ``sigreg_on``
    L_jepa    = (1/B) Σ_i ‖P(q_i) − sg(d_i)‖² / D      (P: a linear predictor; only if jepa_weight > 0)
    L_distill = (1/M) Σ_i KL(softmax_j(cos(x_i, x_j) / τ_t) ‖ softmax_j(−‖z_i − z_j‖² / τ_s)),  j ≠ i
    L         = L_nce + λ · L_sigreg + w_jepa · L_jepa + w_distill · L_distill

Columns that are another positive of query i (same document, or same query text) are masked out of
its softmax, since in-batch "negatives" that are actually relevant would push apart what must stay
close. τ is learnable (as log τ) unless fixed.

L_distill keeps the base encoder's neighbourhoods (x: base embeddings, z: the head's, over the
batch's queries, documents and corpus batch): SIGReg reshapes the marginal toward N(0, I) and
InfoNCE fits the labelled pairs, while this term holds on to the zero-shot structure the base
already has. It needs the base embeddings, so only the frozen recipe uses it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ragcun.errors import InvalidInputError
from ragcun.model.sigreg import sigreg

SIGREG_VIEWS = ("both", "separate", "queries", "docs", "corpus")


def info_nce(q: Tensor, d: Tensor, temperature: Tensor, same: Tensor | None = None) -> Tensor:
    """InfoNCE with logits −‖q_i − d_j‖² / τ; the positive of row i is column i.

    Args:
        q: B × D queries.
        d: C × D candidates (C ≥ B); the first B are the positives.
        temperature: τ > 0 (scalar tensor).
        same: optional B × C bool, True where column j is also relevant to row i (masked out).
    """
    logits = -torch.cdist(q.float(), d.float()).pow(2) / temperature
    if same is not None:
        off_diagonal = same.clone()
        off_diagonal[torch.arange(q.shape[0]), torch.arange(q.shape[0])] = False
        logits = logits.masked_fill(off_diagonal, float("-inf"))
    return F.cross_entropy(logits, torch.arange(q.shape[0], device=q.device))


def neighbourhood_kl(
    teacher: Tensor, student: Tensor, teacher_temperature: float, student_temperature: Tensor
) -> Tensor:
    """Mean KL from the teacher's cosine neighbour distribution to the student's L2 one, self excluded."""
    unit = F.normalize(teacher.float(), dim=1)
    eye = torch.eye(teacher.shape[0], dtype=torch.bool, device=teacher.device)
    target = (unit @ unit.T / teacher_temperature).masked_fill(eye, float("-inf")).softmax(1)
    logits = (-torch.cdist(student.float(), student.float()).pow(2) / student_temperature).masked_fill(
        eye, float("-inf")
    )
    log_p = logits.log_softmax(1).masked_fill(eye, 0.0)
    return (target * (target.clamp_min(1e-12).log() - log_p)).sum(1).mean()


class GaussianLoss(nn.Module):
    """L_nce + λ · L_sigreg (+ w · L_jepa); ``forward`` returns every term so each can be logged.

    Args:
        dim: Embedding width.
        temperature: Initial (or fixed) τ.
        learn_temperature: Train log τ with the head.
        sigreg_on: Which embeddings SIGReg sees: ``both`` (queries and documents as one batch),
            ``separate`` (the mean of the two views' statistics), ``queries``, ``docs``, or
            ``corpus`` (a separate batch of corpus documents passed as ``corpus``).
        num_slices: Random directions per SIGReg evaluation.
        jepa_weight: Weight of the predictor term; 0 disables it (and the predictor).
        distill_weight: Weight of the neighbourhood-distillation term; 0 disables it.
        distill_temperature: Teacher temperature τ_t on the base cosine.
    """

    def __init__(
        self,
        dim: int,
        temperature: float = 1.0,
        learn_temperature: bool = True,
        sigreg_on: str = "both",
        num_slices: int = 1024,
        jepa_weight: float = 0.0,
        distill_weight: float = 0.0,
        distill_temperature: float = 0.05,
    ):
        super().__init__()
        if sigreg_on not in SIGREG_VIEWS:
            raise InvalidInputError(f"sigreg_on must be one of {', '.join(SIGREG_VIEWS)}, got {sigreg_on!r}")
        if temperature <= 0:
            raise InvalidInputError(f"temperature must be positive, got {temperature}")
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)), requires_grad=learn_temperature)
        self.sigreg_on, self.num_slices, self.jepa_weight = sigreg_on, num_slices, jepa_weight
        self.predictor = nn.Linear(dim, dim) if jepa_weight > 0 else None
        self.distill_weight, self.distill_temperature = distill_weight, distill_temperature
        # the student's temperature, on squared distances of N(0, I) vectors (≈ 2·dim apart): start at dim / 4
        self.log_distill_temperature = nn.Parameter(torch.tensor(math.log(dim / 4)), requires_grad=distill_weight > 0)

    @property
    def temperature(self) -> Tensor:
        return self.log_temperature.exp()

    def forward(
        self,
        q: Tensor,
        d: Tensor,
        negatives: Tensor | None = None,
        same: Tensor | None = None,
        corpus: Tensor | None = None,
        lam: float = 0.0,
        seed: int = 0,
        teacher: Tensor | None = None,
        student: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Terms of the loss for one batch; ``loss`` is the weighted total.

        Args:
            q, d: B × D query and positive-document embeddings.
            negatives: H × D hard negatives, candidates for every query.
            same: B × (B + H) mask of extra positives (see :func:`info_nce`).
            corpus: documents for ``sigreg_on="corpus"``.
            lam: λ for this step (the trainer may schedule it).
            seed: SIGReg's direction seed (the trainer's step).
            teacher, student: base and head embeddings of the same texts, for the distillation term.
        """
        candidates = d if negatives is None or negatives.shape[0] == 0 else torch.cat([d, negatives])
        terms = {"nce": info_nce(q, candidates, self.temperature, same)}
        choices: dict[str, Callable[[], list[Tensor]]] = {
            "both": lambda: [torch.cat([q, d])],
            "separate": lambda: [q, d],
            "queries": lambda: [q],
            "docs": lambda: [d],
            "corpus": lambda: [] if corpus is None else [corpus],
        }
        views = choices[self.sigreg_on]()
        if not views:
            raise InvalidInputError("sigreg_on='corpus' needs a corpus batch")
        terms["sigreg"] = torch.stack([sigreg(v, self.num_slices, seed) for v in views]).mean()
        loss = terms["nce"] + lam * terms["sigreg"]
        if self.predictor is not None:
            # Predict the document's embedding from the query's (LeJEPA's predictive view); stop-gradient on
            # the target so the predictor cannot win by collapsing both sides.
            terms["jepa"] = (self.predictor(q) - d.detach()).pow(2).sum(-1).mean() / q.shape[1]
            loss = loss + self.jepa_weight * terms["jepa"]
        if self.distill_weight > 0:
            if teacher is None or student is None:
                raise InvalidInputError("distill_weight > 0 needs teacher (base) and student (head) embeddings")
            terms["distill"] = neighbourhood_kl(
                teacher, student, self.distill_temperature, self.log_distill_temperature.exp()
            )
            loss = loss + self.distill_weight * terms["distill"]
        terms["temperature"] = self.temperature.detach()
        terms["loss"] = loss
        return terms
