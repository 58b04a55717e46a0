"""``ragcun collections|runs|docs|db …``: inspecting and managing what is stored."""

from __future__ import annotations

import click

from ragcun import admin
from ragcun.cli.main import AppContext, cli, emit, json_option, pass_app, table


@cli.group()
def collections() -> None:
    """List, inspect and drop collections."""


@collections.command("list")
@json_option
@pass_app
def collections_list(app: AppContext, as_json) -> None:
    """Every physical collection, grouped by logical name."""
    with app.workspace() as ws:
        rows = admin.list_collections(ws)
    emit(rows, as_json, lambda r: table(r, ["name", "status", "physical_name", "engine", "documents", "chunks", "dim"]))


@collections.command("show")
@click.argument("name")
@json_option
@pass_app
def collections_show(app: AppContext, name, as_json) -> None:
    """Catalog and engine view of one collection."""
    with app.workspace() as ws:
        data = admin.show_collection(ws, name)
    emit(data, as_json, lambda d: table(d["physical"], ["physical_name", "status", "model_version", "dim",
                                                        "distance", "documents", "chunks", "engine_points"]))


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
        data = admin.drop_collection(ws, name)
    emit(data, as_json, lambda d: click.echo(f"Dropped {', '.join(d['physical_dropped'])} "
                                             f"({d['documents_deleted']} documents)"))


@cli.group()
def runs() -> None:
    """Ingest runs: what each did and what failed."""


@runs.command("list")
@click.option("-c", "--collection", help="Only runs into this collection.")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
@pass_app
def runs_list(app: AppContext, collection, limit, as_json) -> None:
    """Recent ingest runs, newest first."""
    with app.workspace() as ws:
        rows = admin.list_runs(ws, collection, limit)
    emit(rows, as_json, lambda r: table(r, ["id", "collection", "status", "started_at", "added", "updated",
                                            "unchanged", "deleted", "failed"]))


@runs.command("show")
@click.argument("run_id", type=int)
@json_option
@pass_app
def runs_show(app: AppContext, run_id, as_json) -> None:
    """One run with its per-file errors."""
    with app.workspace() as ws:
        data = admin.show_run(ws, run_id)

    def render(d: dict) -> None:
        for key in ("id", "collection", "status", "started_at", "finished_at", "model_version", "inputs"):
            click.echo(f"{key:<14}{d[key]}")
        click.echo(", ".join(f"{k} {d.get(k, 0)}" for k in ("added", "updated", "unchanged", "deleted", "failed")))
        for error in d["errors"]:
            where = f"{error['uri']}:{error['line']}" if error.get("line") else error["uri"]
            click.echo(f"  {where}: {error['error']}")

    emit(data, as_json, render)


@cli.group()
def docs() -> None:
    """Documents and chunks: lineage and deletion."""


@docs.command("show")
@click.argument("chunk_id")
@json_option
@pass_app
def docs_show(app: AppContext, chunk_id, as_json) -> None:
    """Where a chunk (a search hit) came from: file, hash, run, model version."""
    with app.workspace() as ws:
        data = admin.chunk_lineage(ws, chunk_id)

    def render(d: dict) -> None:
        doc, source = d["document"], d["source"]
        click.echo(f"chunk     {d['chunk_id']} (#{d['ordinal']}, {d['tokens']} tokens, sha256 {d['sha256'][:16]}…)")
        click.echo(f"document  {doc['doc_id']} in {doc['collection']!r}" + (f": {doc['title']}" if doc["title"] else ""))
        click.echo(f"source    {source['uri']} (sha256 {source['sha256'][:16]}…, {source['size']} bytes)")
        for c in d["collections"]:
            click.echo(f"stored in {c['physical_name']} [{c['status']}] by model {c['model_version'][:12]} "
                       f"({c['base_model']}), run {c['ingest_run']}, norm {c['norm']:.4f}")

    emit(data, as_json, render)


@docs.command("delete")
@click.argument("doc_id")
@click.option("-c", "--collection", required=True)
@json_option
@pass_app
def docs_delete(app: AppContext, doc_id, collection, as_json) -> None:
    """Delete one document (by its doc id) and its chunks."""
    with app.workspace() as ws:
        data = admin.delete_document(ws, collection, doc_id)
    emit(data, as_json, lambda d: click.echo(f"Deleted {d['doc_id']!r} ({d['chunks_deleted']} chunks)"))


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
    from ragcun.catalog import current_revision, head_revision, make_engine

    engine = make_engine(app.settings.db_url)
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    click.echo(f"current {current or '(empty)'}; head {head_revision(app.settings.db_url)}")
