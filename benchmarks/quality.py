"""Retrieval quality and isotropy: the shipped default model against the base encoder and BM25.

Prints one table: per dataset (SciFact test in-domain; Cranfield, Medline, CISI zero-shot), nDCG@10
and Recall@100 (pytrec_eval), plus the isotropy of the corpus embeddings: mean SIGReg over 10 random
subsets of 1,024 vectors, and the effective rank as a share of the width. Rows:

* ``base cosine``: all-MiniLM-L6-v2 as shipped (normalized, cosine);
* ``base raw L2``: the same without Normalize, Euclidean distance;
* ``default (L2)``: the shipped default model (or ``--model DIR``), Euclidean distance;
* ``BM25``: bm25s with English stop words and Snowball stemming.

``--sweep`` trains a grid of frozen-recipe heads on SciFact train (a dev split held out of train
for model selection), evaluates each, and prints the Pareto front of zero-shot nDCG@10 (mean over
Cranfield, Medline, CISI) against effective rank.

Usage: python benchmarks/quality.py [--datasets ../shared/datasets] [--model DIR] [--sweep]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch

from ragcun.beir import read_corpus, read_qrels, read_queries
from ragcun.evaluation.isotropy import isotropy
from ragcun.evaluation.metrics import rank, retrieval_metrics, run_from_scores
from ragcun.model import DEFAULT_BASE_MODEL, GaussianEmbedder, default_model_path, load_base_encoder
from ragcun.model.cache import base_embeddings
from ragcun.training.config import TrainConfig
from ragcun.training.train import train

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATASETS = ROOT.parent / "shared" / "datasets"
DATASETS = ("scifact", "cranfield", "medline", "cisi")
ZERO_SHOT = ("cranfield", "medline", "cisi")

logger = logging.getLogger("quality")


class Dataset:
    """One BEIR test collection with its base embeddings (cached on disk)."""

    def __init__(self, folder: Path, embedder: GaussianEmbedder):
        self.name = folder.name
        corpus = read_corpus(folder)
        queries = read_queries(folder)
        self.qrels = read_qrels(folder / "qrels" / "test.tsv")
        self.query_ids = [q for q in self.qrels if q in queries]
        self.doc_ids = [doc.doc_id for doc in corpus]
        self.doc_texts = [doc.content for doc in corpus]
        self.query_texts = [queries[q] for q in self.query_ids]
        self.base_docs = base_embeddings(embedder, self.doc_texts).numpy()
        self.base_queries = base_embeddings(embedder, self.query_texts).numpy()

    def score(self, queries: np.ndarray, docs: np.ndarray, metric: str = "l2") -> dict[str, float]:
        indices, scores = rank(queries, docs, k=100, metric=metric)
        return retrieval_metrics(run_from_scores(self.query_ids, self.doc_ids, indices, scores), self.qrels)

    def bm25(self) -> dict[str, float]:
        import bm25s
        import Stemmer

        stemmer = Stemmer.Stemmer("english")
        retriever = bm25s.BM25()
        retriever.index(
            bm25s.tokenize(self.doc_texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False
        )
        tokens = bm25s.tokenize(self.query_texts, stopwords="en", stemmer=stemmer, show_progress=False)
        indices, scores = retriever.retrieve(tokens, k=min(100, len(self.doc_ids)), show_progress=False)
        return retrieval_metrics(run_from_scores(self.query_ids, self.doc_ids, indices, scores), self.qrels)


@torch.no_grad()
def head_vectors(model: GaussianEmbedder, dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The model's embeddings: its head over the cached base embeddings (same base), else a full encode."""
    if model.base_model == DEFAULT_BASE_MODEL:
        apply = lambda x: model.head(torch.from_numpy(x).to(model.device)).float().cpu().numpy()  # noqa: E731
        return apply(dataset.base_queries), apply(dataset.base_docs)
    return model.encode(dataset.query_texts), model.encode(dataset.doc_texts)


def evaluate_model(model: GaussianEmbedder, datasets: list[Dataset]) -> dict[str, dict[str, float]]:
    results = {}
    for dataset in datasets:
        queries, docs = head_vectors(model, dataset)
        results[dataset.name] = {**dataset.score(queries, docs), **isotropy(docs)}
    return results


def baseline_rows(datasets: list[Dataset]) -> dict[str, dict[str, dict[str, float]]]:
    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    rows: dict[str, dict[str, dict[str, float]]] = {"base cosine": {}, "base raw L2": {}, "BM25": {}}
    for d in datasets:
        rows["base cosine"][d.name] = {**d.score(d.base_queries, d.base_docs, "cosine"), **isotropy(unit(d.base_docs))}
        rows["base raw L2"][d.name] = {**d.score(d.base_queries, d.base_docs, "l2"), **isotropy(d.base_docs)}
        rows["BM25"][d.name] = {**d.bm25(), "sigreg": float("nan"), "effective_rank": float("nan")}
    return rows


def print_table(rows: dict[str, dict[str, dict[str, float]]], names: list[str]) -> None:
    print("| dataset | method | nDCG@10 | Recall@100 | sigreg | eff. rank / dim |")
    print("|---|---|---|---|---|---|")
    for name in names:
        for method, results in rows.items():
            r = results[name]
            iso = "–" if np.isnan(r["sigreg"]) else f"{r['sigreg']:.2f} | {r['effective_rank']:.2f}"
            iso = iso if iso != "–" else "– | –"
            print(f"| {name} | {method} | {r['ndcg@10']:.3f} | {r['recall@100']:.3f} | {iso} |")


