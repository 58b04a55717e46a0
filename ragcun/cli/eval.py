"""``ragcun eval``, ``eval list``, ``stats`` and ``calibrate``: measuring what the embeddings promise."""

from __future__ import annotations

import click

from ragcun.cli.main import AppContext, cli, emit, json_option, pass_app, table

EVAL_COLUMNS = [
    "method",
    "ndcg@10",
    "mrr@10",
    "recall@10",
    "recall@100",
    "separation",
    "ρ(qnorm,ndcg)",
    "ρ(dnorm,rel)",
    "sigma",
    "ece",
]


def _fmt(value) -> str | None:
    return None if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _figures(row: dict) -> dict:
    """One table row from a method's figures, whether fresh (nested metrics) or stored (flat)."""
    flat = {**row.get("metrics", {}), **row}
    return {
        "method": row["method"],
        **{m: _fmt(flat.get(m)) for m in ("ndcg@10", "mrr@10", "recall@10", "recall@100")},
        "separation": _fmt(flat.get("separation")),
        "ρ(qnorm,ndcg)": _fmt(flat.get("spearman_query_norm_ndcg")),
        "ρ(dnorm,rel)": _fmt(flat.get("spearman_doc_norm_relevance")),
        "sigma": _fmt(flat.get("sigma")),
        "ece": _fmt(flat.get("ece")),
    }


@cli.group("eval", invoke_without_command=True)
@click.option("-c", "--collection", help="Collection to evaluate (with --beir: where the corpus goes).")
@click.option("--queries", type=click.Path(exists=True), help="BEIR queries.jsonl.")
@click.option("--qrels", type=click.Path(exists=True, dir_okay=False), help="BEIR qrels TSV.")
@click.option(
    "--beir",
    type=click.Path(exists=True, file_okay=False),
    help="A BEIR folder: its corpus is ingested (into beir-<folder> unless -c) if needed, then evaluated.",
)
@click.option("--split", default="test", show_default=True, help="With --beir: the qrels/<split>.tsv to use.")
@click.option(
    "--model",
    "model_path",
    type=click.Path(exists=True, file_okay=False),
    help="With --beir, for a new collection: the model to ingest with [default: the default model].",
)
@click.option(
    "--compare",
    default="base-cosine",
    show_default=True,
    help="Comma-separated methods to score alongside: base-cosine, base-l2, bm25 (bm25s), the collection "
    "through its engine (dense, bm25-engine, hybrid, hybrid-rrf, hybrid-dbsf), a model directory "
    "or registered version; 'none' for the collection's model alone.",
)
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a reliability diagram (PNG) here.")
@click.option(
    "--keep-identical-ids",
    is_flag=True,
    help="Let a query retrieve the document with its own id (by default ignored, the BEIR rule); "
    "for collections whose query and document ids are separate numberings.",
)
@click.option(
    "--allow-incomplete",
    is_flag=True,
    help="Score a collection whose ingest left failed documents (refused by default); the report "
    "counts them as missing_documents.",
)
@click.option(
    "--mode",
    type=click.Choice(["dense", "bm25", "hybrid"]),
    default="dense",
    show_default=True,
    help="How the collection's own row searches (bm25/hybrid go through the engine).",
)
@click.option("--fusion", type=click.Choice(["rrf", "dbsf"]), help="For --mode hybrid [default: dbsf].")
@click.option("--filter", "where", metavar="EXPR", help="Payload filter for the engine searches (see `search --help`).")
@json_option
@click.pass_context
def eval_group(
    ctx: click.Context,
    collection,
    queries,
    qrels,
    beir,
    split,
    model_path,
    compare,
    plot,
    keep_identical_ids,
    allow_incomplete,
    mode,
    fusion,
    where,
    as_json,
) -> None:
    """Score a collection on judged queries: nDCG@10, MRR@10, Recall@10/100, separation, norm
    correlations and calibration, next to baselines; results are stored in the catalog."""
    if ctx.invoked_subcommand is not None:
        return
    from ragcun.evaluation import evaluate, evaluate_beir
    from ragcun.evaluation.plots import plot_reliability

    methods = [] if compare.strip().lower() == "none" else [m.strip() for m in compare.split(",") if m.strip()]
    app: AppContext = ctx.obj
    with app.workspace() as ws:
        if beir:
            if queries or qrels:
                raise click.UsageError("--beir takes queries and qrels from the folder; drop --queries/--qrels")
            from ragcun.cli.ingest import load_model

            report = evaluate_beir(
                ws,
                beir,
                load_model(model_path) if model_path else None,
                collection,
                split=split,
                compare=methods,
                ignore_identical_ids=not keep_identical_ids,
                allow_incomplete=allow_incomplete,
                mode=mode,
                fusion=fusion,
                filter=where,
            )
        else:
            if not (collection and queries and qrels):
                raise click.UsageError("give -c NAME --queries FILE --qrels FILE, or --beir DIR")
            report = evaluate(
                ws,
                collection,
                queries,
                qrels,
                compare=methods,
                ignore_identical_ids=not keep_identical_ids,
                allow_incomplete=allow_incomplete,
                mode=mode,
                fusion=fusion,
                filter=where,
            )
    data = report.to_dict()
    if plot:
        data["plot"] = str(plot_reliability([r for r in report.results if r.sigma is not None], plot))

    def render(d: dict) -> None:
        click.echo(f"{d['collection']}: {d['num_queries']} judged queries ({d['queries']}, {d['qrels']})")
        for warning in d["warnings"]:
            click.echo(f"warning: {warning}", err=True)
        table([_figures(r) for r in d["results"]], EVAL_COLUMNS)
        if d.get("plot"):
            click.echo(f"reliability plot: {d['plot']}")

    emit(data, as_json, render)


