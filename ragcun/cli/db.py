"""``ragcun db upgrade|current``: the catalog's schema migrations."""

from __future__ import annotations

import click

from ragcun.cli.main import AppContext, cli, pass_app


@cli.group()
def db() -> None:
    """Catalog schema migrations (Alembic)."""


@db.command("upgrade")
@click.argument("revision", default="head")
@pass_app
def db_upgrade(app: AppContext, revision) -> None:
    """Migrate the catalog to REVISION (default: head)."""
    from ragcun.catalog import upgrade

    app.settings.home.mkdir(parents=True, exist_ok=True)
    upgrade(app.settings.db_url, revision)
    click.echo(f"Catalog {app.settings.db_url} at {revision}")


@db.command("current")
@pass_app
def db_current(app: AppContext) -> None:
    """Print the catalog's schema revision and the latest one."""
    from ragcun.catalog import head_revision, make_engine
    from ragcun.catalog.db import readable_revision

    engine = make_engine(app.settings.db_url)
    try:
        current = readable_revision(engine, app.settings.db_url)
    finally:
        engine.dispose()
    click.echo(f"current {current or '(empty)'}; head {head_revision(app.settings.db_url)}")
