"""The ``ragcun`` command group, its shared options and its error handling."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import click

from ragcun import __version__
from ragcun.errors import RagcunError
from ragcun.settings import Settings


@dataclass
class AppContext:
    settings: Settings
    debug: bool

    def workspace(self):
        from ragcun.workspace import Workspace

        return Workspace(self.settings)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


GLOBAL_FLAGS = ("--debug",)
GLOBAL_VALUED = ("--home", "--wait")


def hoist_global_options(args: list[str]) -> list[str]:
    """``args`` with the global options (``--home H``, ``--home=H``, ``--wait S``, ``--debug``) moved to the front.

    Nothing after a ``--`` is touched, so a query or path spelled like an option still can be passed.
    """
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in GLOBAL_FLAGS:
            front.append(arg)
        elif arg in GLOBAL_VALUED and i + 1 < len(args):
            front.extend(args[i : i + 2])
            i += 1
        elif arg.split("=", 1)[0] in GLOBAL_VALUED and "=" in arg:
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


class RagcunGroup(click.Group):
    """Turns library errors into one-line ``Error: …`` messages, and finds plugin commands.

    A :class:`RagcunError` is the user's to fix: its message is the whole output. Any other exception
    is a bug and says so, with a hint to rerun with ``--debug`` (which shows the traceback). Commands
    registered in the ``ragcun.commands`` entry-point group (``train``) load when first named.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # The global options work after the subcommand too (`ragcun search x -c kb --home H`): move them first.
        return super().parse_args(ctx, hoist_global_options(args))

    def list_commands(self, ctx: click.Context) -> list[str]:
        from ragcun.plugins import command_names

        return sorted({*super().list_commands(ctx), *command_names()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None:
            from ragcun.plugins import load_command

            command = load_command(name)
        return command

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            app = ctx.obj if isinstance(ctx.obj, AppContext) else None
            if app is not None and app.debug:
                raise
            if isinstance(exc, RagcunError):
                raise click.ClickException(first_line(exc)) from exc
            raise click.ClickException(
                f"unexpected {type(exc).__name__}: {first_line(exc)} (a bug: rerun with "
                "--debug for the traceback and report it)"
            ) from exc


@click.group(cls=RagcunGroup)
@click.version_option(__version__, prog_name="ragcun")
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    envvar="RAGCUN_HOME",
    help="ragcun home folder (default: $RAGCUN_HOME or ~/.ragcun).",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds to wait for the embedded store while another process holds it (default: $RAGCUN_WAIT or 5).",
)
@click.option("--debug", is_flag=True, help="Show full tracebacks and debug logs.")
@click.pass_context
def cli(ctx: click.Context, home: str | None, wait: float | None, debug: bool) -> None:
    """ragcun: retrieval with isotropic Gaussian embeddings and Euclidean distance."""
    # Only the command line reads ./.env: the library never depends on the folder it runs from.
    settings = Settings.from_env(home=home, env_file=".env")
    if wait is not None:
        settings = settings.model_copy(update={"wait": wait})
    ctx.obj = AppContext(settings=settings, debug=debug)
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Progress lines of runs without a terminal (the bars need one) are shown by default.
    logging.getLogger("ragcun.progress").setLevel(logging.DEBUG if debug else logging.INFO)


# Every command receives the shared AppContext through this one decorator.
pass_app = click.make_pass_decorator(AppContext)

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")

_SEARCH_OPTIONS = [
    click.option(
        "--mode",
        type=click.Choice(["dense", "bm25", "hybrid"]),
        default="dense",
        show_default=True,
        help="dense: L2 distance; bm25: keywords; hybrid: both, fused inside the engine.",
    ),
    # ragcun.retrieve.base.DEFAULT_FUSION (not imported here: the CLI starts without numpy).
    click.option(
        "--fusion",
        type=click.Choice(["rrf", "dbsf"]),
        default="dbsf",
        show_default=True,
        help="How --mode hybrid fuses: reciprocal rank, or distribution-based score fusion.",
    ),
    click.option(
        "--filter",
        "where",
        metavar="EXPR",
        help="Only chunks whose payload matches, e.g. 'metadata.team=infra & ingested_at>=2026-01-01' "
        "(KEY=V, KEY!=V, KEY=A|B, KEY>=V; keys: source doc_id title chunk ingested_at metadata.*).",
    ),
    click.option("--diverse", is_flag=True, help="Diversify the hits (MMR) instead of near-duplicates filling top-k."),
    click.option(
        "--diversity",
        type=click.FloatRange(0.0, 1.0),
        default=0.5,
        show_default=True,
        help="How much --diverse trades relevance for novelty.",
    ),
]


def search_options(command: Callable) -> Callable:
    """--mode, --fusion, --filter and --diverse: the options of every command that searches."""
    for option in reversed(_SEARCH_OPTIONS):
        command = option(command)
    return command


def search_kwargs(mode: str, fusion: str, where: str | None, diverse: bool, diversity: float) -> dict:
    """The keyword arguments of the library's search functions for the options of :func:`search_options`."""
    return {"mode": mode, "fusion": fusion, "filter": where, "diversity": diversity if diverse else None}


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    raise TypeError(f"cannot serialise {type(value).__name__}")


def emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    """Print ``data`` as JSON, or through ``render`` for people."""
    if as_json:
        click.echo(json.dumps(data, indent=2, default=_default, ensure_ascii=False))
    else:
        render(data)


def fields(data: dict, keys: Sequence[str] | None = None, width: int = 12) -> None:
    """One ``key value`` line per field: ``keys`` in order, or all of ``data``'s."""
    for key in data if keys is None else keys:
        click.echo(f"{key:<{width}}{data[key]}")


def table(rows: list[dict], columns: list[str]) -> None:
    """A plain aligned text table."""
    if not rows:
        click.echo("(none)")
        return
    cells = [[str(row.get(c, "")) if row.get(c) is not None else "" for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
