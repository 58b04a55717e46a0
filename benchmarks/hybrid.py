"""Hybrid search measured: quality on five BEIR collections, and latency and filtered recall at 100,000 points.

``quality``: nDCG@10 and Recall@100 of dense, bm25 and hybrid (RRF and DBSF) on scifact, cranfield,
medline, cisi and adi, for three dense spaces: the default model, the base encoder by cosine and by
raw L2. The base embeddings come from the shared cache (/work/scratch/adapt/emb, built by
``benchmarks/adapt_cache.py``: the same chunks ``ragcun ingest`` makes); the default model's vectors
are its head applied to them. Every chunk is upserted into a real qdrant-edge collection (dense +
BM25 sparse vectors, made by ragcun's write path) and every query goes through
:func:`ragcun.retrieve.base.search_vector`, the library's one search path (exact dense search). A
document scores as its best chunk among the top 200 chunks.

``latency``: 100,000 points drawn from the Gaussian mixture of ``benchmarks/search.py`` (fitted to the
default model's vectors of SciFact passages), each with a generated text (words drawn from the SciFact
vocabulary by Zipf frequency) for BM25, and a ``metadata.bucket`` that a filter matches 1% of. p50/p95
latency of dense, bm25 and hybrid queries with and without the filter (HNSW, one thread, warm), and
filtered recall@10 of HNSW against exact filtered search.

Usage: python benchmarks/hybrid.py quality [--cache DIR] [--data DIR] [--sets adi,cisi]
       python benchmarks/hybrid.py latency [--points 100000]
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np

from ragcun.beir import read_qrels, read_queries
from ragcun.evaluation.metrics import mean_metrics, per_query_metrics
from ragcun.retrieve.base import search_vector
from ragcun.retrieve.filters import parse_filter
from ragcun.store import CollectionParams, EdgeStore

CACHE = Path("/work/scratch/adapt/emb")
DATA = Path("/work/shared/datasets")
SETS = ("scifact", "cranfield", "medline", "cisi", "adi")
SELF_EXCLUDED = ("scifact",)  # BEIR rule: a corpus that contains its queries never returns the query itself
CHUNK_DEPTH = 200
RUNS = (
    ("dense", "dense", "rrf"),
    ("bm25", "bm25", "rrf"),
    ("hybrid-rrf", "hybrid", "rrf"),
    ("hybrid-dbsf", "hybrid", "dbsf"),
)

logger = logging.getLogger("hybrid")


def point_ids(n: int, start: int = 0) -> list[str]:
    return [str(uuid.UUID(int=i + 1)) for i in range(start, start + n)]


def spaces(base: np.ndarray, queries: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(chunk vectors, query vectors) of each dense space."""
    import torch

    from ragcun.model import GaussianEmbedder, default_model_path

    embedder = GaussianEmbedder.load(default_model_path())
    with torch.inference_mode():
        head = [embedder.head(torch.as_tensor(x)).float().numpy() for x in (base, queries)]

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return {"default model": (head[0], head[1]), "base cosine": (unit(base), unit(queries)), "base L2": (base, queries)}


