"""``ragcun collections list|show|drop|gc``: the collections of the home."""

from __future__ import annotations

import click

from ragcun.cli.main import AppContext, cli, emit, json_option, pass_app, table
from ragcun.collections import drop_collection, gc, list_collections, show_collection


@cli.group()
def collections() -> None:
    """List, inspect and drop collections."""


@collections.command("list")
@json_option
@pass_app
def collections_list(app: AppContext, as_json) -> None:
    """Every physical collection, grouped by logical name."""
    with app.workspace() as ws:
        rows = [c.to_dict() for c in list_collections(ws)]
    emit(rows, as_json, lambda r: table(r, ["name", "status", "physical_name", "engine", "documents", "chunks", "dim"]))


@collections.command("show")
@click.argument("name")
@json_option
@pass_app
def collections_show(app: AppContext, name, as_json) -> None:
    """Catalog and engine view of one collection."""
    with app.workspace() as ws:
        data = show_collection(ws, name).to_dict()
    emit(
        data,
        as_json,
        lambda d: table(
            d["physical"],
            ["physical_name", "status", "model_version", "dim", "distance", "documents", "chunks", "engine_points"],
        ),
    )


@collections.command("index")
@click.argument("field")
@click.option("-c", "--collection", required=True, help="Collection whose payload to index.")
@click.option(
    "--type",
    "schema",
    type=click.Choice(["keyword", "integer", "float", "bool", "datetime"]),
    default="keyword",
    show_default=True,
    help="Index type of the field's values.",
)
@json_option
@pass_app
def collections_index(app: AppContext, field, collection, schema, as_json) -> None:
    """Index payload FIELD (e.g. metadata.team) so that filters on it stay fast."""
    from ragcun.collections.create import index_payload

    with app.workspace() as ws:
        data = index_payload(ws, collection, field, schema)
    emit(data, as_json, lambda d: click.echo(f"Indexed {d['field']} ({d['schema']}) in {d['physical_name']}"))


@collections.command("drop")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_app
def collections_drop(app: AppContext, name, yes, as_json) -> None:
    """Delete a collection's points and its documents from the catalog."""
    if not yes:
        click.confirm(f"Drop collection {name!r} and all its documents?", abort=True)
    with app.workspace() as ws:
        data = drop_collection(ws, name).to_dict()
    emit(
        data,
        as_json,
        lambda d: click.echo(f"Dropped {', '.join(d['physical_dropped'])} ({d['documents_deleted']} documents)"),
    )


@collections.command("gc")
@click.option("-c", "--collection", help="Only retired versions of this collection.")
@click.option("--older-than", "older_than_days", type=float, help="Drop versions retired more than N days ago.")
@click.option("--keep", type=int, help="Keep the N most recently retired versions of each collection.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_app
def collections_gc(app: AppContext, collection, older_than_days, keep, yes, as_json) -> None:
    """Drop retired physical collections by age or count."""
    with app.workspace() as ws:
        doomed = [d.to_dict() for d in gc(ws, collection, older_than_days, keep, dry_run=True)]
        if doomed and not yes:
            names = ", ".join(d["physical_name"] for d in doomed)
            click.confirm(f"Drop {len(doomed)} retired collection(s): {names}?", abort=True)
        dropped = [d.to_dict() for d in gc(ws, collection, older_than_days, keep)] if doomed else []
    emit(
        dropped,
        as_json,
        lambda rows: click.echo(
            f"Dropped {len(rows)} retired collection(s)" + "".join(f"\n  {r['physical_name']}" for r in rows)
        ),
    )
