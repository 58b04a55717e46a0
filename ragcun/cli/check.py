"""``ragcun check [--repair] [--full] [--yes]``: the catalog against the store."""

from __future__ import annotations

import click

from ragcun.cli.main import AppContext, cli, emit, json_option, pass_app
from ragcun.collections.check import PROBLEM_KINDS, check as run_check


@cli.command()
@click.option("-c", "--collection", help="Only this collection (default: every active one).")
@click.option(
    "--repair",
    is_flag=True,
    help="Mend the store from the catalog (rebuild, restore, re-embed what is wrong), then check again.",
)
@click.option("--full", is_flag=True, help="Verify every stored vector against a fresh embedding (default: a sample).")
@click.option(
    "--yes", is_flag=True, help="With --repair: also delete points no catalog chunk claims (it cannot rebuild them)."
)
@json_option
@pass_app
def check(app: AppContext, collection, repair, full, yes, as_json) -> None:
    """Compare catalog and store; exits 1 while problems remain."""
    with app.workspace() as ws:
        reports = [r.to_dict() for r in run_check(ws, collection, repair, full=full, yes=yes)]

    def render(rows: list[dict]) -> None:
        for r in rows:
            problems = ", ".join(f"{r[k]} {k.replace('_', ' ')}" for k in PROBLEM_KINDS if r[k]) or "consistent"
            click.echo(f"{r['name']} ({r['physical_name']}): {r['points']} points, {r['chunks']} chunks: {problems}")
            done = {k: v for k, v in r["repaired"].items() if v}
            if done:
                click.echo("  repaired: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in done.items()))
            if r["orphan_points"]:
                click.echo(
                    f"  {r['orphan_points']} points have no chunk in the catalog, which cannot rebuild them: "
                    "rerun with --repair --yes to delete them",
                    err=True,
                )
            elif r["problems"] and not repair:
                click.echo("  run `ragcun check --repair` to mend the store from the catalog", err=True)

    emit(reports, as_json, render)
    if any(r["problems"] for r in reports):
        raise SystemExit(1)