def quality_set(name: str, cache: Path, data: Path, root: Path) -> list[dict]:
    rows = [json.loads(line) for line in (cache / name / "chunks.jsonl").open()]
    base = np.load(cache / name / "chunks.npy")
    query_ids = json.loads((cache / name / "queries.json").read_text())
    qrels = read_qrels(data / name / "qrels" / "test.tsv")
    texts = read_queries(data / name / "queries.jsonl")
    keep = [i for i, q in enumerate(query_ids) if q in qrels]
    queries = np.load(cache / name / "queries.npy")[keep]
    query_ids = [query_ids[i] for i in keep]
    results = []
    for space, (chunks, query_vectors) in spaces(base, queries).items():
        store = EdgeStore(root / f"{name}-{space.replace(' ', '-')}")
        try:
            store.create_collection("c", CollectionParams(dim=chunks.shape[1]))
            payloads = [
                {"doc_id": r["doc_id"], "text": r["text"], "norm": float(np.linalg.norm(v))}
                for r, v in zip(rows, chunks, strict=True)
            ]
            store.upsert("c", point_ids(len(rows)), chunks, payloads)
            store.optimize("c")
            for label, mode, fusion in RUNS:
                if mode == "bm25" and space != "default model":
                    continue  # the same for every space
                run: dict[str, dict[str, float]] = {}
                for qid, vector in zip(query_ids, query_vectors, strict=True):
                    hits = search_vector(
                        store, "c", vector, CHUNK_DEPTH, text=texts[qid], mode=mode, fusion=fusion, exact=True
                    )
                    docs: dict[str, float] = {}
                    for rank, hit in enumerate(hits):
                        if name in SELF_EXCLUDED and hit.doc_id == qid:
                            continue
                        docs.setdefault(hit.doc_id, float(CHUNK_DEPTH - rank))
                    run[qid] = docs
                means = mean_metrics(per_query_metrics(run, qrels))
                results.append(
                    {
                        "set": name,
                        "space": "-" if mode == "bm25" else space,
                        "method": label,
                        "ndcg@10": means["ndcg@10"],
                        "recall@100": means["recall@100"],
                    }
                )
                logger.info("%s", results[-1])
        finally:
            store.close()
    return results