def _identical_ids(row: dict) -> str:
    """How a stored result treated a document with the query's own id: 'kept' (--keep-identical-ids) or 'ignored'."""
    if "keep_identical_ids" not in row:
        return "?"  # stored before this was recorded
    return "kept" if row["keep_identical_ids"] else "ignored"


@eval_group.command("list")
@click.option("-c", "--collection", help="Only this logical collection.")
@json_option
@pass_app
def eval_list(app: AppContext, collection, as_json) -> None:
    """Stored evaluation results, oldest first."""
    from ragcun.evaluation import list_evals

    with app.workspace() as ws:
        rows = list_evals(ws, collection)

    def render(data: list[dict]) -> None:
        table(
            [
                {
                    "id": r["id"],
                    "collection": r["collection"],
                    **_figures(r),
                    "queries": r["num_queries"],
                    "same-ids": _identical_ids(r),
                    "missing": r.get("missing_documents"),
                    "at": r["created_at"].isoformat(timespec="seconds"),
                }
                for r in data
            ],
            ["id", "collection", *EVAL_COLUMNS, "queries", "same-ids", "missing", "at"],
        )

    emit(rows, as_json, render)


@cli.command()
@click.option("-c", "--collection", required=True, help="Collection to describe.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write eigen-spectrum, norm and projection plots (PNG).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random subsets and directions.")
@json_option
@pass_app
def stats(app: AppContext, collection, plot, seed, as_json) -> None:
    """Isotropy of a collection's vectors against N(0, I): norms vs χ(dim), spectrum, effective rank, SIGReg, LID."""
    from ragcun.evaluation import collection_stats

    with app.workspace() as ws:
        data = collection_stats(ws, collection, plot=plot, seed=seed).to_dict()
    if plot:
        data["plot"] = str(plot)

    def render(d: dict) -> None:
        n, ref, s = d["norm"], d["norm"]["chi"], d["per_dim_summary"]
        q = " ".join(f"{k}:{v:.2f}" for k, v in n["quantiles"].items())
        rq = " ".join(f"{k}:{v:.2f}" for k, v in ref["quantiles"].items())
        eig = d["eigenvalues"]
        click.echo(f"{d['collection']}: {d['count']} points, dim {d['dim']}")
        click.echo(f"norm          mean {n['mean']:.3f}  std {n['std']:.3f}  quantiles {q}")
        click.echo(f"  χ({d['dim']})      mean {ref['mean']:.3f}  std {ref['std']:.3f}  quantiles {rq}")
        click.echo(f"per-dim mean  |mean| avg {s['mean_abs_mean']:.3f}, max {s['max_abs_mean']:.3f}  (N(0, I): 0)")
        click.echo(
            f"per-dim var   min {s['var_min']:.3f}  median {s['var_median']:.3f}  max {s['var_max']:.3f}  (N(0, I): 1)"
        )
        click.echo(
            f"eigenvalues   top {' '.join(f'{v:.3f}' for v in eig[:5])}  ... smallest {eig[-1]:.3g}  (N(0, I): all ≈ 1)"
        )
        cap = f"; at most {d['effective_rank_cap']:.3f} with {d['count']} points" if d.get("effective_rank_cap") else ""
        click.echo(f"effective rank / dim  {d['effective_rank_ratio']:.3f}  (N(0, I): ≈ 1{cap})")
        for warning in d.get("warnings", []):
            click.echo(f"warning: {warning}", err=True)
        click.echo(f"SIGReg        {d['sigreg']:.3f}  (N(0, I) sample of the same shape: {d['sigreg_reference']:.3f})")
        if d["local_intrinsic_dim"] is not None:
            click.echo(
                f"local intrinsic dim  {d['local_intrinsic_dim']:.1f}  (N(0, I) sample of the same shape: "
                f"{d['local_intrinsic_dim_reference']:.1f}; lower is easier for HNSW)"
            )
        if d.get("plot"):
            click.echo(f"plot: {d['plot']}")

    emit(data, as_json, render)


