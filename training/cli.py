"""The one command line of training: ``ragcun train`` and ``python -m ragcun.training`` run this command.

``ragcun`` finds it through the ``ragcun.commands`` entry-point group (:mod:`ragcun.plugins`), so the
library never imports training. Options are built from :class:`TrainConfig`'s fields, so the command
line and the dataclass never drift apart.
"""

from __future__ import annotations

import logging

import click

from ragcun.training.config import RECIPES, TrainConfig, options


def config_options(command):
    """One option per ``TrainConfig`` field."""
    for name, kind, default in reversed(options()):
        flag = "--" + name.replace("_", "-")
        if name == "recipe":
            command = click.option(flag, type=click.Choice(RECIPES), default=default, show_default=True)(command)
        elif kind is bool:
            command = click.option(f"{flag}/--no-{flag[2:]}", default=default, show_default=True)(command)
        else:
            command = click.option(
                flag,
                type=kind,
                default=default,
                required=name in ("data", "out"),
                show_default=default not in (None, ""),
            )(command)
    return command


@click.command()
@config_options
@click.pass_context
def train(ctx: click.Context, **fields) -> None:
    """Train a head on a BEIR folder, a pairs JSONL or a raw corpus, and write a model directory.

    Example: ragcun train --data ../shared/datasets/scifact --recipe frozen --out my-model
    """
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
