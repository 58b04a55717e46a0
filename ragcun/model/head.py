"""Projection heads that map base-encoder embeddings to the Gaussian space.

A head is a plain ``nn.Sequential`` of ``nn.Linear`` layers (and one GELU for ``mlp``, one
parameter-free :class:`UnitNormalize` first for ``unit-linear``), so its state dict keys are
``"0.weight"``, ``"0.bias"``, ``"2.weight"``… and each Linear maps one-to-one onto a
sentence-transformers ``Dense`` module on export (``UnitNormalize`` onto ``Normalize``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ragcun.errors import InvalidInputError

HEAD_KINDS = ("identity", "linear", "mlp", "unit-linear", "unit-linear-unit", "unit-linear-unit-query")
# Kinds that map a query through its own affine map (:class:`QueryMapHead`): documents and queries differ.
QUERY_MAP_KINDS = ("unit-linear-unit-query",)


@dataclass(frozen=True)
class HeadSpec:
    """Shape of a projection head.

    Args:
        kind: ``identity`` (no parameters), ``linear`` (one affine map), ``mlp``
            (Linear → GELU → Linear) or ``unit-linear`` (x / ‖x‖, then one affine map: the base's
            cosine geometry, reshaped) or ``unit-linear-unit`` (the same, its output then put on the
            sphere of radius √out_dim, where N(0, I_out_dim) concentrates) or ``unit-linear-unit-query``
            (documents as ``unit-linear-unit``, queries through a second affine map onto the same
            sphere: what ``ragcun adapt`` fits, see :class:`QueryMapHead`).
        in_dim: Width of the base encoder's pooled embedding.
        out_dim: Width of the Gaussian embedding. Must equal ``in_dim`` for ``identity``.
        hidden_dim: Width of the ``mlp`` hidden layer; ignored otherwise.
    """

    kind: str
    in_dim: int
    out_dim: int
    hidden_dim: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in HEAD_KINDS:
            raise InvalidInputError(f"unknown head kind {self.kind!r}; choose one of {', '.join(HEAD_KINDS)}")
        if self.in_dim <= 0 or self.out_dim <= 0:
            raise InvalidInputError(f"head dims must be positive, got in_dim={self.in_dim} out_dim={self.out_dim}")
        if self.kind == "identity" and self.in_dim != self.out_dim:
            raise InvalidInputError(f"an identity head keeps the width: out_dim {self.out_dim} != in_dim {self.in_dim}")
        if self.kind == "mlp" and (self.hidden_dim is None or self.hidden_dim <= 0):
            raise InvalidInputError("an mlp head needs a positive hidden_dim")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> HeadSpec:
        return cls(**data)


class UnitNormalize(nn.Module):
    """radius · x / ‖x‖ along the last axis: the base encoder's own Normalize, as a stage of a head.

    ``radius`` follows from the head spec, so it is not a weight and the state dict does not hold it.
    """

    def __init__(self, radius: float = 1.0):
        super().__init__()
        self.radius = radius

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.radius * torch.nn.functional.normalize(x, dim=-1)


class QueryMapHead(nn.Sequential):
    """A ``unit-linear-unit`` head for documents with a separate affine map for queries onto the same sphere.

    ``forward`` (documents): √k · normalize(W x/‖x‖ + b). :meth:`queries`: √k · normalize(W_q x/‖x‖ +
    b_q). Why two maps: ``adapt`` whitens the documents' spectrum so that *they* follow N(0, I_k);
    whitening the queries too applies the rescaling twice to every query–document cosine and moves
    the base's ranking (Cranfield −0.03 nDCG@10), while rotating queries into the same axes, centred
    on the mean of query-like spans, keeps it. W_q and b_q are buffers (``query_weight``,
    ``query_bias``), so ``nn.Sequential`` runs only the document stages and the state dict holds both.
    """

    query_weight: torch.Tensor
    query_bias: torch.Tensor

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__(UnitNormalize(), nn.Linear(in_dim, out_dim), UnitNormalize(math.sqrt(out_dim)))
        self.register_buffer("query_weight", torch.zeros(out_dim, in_dim))
        self.register_buffer("query_bias", torch.zeros(out_dim))
        with torch.no_grad():  # until fitted, queries take the document map
            linear = self[1]
            assert isinstance(linear, nn.Linear)
            self.query_weight.copy_(linear.weight)
            self.query_bias.copy_(linear.bias)

    def queries(self, x: torch.Tensor) -> torch.Tensor:
        unit = torch.nn.functional.normalize(x, dim=-1)
        out = torch.nn.functional.linear(unit, self.query_weight, self.query_bias)
        return math.sqrt(self.query_weight.shape[0]) * torch.nn.functional.normalize(out, dim=-1)


def query_map(head: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """What maps base embeddings of *queries* through ``head``: its query map if it has one, else ``head`` itself."""
    return head.queries if isinstance(head, QueryMapHead) else head


def build_head(spec: HeadSpec, seed: int = 0) -> nn.Sequential:
    """Build a freshly initialised head.

    A ``linear`` head of equal width starts as the identity so that an untrained model is exactly the
    base encoder (raw L2); training then moves it. Other shapes use PyTorch's default init, seeded.
    """
    if spec.kind == "identity":
        return nn.Sequential()
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        if spec.kind == "unit-linear":
            return nn.Sequential(UnitNormalize(), nn.Linear(spec.in_dim, spec.out_dim))
        if spec.kind == "unit-linear-unit-query":
            return QueryMapHead(spec.in_dim, spec.out_dim)
        if spec.kind == "unit-linear-unit":
            return nn.Sequential(
                UnitNormalize(), nn.Linear(spec.in_dim, spec.out_dim), UnitNormalize(math.sqrt(spec.out_dim))
            )
        if spec.kind == "linear":
            linear = nn.Linear(spec.in_dim, spec.out_dim)
            if spec.in_dim == spec.out_dim:
                with torch.no_grad():
                    linear.weight.copy_(torch.eye(spec.in_dim))
                    linear.bias.zero_()
            return nn.Sequential(linear)
        assert spec.hidden_dim is not None
        return nn.Sequential(
            nn.Linear(spec.in_dim, spec.hidden_dim),
            nn.GELU(),
            nn.Linear(spec.hidden_dim, spec.out_dim),
        )
    finally:
        # Building a model must not perturb the caller's random stream.
        torch.random.set_rng_state(generator_state)
