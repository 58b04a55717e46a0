"""``python -m ragcun.training --data DIR --out DIR [...]``: the same command as ``ragcun train``."""

from __future__ import annotations

import sys

import click

from ragcun.errors import RagcunError
from ragcun.training.cli import train


def main(argv: list[str] | None = None) -> None:
    try:
        train.main(argv, prog_name="python -m ragcun.training")
    except RagcunError as exc:  # the same one-line error `ragcun train` prints
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
