"""The one command line of training: ``ragcun train`` and ``python -m ragcun.training`` run this command.

``ragcun`` finds it through the ``ragcun.commands`` entry-point group (:mod:`ragcun.plugins`), so the
library never imports training. Options are built from :class:`TrainConfig`'s fields, so the command
line and the dataclass never drift apart.
"""

from __future__ import annotations

import logging

import click

from ragcun.training.config import RECIPES, TrainConfig, options
from ragcun.training.data import require_training_data

# The help of each TrainConfig field (tests/test_cli_help.py checks that every field has one).
FIELD_HELP = {
    "data": "BEIR folder, pairs .jsonl, or raw corpus (corpus.jsonl, a folder without qrels, .txt) to train on.",
    "out": "Model directory to write.",
    "split": "BEIR qrels split to train on.",
    "dev_fraction": "Share of the training queries held out for model selection.",
    "span_views": "Self-supervised span-view pairs added per corpus document (0: none).",
    "recipe": "frozen: base fixed, cached embeddings, head only; full: fine-tune the base too.",
    "base_model": "Base sentence encoder: a sentence-transformers name or path.",
    "head": "Head on top of the base encoder: identity, linear or mlp.",
    "out_dim": "Dimension of the head's output (the stored vectors).",
    "hidden_dim": "Hidden width of the mlp head.",
    "init": "Head initialisation: default (PyTorch's), pca or whiten (top PCA directions of the corpus).",
    "seed": "Random seed.",
    "temperature": "Initial temperature of the contrastive term on -||q - d||^2.",
    "learn_temperature": "Learn the temperature along with the head.",
    "sigreg_lambda": "Weight of SIGReg (isotropy) against the contrastive term.",
    "sigreg_warmup": "Fraction of the steps over which the SIGReg weight ramps up from 0.",
    "sigreg_on": "What SIGReg sees: both, separate, queries, docs or corpus.",
    "sigreg_slices": "Random 1-D directions SIGReg projects on, fresh every step.",
    "corpus_batch": "Documents per SIGReg batch when --sigreg-on corpus.",
    "jepa_weight": "Weight of the JEPA prediction term (0: off).",
    "distill_weight": "Weight of distilling the base's cosine neighbourhoods (frozen recipe).",
    "distill_temperature": "Temperature of the distillation softmax.",
    "epochs": "Passes over the training pairs.",
    "batch_size": "Pairs per optimizer step (before accumulation).",
    "lr": "Peak learning rate of the head.",
    "base_lr": "Full recipe: the base encoder's learning rate.",
    "weight_decay": "AdamW weight decay.",
    "warmup": "Fraction of the optimizer steps spent warming the learning rate up.",
    "min_lr_ratio": "Cosine decay ends at this fraction of the peak learning rate.",
    "grad_accum": "Batches accumulated per optimizer step.",
    "grad_clip": "Gradient norm clip.",
    "bf16": "Full recipe on CUDA: bf16 autocast.",
    "cache_dir": "Base-embedding cache of the frozen recipe [default: $RAGCUN_CACHE or $RAGCUN_HOME/cache].",
    "checkpoint_dir": "Where checkpoints go [default: OUT/checkpoints].",
    "checkpoint_every": "Epochs between checkpoints.",
    "resume": "Continue from the latest checkpoint.",
    "device": "Torch device [default: cuda when available, else cpu].",
}


def config_options(command):
    """One option per ``TrainConfig`` field."""
    for name, kind, default in reversed(options()):
        flag = "--" + name.replace("_", "-")
        help_text = FIELD_HELP.get(name)
        if name == "recipe":
            command = click.option(
                flag, type=click.Choice(RECIPES), default=default, show_default=True, help=help_text
            )(command)
        elif kind is bool:
            command = click.option(f"{flag}/--no-{flag[2:]}", default=default, show_default=True, help=help_text)(
                command
            )
        else:
            command = click.option(
                flag,
                type=kind,
                default=default,
                required=name in ("data", "out"),
                show_default=default not in (None, ""),
                help=help_text,
            )(command)
    return command


@click.command()
@config_options
@click.pass_context
def train(ctx: click.Context, **fields) -> None:
    """Train a head on a BEIR folder, a pairs JSONL or a raw corpus, and write a model directory.

    Example: ragcun train --data ../shared/datasets/scifact --recipe frozen --out my-model
    """
    require_training_data(fields["data"])  # a mistyped --data fails now, not after torch has loaded
    from ragcun.training.train import train as run_training  # torch: load once the options parsed

    if ctx.parent is None:  # python -m ragcun.training: nobody configured logging
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Training is long: show its per-epoch lines even without `ragcun --debug` (the group's handler is on
    # the root logger, which passes on every record a child logger lets through).
    logging.getLogger("ragcun.training").setLevel(logging.INFO)
    settings = getattr(ctx.find_root().obj, "settings", None)  # `ragcun train`: the home (and .env) it was given
    if fields["cache_dir"] is None and settings is not None:
        fields["cache_dir"] = str(settings.cache_dir)
    out = run_training(TrainConfig(**fields))
    click.echo(f"model written to {out}")
