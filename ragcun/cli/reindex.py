"""``ragcun reindex`` and ``rollback``: switching a collection's model version with no downtime."""

from __future__ import annotations

import click

from ragcun.cli.main import AppContext, cli, emit, json_option, pass_app
from ragcun.collections import load_model_ref, reindex as run_reindex, rollback as run_rollback


@cli.command()
@click.option("-c", "--collection", required=True, help="Logical collection to rebuild.")
@click.option(
    "--model",
    "model_ref",
    help="Model directory, or a registered version's fingerprint [default: the collection's own model, "
    "which only adds BM25 vectors to a collection made before hybrid search].",
)
@click.option("--batch-size", type=int, default=128, show_default=True, help="Chunks embedded per batch.")
@json_option
@pass_app
def reindex(app: AppContext, collection, model_ref, batch_size, as_json) -> None:
    """Rebuild a collection with another model from the catalog's text (or add BM25 vectors to an old one),
    then switch to it atomically."""
    with app.workspace() as ws:
        result = run_reindex(ws, collection, load_model_ref(ws, model_ref) if model_ref else None, batch_size).to_dict()

    def render(d: dict) -> None:
        if not d["switched"]:
            click.echo(
                f"{d['collection']!r} is already served by model {d['model_version'][:12]} "
                f"({d['physical_name']}); nothing to do"
            )
            return
        click.echo(
            f"{d['collection']!r} now served by {d['physical_name']} (model {d['model_version'][:12]}, "
            f"{d['chunks_total']} chunks, {d['chunks_embedded']} embedded now); "
            f"{d['previous_physical_name']} retired"
        )

    emit(result, as_json, render)


@cli.command()
@click.option("-c", "--collection", required=True, help="Logical collection to roll back.")
@json_option
@pass_app
def rollback(app: AppContext, collection, as_json) -> None:
    """Re-activate the previous model version of a collection."""
    with app.workspace() as ws:
        result = run_rollback(ws, collection).to_dict()
    emit(
        result,
        as_json,
        lambda d: click.echo(
            f"{d['collection']!r} rolled back to {d['physical_name']} (model {d['model_version'][:12]}); "
            f"{d['previous_physical_name']} retired"
        ),
    )