def summary(results: dict[str, dict[str, float]]) -> dict[str, float]:
    """The sweep's two axes plus the target figures: zero-shot mean nDCG, and isotropy means."""
    return {
        "zero_shot": float(np.mean([results[n]["ndcg@10"] for n in ZERO_SHOT])),
        "scifact": results["scifact"]["ndcg@10"],
        **{f"{n}": results[n]["ndcg@10"] for n in ZERO_SHOT},
        "effective_rank": float(np.mean([r["effective_rank"] for r in results.values()])),
        "sigreg": float(np.mean([r["sigreg"] for r in results.values()])),
        "scifact_effective_rank": results["scifact"]["effective_rank"],
        "scifact_sigreg": results["scifact"]["sigreg"],
    }


def pareto_front(points: dict[str, dict[str, float]]) -> list[str]:
    """Names not dominated in (zero-shot nDCG, effective rank), by decreasing zero-shot nDCG."""

    def dominated(a: dict, b: dict) -> bool:
        return (
            b["zero_shot"] >= a["zero_shot"]
            and b["effective_rank"] >= a["effective_rank"]
            and (b["zero_shot"] > a["zero_shot"] or b["effective_rank"] > a["effective_rank"])
        )

    front = [n for n, p in points.items() if not any(dominated(p, q) for m, q in points.items() if m != n)]
    return sorted(front, key=lambda n: -points[n]["zero_shot"])


# Each sweep point changes a few fields of the TrainConfig defaults (the shipped recipe: 256-d MLP head,
# whitening init, SIGReg on corpus batches, λ 0.3, neighbourhood distillation 1.0, τ₀ 64), trained for
# SWEEP_EPOCHS epochs on SciFact train with 15% of its queries held out for model selection. The recipe
# itself is the "shipped default" point.
SWEEP_EPOCHS = 20
SWEEP = {
    "128 pca, q+d views, tau 1, no distill (prototype)": dict(
        out_dim=128, init="pca", sigreg_on="both", distill_weight=0.0, temperature=1.0
    ),
    "128 whiten": dict(out_dim=128),
    "256 pca init": dict(init="pca"),
    "256 linear head": dict(head="linear"),
    "256 no distill": dict(distill_weight=0.0),
    "256 lambda 1.0": dict(sigreg_lambda=1.0),
    "256 SIGReg on q, d separately": dict(sigreg_on="separate"),
    "256 + span views": dict(span_views=1),
    "384 whiten": dict(out_dim=384),
}


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


def run_sweep(data: Path, datasets: list[Dataset], base, out: Path, only: list[str] | None) -> None:
    points = {}
    for name, changes in SWEEP.items():
        if only and name not in only:
            continue
        config = TrainConfig(
            data=str(data / "scifact"), out=str(out / slug(name)), dev_fraction=0.15, epochs=SWEEP_EPOCHS, **changes
        )
        train(config, base_encoder=base)
        model = GaussianEmbedder.load(out / slug(name), base_encoder=base)
        points[name] = summary(evaluate_model(model, datasets))
        p = points[name]
        print(
            f"{name}: zero-shot {p['zero_shot']:.3f} (cranfield {p['cranfield']:.3f} medline {p['medline']:.3f} "
            f"cisi {p['cisi']:.3f}) scifact {p['scifact']:.3f} eff.rank {p['effective_rank']:.2f} "
            f"(scifact {p['scifact_effective_rank']:.2f}) sigreg {p['sigreg']:.2f} (scifact {p['scifact_sigreg']:.2f})",
            flush=True,
        )
    points["shipped default"] = summary(
        evaluate_model(GaussianEmbedder.load(default_model_path(), base_encoder=base), datasets)
    )
    print(
        "\n| config | zero-shot nDCG@10 | cranfield | medline | cisi | scifact | eff. rank (mean of 4; scifact) "
        "| sigreg (mean of 4; scifact) | Pareto |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    front = pareto_front(points)
    for name, p in sorted(points.items(), key=lambda kv: -kv[1]["zero_shot"]):
        print(
            f"| {name} | {p['zero_shot']:.3f} | {p['cranfield']:.3f} | {p['medline']:.3f} | {p['cisi']:.3f} | "
            f"{p['scifact']:.3f} | {p['effective_rank']:.2f}; {p['scifact_effective_rank']:.2f} | "
            f"{p['sigreg']:.1f}; {p['scifact_sigreg']:.2f} | {'*' if name in front else ''} |"
        )
    print("\nPareto front (zero-shot nDCG@10 vs mean effective rank): " + " > ".join(front))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS, help="folder holding the BEIR datasets")
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: the shipped default)")
    parser.add_argument("--sweep", action="store_true", help="train and compare the sweep grid; print the Pareto front")
    parser.add_argument("--only", nargs="*", help="sweep points to run (default: all)")
    parser.add_argument("--sweep-dir", type=Path, default=ROOT / ".ragcun" / "sweep")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    base = load_base_encoder(DEFAULT_BASE_MODEL, device="cpu")
    plain = GaussianEmbedder(head="identity", base_encoder=base)
    datasets = [Dataset(args.datasets / name, plain) for name in DATASETS]
    if args.sweep:
        run_sweep(args.datasets, datasets, base, args.sweep_dir, args.only)
        return
    model_dir = args.model or default_model_path()
    rows = baseline_rows(datasets)
    rows = {
        "base cosine": rows["base cosine"],
        "base raw L2": rows["base raw L2"],
        "default (L2)": evaluate_model(GaussianEmbedder.load(model_dir, base_encoder=base), datasets),
        "BM25": rows["BM25"],
    }
    print(f"model: {model_dir} ({(Path(model_dir) / 'fingerprint').read_text().strip()[:12]})")
    print_table(rows, list(DATASETS))


if __name__ == "__main__":
    main()
