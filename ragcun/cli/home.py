"""``ragcun init`` and ``status``: the ragcun home."""

from __future__ import annotations

import click

from ragcun.cli.main import AppContext, cli, emit, json_option, pass_app, table


@cli.command()
@click.option(
    "--force", is_flag=True, help="Create an empty catalog even beside a store that already holds collections."
)
@pass_app
def init(app: AppContext, force) -> None:
    """Create the ragcun home and bring the catalog to the latest schema (safe to run again)."""
    from ragcun.workspace import init_home

    init_home(app.settings, force=force)
    click.echo(f"Initialised {app.settings.home} (catalog {app.settings.db_url}, engine {app.settings.engine})")


@cli.command()
@json_option
@pass_app
def status(app: AppContext, as_json) -> None:
    """Home, catalog, engine and collections at a glance."""
    from ragcun.collections import status as get_status

    with app.workspace() as ws:
        data = get_status(ws).to_dict()

    def render(d: dict) -> None:
        click.echo(f"home      {d['home']}\ncatalog   {d['catalog']} (revision {d['catalog_revision']})")
        click.echo(f"engine    {d['engine']}" + (f" at {d['qdrant_url']}" if d["qdrant_url"] else ""))
        if d["running_ingests"]:
            click.echo(f"running   ingest runs {d['running_ingests']}")
        table(d["collections"], ["name", "physical_name", "documents", "chunks", "dim", "model_version"])

    emit(data, as_json, render)