@cli.command()
@click.option("-c", "--collection", required=True, help="Collection whose σ to calibrate.")
@click.option("--queries", type=click.Path(exists=True), help="Dev queries (BEIR queries.jsonl).")
@click.option("--qrels", type=click.Path(exists=True, dir_okay=False), help="Dev qrels; never the test qrels.")
@click.option("-k", "top_k", type=int, default=10, show_default=True, help="Candidates per query the softmax covers.")
@click.option("--sigma", type=float, help="Set σ directly (e.g. one calibrated on another collection).")
@click.option("--keep-identical-ids", is_flag=True, help="As for `ragcun eval`.")
@json_option
@pass_app
def calibrate(app: AppContext, collection, queries, qrels, top_k, sigma, keep_identical_ids, as_json) -> None:
    """Fit σ of P(hit) = softmax(−d²/2σ²) on dev queries and store it with the collection."""
    from ragcun.evaluation import calibrate as run_calibrate, set_sigma

    with app.workspace() as ws:
        if sigma is not None:
            if queries or qrels:
                raise click.UsageError("--sigma sets σ directly; drop --queries/--qrels")
            data = {"collection": collection, "sigma": sigma, "previous_sigma": set_sigma(ws, collection, sigma)}
        elif queries and qrels:
            data = run_calibrate(
                ws, collection, queries, qrels, top_k=top_k, ignore_identical_ids=not keep_identical_ids
            ).to_dict()
        else:
            raise click.UsageError("give --queries and --qrels (a dev split), or --sigma")

    def render(d: dict) -> None:
        click.echo(f"{d['collection']}: σ {d['previous_sigma']:.4g} → {d['sigma']:.4g}")
        if d.get("ece_after") is not None:
            click.echo(
                f"  on {d['num_queries']} dev queries, top {d['top_k']}: ECE {d['ece_before']:.3f} → "
                f"{d['ece_after']:.3f}, log loss {d['log_loss']:.4f}"
            )

    emit(data, as_json, render)
