"""``ragcun train``: train a Gaussian head with the ``training`` package (SIGReg + InfoNCE)."""

from __future__ import annotations

import logging

import click

from ragcun.cli.main import cli


def _config_options(command):
    """One option per ``TrainConfig`` field, so the CLI and ``python -m training`` never drift apart."""
    from training.config import options

    for name, kind, default in reversed(options()):
        flag = "--" + name.replace("_", "-")
        if name == "recipe":
            command = click.option(flag, type=click.Choice(["frozen", "full"]), default=default, show_default=True)(command)
        elif kind is bool:
            command = click.option(f"{flag}/--no-{flag[2:]}", default=default, show_default=True)(command)
        else:
            command = click.option(flag, type=kind, default=default, required=name in ("data", "out"),
                                   show_default=default not in (None, ""))(command)
    return command


@cli.command()
@_config_options
def train(**options) -> None:
    """Train a head on a BEIR folder, a pairs JSONL or a raw corpus, and write a model directory.

    Example: ragcun train --data ../shared/datasets/scifact --recipe frozen --out my-model
    """
    from training.config import TrainConfig
    from training.train import train as run_training

    # Training is long: show its per-epoch lines even without --debug (the group's handler is on the root
    # logger, which passes on every record a child logger lets through).
    logging.getLogger("training").setLevel(logging.INFO)
    out = run_training(TrainConfig(**options))
    click.echo(f"model written to {out}")
