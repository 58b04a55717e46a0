"""The ``ragcun`` command group and its error handling."""

from __future__ import annotations

import logging

import click

from ragcun import __version__
from ragcun.errors import RagcunError


class RagcunGroup(click.Group):
    """Turns library errors into one-line ``Error: …`` messages instead of tracebacks."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (RagcunError, ValueError, FileNotFoundError) as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            raise click.ClickException(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc


@click.group(cls=RagcunGroup)
@click.version_option(__version__, prog_name="ragcun")
@click.option("--debug", is_flag=True, help="Show full tracebacks and debug logs.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """ragcun: retrieval with isotropic Gaussian embeddings and Euclidean distance."""
    ctx.obj = {"debug": debug}
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
