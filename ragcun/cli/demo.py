"""``ragcun demo``: the quick-start job."""

from __future__ import annotations

import json

import click

from ragcun.cli.main import cli


@cli.command()
@click.option(
    "--query",
    "-q",
    default="What is information science? Give definitions where possible.",
    show_default=True,
    help="Question to answer from the sample corpus.",
)
@click.option("-k", "top_k", default=5, show_default=True, help="How many documents to show.")
@click.option(
    "--model",
    "model_path",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="A ragcun model directory (default: the default model).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the hits as JSON.")
def demo(query: str, top_k: int, model_path: str | None, as_json: bool) -> None:
    """Index the bundled ADI sample corpus in memory and answer one query."""
    from ragcun.demo import run_demo

    hits = run_demo(query, top_k=top_k, model_path=model_path)
    if as_json:
        click.echo(json.dumps([hit.to_dict() for hit in hits], indent=2))
        return
    click.echo(f"Query: {query}")
    for rank, hit in enumerate(hits, 1):
        click.echo(f"{rank:>2}. [{hit.doc_id}] distance={hit.distance:.4f}  {hit.title}")
