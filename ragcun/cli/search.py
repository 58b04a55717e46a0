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
    from ragcun.catalog.ops import require_collection
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

        with ws.catalog.session() as session:
            calibrated = "sigma" in require_collection(session, collection).settings

    emit(hits, as_json, lambda rows: render_hits(rows, calibrated))


def render_hits(rows: list[dict], calibrated: bool) -> None:
    """A labelled table of hits: the softmax probability only under a calibrated σ, the p-value only where adapted."""
    if not rows:
        click.echo("no hits")
        return
    first = rows[0]
    note = ""
    if first.get("out_of_domain") is not None:
        note = (
            "; OUT OF DOMAIN: the query lies outside this collection's distribution"
            if first["out_of_domain"]
            else "; in domain"
        )
    click.echo(f"query norm {first['query_norm']:.3f}{note}")
    with_p_value = first.get("p_value") is not None
    header = f"{'rank':>4}  {'distance':>9}  {'norm':>8}"
    header += f"  {'P(rel)':>6}" if calibrated else ""
    header += f"  {'p chance':>9}" if with_p_value else ""
    with_score = first.get("score") is not None
    header += f"  {'score':>8}" if with_score else ""
    click.echo(f"{header}  document#chunk  text")
    for rank, hit in enumerate(rows, 1):
        line = f"{rank:>4}  {hit['distance']:>9.4f}  {hit['norm']:>8.3f}"
        line += f"  {hit['probability']:>6.3f}" if calibrated else ""
        line += f"  {hit['p_value']:>9.2g}" if with_p_value else ""
        line += f"  {hit['score']:>8.4f}" if with_score else ""
        snippet = " ".join(hit["text"].split())[:100]
        click.echo(
            f"{line}  {hit['doc_id']}#{hit['chunk']}  {snippet}\n{'':>6}chunk {hit['chunk_id']}  source {hit['source']}"
        )
        if hit.get("metadata"):
            click.echo(f"{'':>6}" + "  ".join(f"{key}={value}" for key, value in hit["metadata"].items()))
    legend = ["distance: Euclidean distance to the query (smaller is nearer)", "norm: the passage vector's length"]
    if calibrated:
        legend.append("P(rel): share of the Gaussian likelihood among these hits, under the calibrated sigma")
    if with_p_value:
        legend.append(
            "p chance: how likely the nearest of this collection's passages would be this close if none "
            "were related (small: closer than chance)"
        )
    if with_score:
        legend.append("score: what ranked the hit (the BM25 score, or the fused score in hybrid mode)")
    click.echo("\n".join(f"  {item}" for item in legend))
