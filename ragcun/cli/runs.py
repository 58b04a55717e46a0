"""``ragcun runs list|show``: what each ingest, reindex or rollback did and what failed."""

from __future__ import annotations

import click

from ragcun.cli.main import AppContext, cli, emit, fields, json_option, pass_app, table
from ragcun.collections import list_runs, show_run


@cli.group()
def runs() -> None:
    """Ingest runs: what each did and what failed."""


@runs.command("list")
@click.option("-c", "--collection", help="Only runs into this collection.")
@click.option("--limit", type=int, default=50, show_default=True, help="Show at most this many runs, newest first.")
@json_option
@pass_app
def runs_list(app: AppContext, collection, limit, as_json) -> None:
    """Recent ingest runs, newest first."""
    with app.workspace() as ws:
        rows = [r.summary() for r in list_runs(ws, collection, limit)]
    emit(
        rows,
        as_json,
        lambda r: table(
            r, ["id", "collection", "status", "started_at", "added", "updated", "unchanged", "deleted", "failed"]
        ),
    )


@runs.command("show")
@click.argument("run_id", type=int)
@json_option
@pass_app
def runs_show(app: AppContext, run_id, as_json) -> None:
    """One run with its per-file errors."""
    with app.workspace() as ws:
        data = show_run(ws, run_id).to_dict()

    def render(d: dict) -> None:
        fields(d, ("id", "collection", "status", "started_at", "finished_at", "model_version", "inputs"), width=14)
        click.echo(", ".join(f"{k} {d.get(k, 0)}" for k in ("added", "updated", "unchanged", "deleted", "failed")))
        for error in d["errors"]:
            where = f"{error['uri']}:{error['line']}" if error.get("line") else error["uri"]
            click.echo(f"  {where}: {error['error']}")

    emit(data, as_json, render)
