"""``ragcun search``: the nearest chunks of a collection."""

from __future__ import annotations

import click

from ragcun.cli.main import (
    AppContext,
    cli,
    emit,
    json_option,
    pass_app,
    search_kwargs,
    search_options,
)


@cli.command()
@click.argument("query", required=False, default="")
@click.option("-c", "--collection", required=True, help="Collection to search.")
@click.option("-k", "top_k", type=int, default=10, show_default=True, help="Number of hits.")
@click.option("--hnsw-ef", type=int, help="Search width (default: the collection's).")
@click.option("--exact", is_flag=True, help="Exact search instead of HNSW.")
@click.option("--model", "model_ref", help="Embed the query with this model (refused unless it built the collection).")
@click.option("--plus", multiple=True, help="Add this text's embedding to the query vector (repeatable).")
@click.option("--minus", multiple=True, help="Subtract this text's embedding from the query vector (repeatable).")
@search_options
@json_option
@pass_app
def search(
    app: AppContext,
    query,
    collection,
    top_k,
    hnsw_ef,
    exact,
    model_ref,
    plus,
    minus,
    mode,
    fusion,
    where,
    diverse,
    diversity,
    as_json,
) -> None:
    """Best chunks for QUERY: by Euclidean distance (smallest first), BM25 or both; --plus/--minus compose the query."""
    if not query.strip() and not plus:
        raise click.UsageError("give a QUERY, or at least one --plus")
    from ragcun.collections.versions import load_model_ref
    from ragcun.retrieve.collection import search as run_search

    with app.workspace() as ws:
        embedder = load_model_ref(ws, model_ref) if model_ref else None
        hits = [
            hit.to_dict()
            for hit in run_search(
                ws,
                collection,
                query,
                top_k,
                embedder=embedder,
                hnsw_ef=hnsw_ef,
                exact=exact,
                plus=plus,
                minus=minus,
                **search_kwargs(mode, fusion, where, diverse, diversity),
            )
        ]

    def render(rows: list[dict]) -> None:
        if rows:
            click.echo(f"query norm {rows[0]['query_norm']:.3f}")
        for rank, hit in enumerate(rows, 1):
            snippet = " ".join(hit["text"].split())[:100]
            score = f"score {hit['score']:.4f}  " if hit["score"] is not None else ""
            click.echo(
                f"{rank:>3}. {hit['distance']:.4f}  {score}p {hit['probability']:.3f}  norm {hit['norm']:.3f}  "
                f"[{hit['doc_id']}#{hit['chunk']}] "
                f"{snippet}\n     chunk {hit['chunk_id']}  {hit['source']}"
            )
            if hit["metadata"]:
                click.echo("     " + "  ".join(f"{key}={value}" for key, value in hit["metadata"].items()))

    emit(hits, as_json, render)
