"""``ragcun check [--repair]``: the catalog against the store."""

from __future__ import annotations

import click

from ragcun.cli.main import AppContext, cli, emit, json_option, pass_app
from ragcun.collections.check import PROBLEM_KINDS, check as run_check


@cli.command()
@click.option("-c", "--collection", help="Only this collection (default: every active one).")
@click.option("--repair", is_flag=True, help="Fix what the catalog can fix, then check again.")
@json_option
@pass_app
def check(app: AppContext, collection, repair, as_json) -> None:
    """Compare catalog and store; exits 1 while problems remain."""
    with app.workspace() as ws:
        reports = [r.to_dict() for r in run_check(ws, collection, repair)]

    def render(rows: list[dict]) -> None:
        for r in rows:
            problems = ", ".join(f"{r[k]} {k.replace('_', ' ')}" for k in PROBLEM_KINDS if r[k]) or "consistent"
            click.echo(f"{r['name']} ({r['physical_name']}): {r['points']} points, {r['chunks']} chunks: {problems}")
            if r["repaired"]:
                click.echo("  repaired: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in r["repaired"].items()))

    emit(reports, as_json, render)
    if any(r["problems"] for r in reports):
        raise SystemExit(1)