def quality(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="hybrid-quality-"))
    results = []
    try:
        for name in args.sets.split(","):
            if not (args.cache / name / "chunks.npy").exists():
                logger.warning("%s: no cached chunk embeddings in %s; skipped", name, args.cache)
                continue
            results += quality_set(name, args.cache, args.data, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print_quality(results)


def print_quality(results: list[dict]) -> None:
    sets = list(dict.fromkeys(r["set"] for r in results))
    print("| space | method | " + " | ".join(f"{s} nDCG@10 / R@100" for s in sets) + " | mean nDCG@10 |")
    print("|---|---|" + "---|" * (len(sets) + 1))
    keys = list(dict.fromkeys((r["space"], r["method"]) for r in results))
    for space, method in keys:
        cells = []
        scores = []
        for s in sets:
            row = next((r for r in results if (r["set"], r["space"], r["method"]) == (s, space, method)), None)
            cells.append(f"{row['ndcg@10']:.3f} / {row['recall@100']:.3f}" if row else "")
            if row:
                scores.append(row["ndcg@10"])
        print(f"| {space} | {method} | " + " | ".join(cells) + f" | {np.mean(scores):.3f} |")


# ---- latency at 100,000 points ----------------------------------------------------------------------


def vocabulary(data: Path) -> tuple[list[str], np.ndarray]:
    """SciFact's words and their frequencies (the generated texts draw from them)."""
    counts: Counter[str] = Counter()
    with (data / "scifact" / "corpus.jsonl").open() as corpus:
        for line in corpus:
            counts.update(re.findall(r"[a-z]{3,}", json.loads(line)["text"].lower()))
    words, freq = zip(*counts.most_common(20000), strict=True)
    p = np.array(freq, dtype=np.float64)
    return list(words), p / p.sum()


def percentile_ms(times: list[float], q: float) -> float:
    return float(np.percentile(np.array(times) * 1000, q))


def latency(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from search import Mixture

    rng = np.random.default_rng(0)
    # The default model's vectors of SciFact passages: its head over the cached base embeddings of
    # 6,000 chunk spans (the same mapping as encoding them, without re-running the encoder).
    spans = np.load(args.cache / "scifact" / "spans.npy")
    real = spaces(spans[:1], spans)["default model"][1]
    mixture = Mixture(real, components=64)
    vectors = mixture.sample(args.points, rng).astype(np.float32)
    queries = mixture.sample(args.queries, rng).astype(np.float32)
    words, p = vocabulary(args.data)
    lengths = rng.integers(40, 160, size=args.points)
    # Every generated word at once (one sampling pass), then cut into texts.
    drawn = np.array(words)[rng.choice(len(words), size=int(lengths.sum()), p=p)]
    ends = np.cumsum(lengths)
    root = Path(tempfile.mkdtemp(prefix="hybrid-latency-"))
    store = EdgeStore(root)
    try:
        store.create_collection("c", CollectionParams(dim=vectors.shape[1]))
        store.create_index("c", "metadata.bucket", "integer")  # the values are ints
        start = time.perf_counter()
        for i in range(0, args.points, 2048):
            n = min(2048, args.points - i)
            texts = [" ".join(drawn[ends[i + j] - lengths[i + j] : ends[i + j]]) for j in range(n)]
            payloads = [
                {
                    "doc_id": f"d{i + j}",
                    "text": t,
                    "norm": float(np.linalg.norm(vectors[i + j])),
                    "metadata": {"bucket": int((i + j) % 100)},
                }
                for j, t in enumerate(texts)
            ]
            store.upsert("c", point_ids(n, i), vectors[i : i + n], payloads)
        load_s = time.perf_counter() - start
        start = time.perf_counter()
        store.optimize("c")
        build_s = time.perf_counter() - start
        query_texts = [" ".join(rng.choice(words[:5000], size=rng.integers(3, 9))) for _ in range(args.queries)]
        rows = []
        # Parsed as collection search parses it: following the integer index, so the engine plans with it.
        for where in (None, parse_filter("metadata.bucket=7", {"metadata.bucket": "integer"})):
            for mode in ("dense", "bm25", "hybrid"):
                for v, t in zip(queries[:10], query_texts[:10], strict=True):  # warm up
                    search_vector(store, "c", v, 10, text=t, mode=mode, filter=where)
                times, recalls = [], []
                for v, t in zip(queries, query_texts, strict=True):
                    start = time.perf_counter()
                    hits = search_vector(store, "c", v, 10, text=t, mode=mode, filter=where)
                    times.append(time.perf_counter() - start)
                    if where is not None and mode == "dense":
                        exact = search_vector(store, "c", v, 10, filter=where, exact=True)
                        truth = {h.chunk_id for h in exact}
                        recalls.append(len(truth & {h.chunk_id for h in hits}) / max(len(truth), 1))
                rows.append(
                    {
                        "mode": mode,
                        "filter": "metadata.bucket=7" if where is not None else "-",
                        "p50_ms": percentile_ms(times, 50),
                        "p95_ms": percentile_ms(times, 95),
                        "recall@10": float(np.mean(recalls)) if recalls else None,
                    }
                )
                logger.info("%s", rows[-1])
    finally:
        store.close()
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"{args.points} points, dim {vectors.shape[1]}; upsert {load_s:.0f} s, optimize {build_s:.0f} s; "
        f"{args.queries} queries, top 10, one thread"
    )
    print("| mode | filter (1%) | p50 ms | p95 ms | filtered recall@10 vs exact |")
    print("|---|---|---|---|---|")
    for r in rows:
        recall = f"{r['recall@10']:.3f}" if r["recall@10"] is not None else ""
        print(f"| {r['mode']} | {r['filter']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {recall} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--cache", type=Path, default=CACHE)
    q.add_argument("--data", type=Path, default=DATA)
    q.add_argument("--sets", default=",".join(SETS))
    q.add_argument("--json")
    q.set_defaults(run=quality)
    lat = sub.add_parser("latency")
    lat.add_argument("--data", type=Path, default=DATA)
    lat.add_argument("--cache", type=Path, default=CACHE)
    lat.add_argument("--points", type=int, default=100_000)
    lat.add_argument("--queries", type=int, default=200)
    lat.add_argument("--json")
    lat.set_defaults(run=latency)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.run(args)


if __name__ == "__main__":
    main()
