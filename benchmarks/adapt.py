"""``ragcun adapt``'s recipe on the five shared collections: adapted head against base cosine, BM25 and the default.

Works from the base-embedding cache written by ``benchmarks/adapt_cache.py`` (chunks exactly as
``ragcun ingest`` makes them, their queries, two short spans per chunk): pass ``--cache DIR``, and
``--build`` to build it there first from the BEIR folders under ``--data``. The recipe
(:func:`ragcun.training.adapt.fit`) sees only the
chunks and spans; qrels are read here, to score it. A document scores as its best chunk (as
``ragcun eval`` does); SciFact excludes a query's own id (the BEIR rule), the other four keep
identical ids (separate numberings).

Per collection the table has nDCG@10 and Recall@100 (pytrec_eval), effective rank / width and
SIGReg of the chunks' and of the queries' embeddings, and the adapt wall time next to the time an
ingest of the same chunks takes at the measured encode rate; then the label-free figures of the
adapted space: the acceptance gate, AUC of the "closer than chance" p-value against qrels among
each query's top 100, abstention on other collections' queries and off-topic questions, and the
out-of-domain flag rates.

Usage: python benchmarks/adapt.py --cache /work/scratch/adapt/emb [--data ../shared/datasets] [--build] [--names
cisi adi]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from ragcun.beir import read_qrels
from ragcun.evaluation.calibration import fit_sigma
from ragcun.evaluation.isotropy import isotropy
from ragcun.evaluation.metrics import gaussian_probabilities, retrieval_metrics
from ragcun.model import HeadSpec, build_head, default_model_path
from ragcun.model.gaussian_law import best_of_n_p_value, chance_p_values
from ragcun.model.head import query_map
from ragcun.training.adapt import AdaptConfig, acceptance_gate, apply_head, fit

NAMES = ("scifact", "cranfield", "medline", "cisi", "adi")
SELF_EXCLUDED = ("scifact",)
DEPTH = 100
# The recipe before the query map (phase 1): k 96, effective rank 0.91, queries through the documents' map.
PREVIOUS = AdaptConfig(out_dim=96, target_effective_rank=0.91, queries="same")

logger = logging.getLogger("adapt")


@dataclass
class Cached:
    """One collection's cached base embeddings and its qrels."""

    name: str
    chunks: np.ndarray
    chunk_doc: np.ndarray
    doc_ids: list[str]
    queries: np.ndarray
    query_ids: list[str]
    qrels: dict
    spans: np.ndarray
    span_chunk: np.ndarray
    qrels_dir: str

    @classmethod
    def load(cls, cache: Path, data: Path, name: str) -> Cached:
        folder = cache / name
        rows = [json.loads(line) for line in (folder / "chunks.jsonl").open()]
        doc_index: dict[str, int] = {}
        chunk_doc = np.array([doc_index.setdefault(r["doc_id"], len(doc_index)) for r in rows])
        qrels = read_qrels(data / name / "qrels" / "test.tsv")
        all_ids = json.loads((folder / "queries.json").read_text())
        keep = [i for i, q in enumerate(all_ids) if q in qrels]
        spans = json.loads((folder / "spans.json").read_text())
        return cls(
            name,
            np.load(folder / "chunks.npy"),
            chunk_doc,
            list(doc_index),
            np.load(folder / "queries.npy")[keep],
            [all_ids[i] for i in keep],
            qrels,
            np.load(folder / "spans.npy"),
            np.array([s["chunk"] for s in spans]),
            str(data / name),
        )

    def doc_sq_distances(self, queries: np.ndarray, chunks: np.ndarray, metric: str = "l2") -> np.ndarray:
        """(queries × documents) squared distance to each document's nearest chunk; cosine as L2 of unit vectors."""
        q = torch.as_tensor(queries, dtype=torch.float64)
        c = torch.as_tensor(chunks, dtype=torch.float64)
        if metric == "cosine":
            q, c = torch.nn.functional.normalize(q, dim=1), torch.nn.functional.normalize(c, dim=1)
        sq = torch.cdist(q, c).pow(2).numpy()
        order = np.argsort(self.chunk_doc, kind="stable")
        bounds = np.searchsorted(self.chunk_doc[order], np.arange(len(self.doc_ids) + 1))
        out = np.minimum.reduceat(sq[:, order], bounds[:-1], axis=1)
        if self.name in SELF_EXCLUDED:
            index = {d: i for i, d in enumerate(self.doc_ids)}
            for i, qid in enumerate(self.query_ids):
                if qid in index:
                    out[i, index[qid]] = np.inf
        return out

    def run(self, sq: np.ndarray) -> dict:
        top = np.argsort(sq, axis=1)[:, :DEPTH]
        return {qid: {self.doc_ids[j]: float(-sq[i, j]) for j in top[i]} for i, qid in enumerate(self.query_ids)}

    def quality(self, queries: np.ndarray, chunks: np.ndarray, metric: str = "l2") -> dict[str, float]:
        return retrieval_metrics(self.run(self.doc_sq_distances(queries, chunks, metric)), self.qrels)


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def default_head() -> torch.nn.Module:
    folder = default_model_path()
    spec = HeadSpec.from_dict(json.loads((folder / "config.json").read_text())["head"])
    head = build_head(spec)
    head.load_state_dict(load_file(folder / "head.safetensors"))
    return head.eval()


