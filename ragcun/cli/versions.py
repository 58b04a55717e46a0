"""``ragcun models|reindex|rollback|check`` and ``collections gc``: model versions and collections."""

from __future__ import annotations

import click

from ragcun import admin
from ragcun.cli.main import AppContext, cli, emit, json_option, pass_app, table
from ragcun.cli.manage import collections


@cli.group()
def models() -> None:
    """Model versions: list, inspect, register and remove."""


@models.command("list")
@json_option
@pass_app
def models_list(app: AppContext, as_json) -> None:
    """Registered model versions and the collections bound to them."""
    with app.workspace() as ws:
        rows = admin.list_models(ws)
    emit(rows, as_json, lambda r: table(
        [{**m, "fingerprint": m["fingerprint"][:12], "collections": ", ".join(
            f"{c['physical_name']} ({c['status']})" for c in m["collections"])} for m in r],
        ["fingerprint", "head", "dim", "base_model", "collections"]))


@models.command("show")
@click.argument("version")
@json_option
@pass_app
def models_show(app: AppContext, version, as_json) -> None:
    """One model version (by fingerprint prefix)."""
    with app.workspace() as ws:
        data = admin.show_model(ws, version)
    emit(data, as_json, lambda d: [click.echo(f"{k:<12}{v}") for k, v in d.items()])


@models.command("register")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@json_option
@pass_app
def models_register(app: AppContext, directory, as_json) -> None:
    """Register a model directory as a version (a copy is kept in the ragcun home)."""
    with app.workspace() as ws:
        data = admin.register_model(ws, directory)
    emit(data, as_json, lambda d: click.echo(f"Registered model {d['fingerprint']}"))


@models.command("remove")
@click.argument("version")
@json_option
@pass_app
def models_remove(app: AppContext, version, as_json) -> None:
    """Forget a model version that no collection uses."""
    with app.workspace() as ws:
        data = admin.remove_model(ws, version)
    emit(data, as_json, lambda d: click.echo(f"Removed model {d['fingerprint']}"))


@cli.command()
@click.option("-c", "--collection", required=True, help="Logical collection to rebuild.")
@click.option("--model", "model_ref", required=True, help="Model directory, or a registered version's fingerprint.")
@click.option("--batch-size", type=int, default=128, show_default=True, help="Chunks embedded per batch.")
@json_option
@pass_app
def reindex(app: AppContext, collection, model_ref, batch_size, as_json) -> None:
    """Rebuild a collection with another model from the catalog's text, then switch to it atomically."""
    from ragcun.versioning import reindex as run_reindex

    with app.workspace() as ws:
        result = run_reindex(ws, collection, admin.load_model_ref(ws, model_ref), batch_size).to_dict()

    def render(d: dict) -> None:
        if not d["switched"]:
            click.echo(f"{d['collection']!r} is already served by model {d['model_version'][:12]} "
                       f"({d['physical_name']}); nothing to do")
            return
        click.echo(f"{d['collection']!r} now served by {d['physical_name']} (model {d['model_version'][:12]}, "
                   f"{d['chunks_total']} chunks, {d['chunks_embedded']} embedded now); "
                   f"{d['previous_physical_name']} retired")

    emit(result, as_json, render)


@cli.command()
@click.option("-c", "--collection", required=True, help="Logical collection to roll back.")
@json_option
@pass_app
def rollback(app: AppContext, collection, as_json) -> None:
    """Re-activate the previous model version of a collection."""
    from ragcun.versioning import rollback as run_rollback

    with app.workspace() as ws:
        result = run_rollback(ws, collection).to_dict()
    emit(result, as_json, lambda d: click.echo(
        f"{d['collection']!r} rolled back to {d['physical_name']} (model {d['model_version'][:12]}); "
        f"{d['previous_physical_name']} retired"))


@cli.command()
@click.option("-c", "--collection", help="Only this collection (default: every active one).")
@click.option("--repair", is_flag=True, help="Fix what the catalog can fix, then check again.")
@json_option
@pass_app
def check(app: AppContext, collection, repair, as_json) -> None:
    """Compare catalog and store; exits 1 while problems remain."""
    from ragcun.check import PROBLEM_KINDS
    from ragcun.check import check as run_check

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


@collections.command("gc")
@click.option("-c", "--collection", help="Only retired versions of this collection.")
@click.option("--older-than", "older_than_days", type=float, help="Drop versions retired more than N days ago.")
@click.option("--keep", type=int, help="Keep the N most recently retired versions of each collection.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_app
def collections_gc(app: AppContext, collection, older_than_days, keep, yes, as_json) -> None:
    """Drop retired physical collections by age or count."""
    from ragcun.versioning import gc

    with app.workspace() as ws:
        doomed = gc(ws, collection, older_than_days, keep, dry_run=True)
        if doomed and not yes:
            names = ", ".join(d["physical_name"] for d in doomed)
            click.confirm(f"Drop {len(doomed)} retired collection(s): {names}?", abort=True)
        dropped = gc(ws, collection, older_than_days, keep) if doomed else []
    emit(dropped, as_json, lambda rows: click.echo(
        f"Dropped {len(rows)} retired collection(s)" + "".join(f"\n  {r['physical_name']}" for r in rows)))
