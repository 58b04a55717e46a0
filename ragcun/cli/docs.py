"""``ragcun docs show|delete``: a chunk's lineage; deleting a document."""

from __future__ import annotations

import click

from ragcun.cli.main import AppContext, cli, emit, json_option, pass_app, table
from ragcun.collections import chunk_lineage, delete_document


@cli.group()
def docs() -> None:
    """Documents and chunks: lineage and deletion."""


@docs.command("list")
@click.option("-c", "--collection", required=True, help="Collection whose documents to list.")
@click.option("--source", "source_glob", metavar="GLOB", help="Only documents whose source matches, e.g. 'guides/*'.")
@json_option
@pass_app
def docs_list(app: AppContext, collection, source_glob, as_json) -> None:
    """The documents of a collection, by the ids `docs delete` takes."""
    from ragcun.collections.documents import list_documents

    with app.workspace() as ws:
        rows = [d.to_dict() for d in list_documents(ws, collection, source_glob)]
    emit(rows, as_json, lambda r: table(r, ["doc_id", "source", "chunks", "title"]))


@docs.command("show")
@click.argument("chunk_id")
@json_option
@pass_app
def docs_show(app: AppContext, chunk_id, as_json) -> None:
    """Where a chunk (a search hit; its id or a unique prefix of it) came from: file, hash, run, model version."""
    with app.workspace() as ws:
        data = chunk_lineage(ws, chunk_id).to_dict()

    def render(d: dict) -> None:
        doc, source = d["document"], d["source"]
        click.echo(f"chunk     {d['chunk_id']} (#{d['ordinal']}, {d['tokens']} tokens, sha256 {d['sha256'][:16]}…)")
        click.echo(
            f"document  {doc['doc_id']} in {doc['collection']!r}" + (f": {doc['title']}" if doc["title"] else "")
        )
        click.echo(f"source    {source['uri']} (sha256 {source['sha256'][:16]}…, {source['size']} bytes)")
        for c in d["collections"]:
            click.echo(
                f"stored in {c['physical_name']} [{c['status']}] by model {c['model_version'][:12]} "
                f"({c['base_model']}), run {c['ingest_run']}, norm {c['norm']:.4f}"
            )

    emit(data, as_json, render)


@docs.command("delete")
@click.argument("doc_id")
@click.option("-c", "--collection", required=True, help="Collection the document belongs to.")
@json_option
@pass_app
def docs_delete(app: AppContext, doc_id, collection, as_json) -> None:
    """Delete one document (by its doc id) and its chunks."""
    with app.workspace() as ws:
        data = delete_document(ws, collection, doc_id).to_dict()
    emit(data, as_json, lambda d: click.echo(f"Deleted {d['doc_id']!r} ({d['chunks_deleted']} chunks)"))