def bm25(c: Cached, cache: Path) -> dict[str, float]:
    """bm25s (English stop words, Snowball) over the chunks; a document scores as its best chunk."""
    import bm25s
    import Stemmer

    texts = [json.loads(line)["text"] for line in (cache / c.name / "chunks.jsonl").open()]
    query_text = {row["_id"]: row["text"] for row in map(json.loads, (Path(c.qrels_dir) / "queries.jsonl").open())}
    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    tokens = bm25s.tokenize([query_text[q] for q in c.query_ids], stopwords="en", stemmer=stemmer, show_progress=False)
    indices, scores = retriever.retrieve(tokens, k=len(texts), show_progress=False)
    sq = np.full((len(c.query_ids), len(c.doc_ids)), np.inf)
    for i in range(len(c.query_ids)):
        np.minimum.at(sq[i], c.chunk_doc[indices[i]], -scores[i])
    return retrieval_metrics(c.run(sq), c.qrels)


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Probability that a random relevant pair outscores a random non-relevant one (ties count half)."""
    from scipy.stats import rankdata

    labels = labels.astype(bool)
    if labels.all() or not labels.any():
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - labels.sum() * (labels.sum() + 1) / 2) / (labels.sum() * (~labels).sum()))


def sigma_softmax_auc(sq: np.ndarray, relevant: np.ndarray, calibration_depth: int = 10, folds: int = 2) -> float:
    """AUC of the calibrated-σ softmax P(hit) = softmax(−d² / 2σ²) over each query's candidates, pooled.

    None of the five collections has dev queries, so σ is cross-fitted: fitted (``fit_sigma``, the
    log loss ``ragcun calibrate`` minimises, on each query's top ``calibration_depth``) on the other
    folds' queries, then applied to this fold's. ``sq``, ``relevant``: (queries × candidates), nearest first.
    """
    fold = np.arange(len(sq)) % folds
    probabilities = np.empty_like(sq)
    for f in range(folds):
        train, test = fold != f, fold == f
        if not relevant[train, :calibration_depth].any():
            return float("nan")
        sigma, _ = fit_sigma(np.sqrt(sq[train, :calibration_depth]), relevant[train, :calibration_depth])
        probabilities[test] = gaussian_probabilities(np.sqrt(sq[test]), sigma)
    return auc(probabilities.ravel(), relevant.ravel())


def law_figures(c: Cached, head: torch.nn.Module, others: dict[str, np.ndarray], alpha: float = 0.05) -> dict:
    """The N(0, I) law in the adapted space: p-value AUC against qrels (next to the σ-softmax's), abstention.

    ``others``: base embeddings of questions this collection does not answer (other collections'
    queries, general questions), by source name. Queries go through the head's query map.
    """
    queries_of = query_map(head)
    z_docs, z_queries = apply_head(head, c.chunks), apply_head(queries_of, c.queries)
    k = z_docs.shape[1]
    sq = c.doc_sq_distances(z_queries, z_docs)
    top = np.argsort(sq, axis=1)[:, :DEPTH]
    rows = np.arange(len(sq))[:, None]
    top_sq = sq[rows, top]
    index = {d: j for j, d in enumerate(c.doc_ids)}
    relevant = np.zeros_like(top_sq, dtype=bool)
    for i, qid in enumerate(c.query_ids):
        for doc, grade in c.qrels.get(qid, {}).items():
            if grade > 0 and doc in index:
                relevant[i] |= top[i] == index[doc]
    q_sq = (z_queries**2).sum(1, keepdims=True)
    p_cond = chance_p_values(top_sq, k, q_sq)
    p_plain = chance_p_values(top_sq, k)

    def abstains(z_q: np.ndarray) -> np.ndarray:
        nearest = c.doc_sq_distances(z_q, z_docs).min(1)
        return best_of_n_p_value(chance_p_values(nearest, k, (z_q**2).sum(1)), len(c.doc_ids)) > alpha

    figures = {
        "auc_p_conditional": auc(-p_cond.ravel(), relevant.ravel()),
        "auc_p_unconditional": auc(-p_plain.ravel(), relevant.ravel()),
        "auc_distance": auc(-top_sq.ravel(), relevant.ravel()),
        "auc_sigma_softmax": sigma_softmax_auc(top_sq, relevant),
        "abstain_own": float(abstains(z_queries).mean()),
    }
    for source, x in others.items():
        figures[f"abstain_{source}"] = float(abstains(apply_head(queries_of, x)).mean())
    return figures


def ingest_rate(cache: Path, name: str, sample: int = 128) -> float:
    """Chunks per second the base encoder embeds, on the first ``sample`` chunks of ``name`` (ingest's cost)."""
    from ragcun.model import GaussianEmbedder

    texts = [json.loads(line)["text"] for line in (cache / name / "chunks.jsonl").open()][:sample]
    model = GaussianEmbedder(head="identity", device="cpu")
    started = time.perf_counter()
    model.encode(texts, batch_size=32, show_progress_bar=False)
    return len(texts) / (time.perf_counter() - started)


def time_ingest_and_adapt(corpus: Path, name: str) -> dict:
    """``ragcun ingest CORPUS --adapt`` in a fresh home, end to end: its ingest and adapt wall times, and the load.

    The CLI's own figures (``ingest_seconds``, ``adapt_seconds`` of ``IngestAdaptResult``) time the
    two phases of the same process; the load average before and after says how busy the machine was.
    """
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    cli = shutil.which("ragcun") or str(Path(sys.executable).with_name("ragcun"))
    with tempfile.TemporaryDirectory() as home:
        subprocess.run([cli, "--home", home, "init"], check=True, capture_output=True)
        load_before = os.getloadavg()
        started = time.perf_counter()
        done = subprocess.run(
            [cli, "--home", home, "ingest", str(corpus), "-c", name, "--adapt", "--json"],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        if done.returncode not in (0, 3):  # 3: the gate refused (the candidate is still fitted and timed)
            raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "ingest --adapt failed")
        result = json.loads(done.stdout)
    adapt = result["adapt"]
    return {
        "corpus": str(corpus),
        "chunks": adapt["chunks"],
        "ingest_seconds": result["ingest_seconds"],
        "adapt_seconds": result["adapt_seconds"],
        "adapt_to_ingest": result["adapt_to_ingest"],
        "adapt_breakdown": adapt["seconds"],
        "passed": adapt["passed"],
        "reason": adapt["reason"],
        "process_seconds": wall,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "cpus": os.cpu_count(),
    }


def evaluate(c: Cached, cache: Path, config: AdaptConfig, others: dict[str, np.ndarray]) -> dict:
    rows = {}
    rows["base cosine"] = {
        **c.quality(c.queries, c.chunks, "cosine"),
        **prefixed(isotropy(unit_rows(c.chunks)), "doc"),
        **prefixed(isotropy(unit_rows(c.queries)), "query"),
    }
    rows["BM25"] = bm25(c, cache)
    head = default_head()
    rows["default"] = {
        **c.quality(apply_head(head, c.queries), apply_head(head, c.chunks)),
        **prefixed(isotropy(apply_head(head, c.chunks)), "doc"),
        **prefixed(isotropy(apply_head(head, c.queries)), "query"),
    }
    for method, recipe in (("adapted", config), ("previous", PREVIOUS)):
        started = time.perf_counter()
        spec, adapted, metrics = fit(c.chunks, recipe, c.spans, c.span_chunk)
        seconds = time.perf_counter() - started
        queries = apply_head(query_map(adapted), c.queries)
        rows[method] = {
            **c.quality(queries, apply_head(adapted, c.chunks)),
            **prefixed(metrics["chunks_isotropy"], "doc"),
            **prefixed(isotropy(queries), "query"),
            "k": spec.out_dim,
            "gamma": metrics["gamma"],
            "seconds": seconds,
        }
        if method == "adapted":
            rows[method]["gate"] = acceptance_gate(c.chunks, adapted, head, c.spans, c.span_chunk).to_dict()
            rows[method]["law"] = law_figures(c, adapted, others)
    return rows


def prefixed(figures: dict, prefix: str) -> dict:
    return {f"{prefix}_{k}": v for k, v in figures.items() if k in ("effective_rank", "sigreg")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, required=True, help="base-embedding cache (built here with --build)")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "datasets")
    parser.add_argument("--build", action="store_true", help="build the cache from --data first (encodes everything)")
    parser.add_argument("--names", nargs="*", default=list(NAMES))
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--no-ingest-rate", action="store_true", help="skip timing the encoder (ingest's cost)")
    parser.add_argument(
        "--time-corpus",
        type=Path,
        help="only time `ragcun ingest CORPUS --adapt` end to end in a fresh home (e.g. SciFact's 9,664 chunks)",
    )
    args = parser.parse_args()
    if args.time_corpus:
        timing = time_ingest_and_adapt(args.time_corpus, args.time_corpus.parent.name or "timed")
        print(json.dumps(timing, indent=1, default=float))
        if args.json:
            args.json.write_text(json.dumps(timing, indent=1, default=float))
        return
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(2)
    if args.build:
        import subprocess
        import sys

        subprocess.run(
            [
                sys.executable,
                str(Path(__file__).with_name("adapt_cache.py")),
                "--data",
                str(args.data),
                "--out",
                str(args.cache),
                "--names",
                *args.names,
            ],
            check=True,
        )
    names = [n for n in args.names if (args.cache / n / "chunks.npy").exists()]
    collections = {n: Cached.load(args.cache, args.data, n) for n in names}
    rate = None if args.no_ingest_rate else ingest_rate(args.cache, names[0])
    offtopic = np.load(args.cache / "offtopic.npy")
    results = {}
    for name, c in collections.items():
        # every other cached collection's queries, whether or not it is in --names
        other = [
            np.load(args.cache / m / "queries.npy")
            for m in NAMES
            if m != name and (args.cache / m / "queries.npy").exists()
        ]
        others = {"other": np.concatenate(other) if other else offtopic[:0], "offtopic": offtopic}
        results[name] = evaluate(c, args.cache, AdaptConfig(), others)
        results[name]["chunks"] = len(c.chunks)
        results[name]["ingest_seconds"] = len(c.chunks) / rate if rate else None
        print_rows(name, results[name], flush=True)
    print_law(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))


def print_rows(name: str, rows: dict, flush: bool = False) -> None:
    if not getattr(print_rows, "header", False):
        print(
            "| collection | method | nDCG@10 | Recall@100 | docs eff. rank / dim | docs SIGReg "
            "| queries eff. rank / dim "
            "| queries SIGReg | adapt s (ingest s) |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        print_rows.header = True
    for method in ("base cosine", "BM25", "default", "previous", "adapted"):
        r = rows[method]
        iso = " | ".join(
            f"{r[k]:.2f}" if k in r else "–"
            for k in ("doc_effective_rank", "doc_sigreg", "query_effective_rank", "query_sigreg")
        )
        time_cell = "–"
        if method in ("adapted", "previous"):
            ingest = rows.get("ingest_seconds")
            time_cell = f"{r['seconds']:.1f}" + (f" ({ingest:.0f})" if ingest else "")
            method = f"{method} (k {r['k']}, γ {r['gamma']:.2f})"
        print(f"| {name} | {method} | {r['ndcg@10']:.3f} | {r['recall@100']:.3f} | {iso} | {time_cell} |", flush=flush)


def print_law(results: dict) -> None:
    print(
        "\n| collection | gate | AUC p (cond.) | AUC p (2χ²) | AUC distance | AUC σ-softmax (2-fold) "
        "| abstain: own | other colls | off-topic |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, rows in results.items():
        g, law = rows["adapted"]["gate"], rows["adapted"]["law"]
        print(
            f"| {name} | {'pass' if g['passed'] else 'FAIL'}: {g['reason']} | {law['auc_p_conditional']:.3f} | "
            f"{law['auc_p_unconditional']:.3f} | {law['auc_distance']:.3f} | {law['auc_sigma_softmax']:.3f} | "
            f"{law['abstain_own']:.2f} | {law['abstain_other']:.2f} | {law['abstain_offtopic']:.2f} |"
        )


if __name__ == "__main__":
    main()
