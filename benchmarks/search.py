"""Vector search at scale: the embedded engine (qdrant-edge HNSW) against exact FAISS and qdrant-client local mode.

Uniform random points in high dimension have no meaningful neighbours, so vectors and queries are
drawn from a Gaussian mixture fitted to real embeddings (the default model on a BEIR corpus), with
full covariances so that samples span as few dimensions locally as the real embeddings do: the
LID column, against the real data's in the header. Two harder-than-real rows follow: a mixture with
diagonal covariances (about twice the real LID) and pure N(0, I), the worst case for any index.
Every point carries a payload like an ingested chunk's.

Prints one table with, per data set and size: local intrinsic dimension, upsert points/s, index
build time, single-query latency p50/p99 (one thread, warm index), recall@10 against exact
``faiss.IndexFlatL2``, FAISS exact latency for the same queries, and peak resident memory of the
process so far.

Usage: python benchmarks/search.py [--sizes 100000,1000000] [--data ../shared/datasets/scifact]
"""

from __future__ import annotations

import argparse
import logging
import resource
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import faiss
import numpy as np
from common import DEFAULT_DATA

from ragcun.beir import read_corpus
from ragcun.evaluation.stats import LID_NEIGHBOURS, local_intrinsic_dim
from ragcun.settings import HNSW_EF_CONSTRUCT, HNSW_M
from ragcun.store import ClientStore, CollectionParams, EdgeStore, VectorStore

CACHE = Path.home() / ".cache" / "ragcun-bench"
TOP_K = 10


def real_embeddings(data: Path, model_dir: Path | None) -> np.ndarray:
    """The default model's embeddings of a BEIR corpus, cached by model fingerprint."""
    from ragcun.model import GaussianEmbedder, default_model_path

    embedder = GaussianEmbedder.load(model_dir or default_model_path())
    cache = CACHE / f"{data.name}-{embedder.fingerprint[:16]}.npy"
    if cache.exists():
        return np.load(cache)
    vectors = embedder.encode([doc.content for doc in read_corpus(data)], show_progress_bar=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return vectors


class Mixture:
    """A Gaussian mixture fitted to real embeddings: k-means assignments, per-component means.

    ``covariance="full"``: each component's covariance is its members' empirical covariance plus
    ``ridge`` times the data's mean per-dimension variance (shrinkage, since a component has far
    fewer members than dimensions). A sample is ``mean + Z @ (members - mean) / sqrt(n - 1) + e``
    with ``Z ~ N(0, I_n)``, ``e ~ N(0, ridge * var * I)``, which has exactly that covariance
    without forming it. This keeps the correlations between dimensions, so samples lie near a
    low-dimensional patch around each centre the way real embeddings do.

    ``covariance="diag"``: per-dimension variances only. It drops those correlations and fills
    every dimension, which roughly doubles the local intrinsic dimension of the real data: a
    harder-than-real case, reported as its own row.
    """

    def __init__(self, x: np.ndarray, components: int, covariance: str = "full", ridge: float = 0.1, seed: int = 0):
        x = x.astype(np.float32)
        kmeans = faiss.Kmeans(x.shape[1], components, niter=25, seed=seed, verbose=False)
        kmeans.train(x)
        _, assign = kmeans.index.search(x, 1)
        members = [x[assign[:, 0] == c] for c in range(components)]
        self.covariance = covariance
        self.weights = np.array([len(m) for m in members], dtype=np.float64) / len(x)
        self.means = np.stack([m.mean(axis=0) if len(m) else kmeans.centroids[c] for c, m in enumerate(members)])
        self.ridge_std = float(np.sqrt(ridge * x.var(axis=0).mean()))
        self.deviations = [m - mean for m, mean in zip(members, self.means, strict=True)]
        global_std = x.std(axis=0)
        # Components with too few members to estimate a spread borrow the global one, shrunk.
        self.stds = np.stack([m.std(axis=0) if len(m) >= 5 else 0.5 * global_std for m in members])

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        component = rng.choice(len(self.weights), size=n, p=self.weights)
        out = rng.standard_normal((n, self.means.shape[1]), dtype=np.float32)
        if self.covariance == "diag":
            return self.means[component] + out * self.stds[component]
        out *= self.ridge_std
        out += self.means[component]
        for c in np.unique(component):
            rows = np.flatnonzero(component == c)
            deviations = self.deviations[c]
            z = rng.standard_normal((len(rows), len(deviations)), dtype=np.float32)
            out[rows] += z @ deviations / np.sqrt(max(len(deviations) - 1, 1))
        return out


def payloads(start: int, n: int, vectors: np.ndarray) -> list[dict]:
    norms = np.linalg.norm(vectors, axis=1)
    return [
        {
            "doc_id": f"doc-{start + i}",
            "chunk": 0,
            "text": f"synthetic passage {start + i} " * 8,
            "norm": float(norms[i]),
            "source": "bench",
            "model_version": "bench",
        }
        for i in range(n)
    ]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load(store: VectorStore, name: str, base: np.ndarray, params: CollectionParams, batch: int = 2048) -> dict:
    """Upsert every vector with its payload, then build the index; returns points/s and build seconds."""
    store.create_collection(name, params)
    start = time.perf_counter()
    for i in range(0, len(base), batch):
        chunk = base[i : i + batch]
        ids = [str(uuid.UUID(int=j + 1)) for j in range(i, i + len(chunk))]
        store.upsert(name, ids, chunk, payloads(i, len(chunk), chunk))
    upsert = time.perf_counter() - start
    start = time.perf_counter()
    store.optimize(name)
    return {"upsert": len(base) / upsert, "build": time.perf_counter() - start}


def query(store: VectorStore, name: str, queries: np.ndarray, truth: np.ndarray, hnsw_ef: int | None) -> dict:
    """Single-query latency percentiles and recall@10 against the exact neighbours."""
    # One untimed pass first: right after a build the index pages are cold, and a service answers
    # from a warm index. The first ef timed would otherwise carry the page faults alone.
    for q in queries:
        store.search(name, q, TOP_K, hnsw_ef=hnsw_ef)
    latencies, found = [], []
    for q in queries:
        start = time.perf_counter()
        hits = store.search(name, q, TOP_K, hnsw_ef=hnsw_ef)
        latencies.append(time.perf_counter() - start)
        found.append([uuid.UUID(h.id).int - 1 for h in hits])
    recall = np.mean([len(set(f) & set(t)) / TOP_K for f, t in zip(found, truth, strict=True)])
    return {"p50": 1e3 * np.percentile(latencies, 50), "p99": 1e3 * np.percentile(latencies, 99), "recall": recall}


def exact(base: np.ndarray, queries: np.ndarray) -> dict:
    """Exact neighbours by ``faiss.IndexFlatL2``: the top-10 truth, latency percentiles, and LID.

    It asks for LID_NEIGHBOURS neighbours, not 10, so the same pass also gives the local intrinsic
    dimension; a flat scan's cost is the distances, whatever k.
    """
    index = faiss.IndexFlatL2(base.shape[1])
    index.add(base)
    latencies, distances, truth = [], [], []
    for q in queries:
        start = time.perf_counter()
        found, ids = index.search(q[None, :], LID_NEIGHBOURS)
        latencies.append(time.perf_counter() - start)
        distances.append(found[0])
        truth.append(ids[0, :TOP_K])
    return {
        "truth": np.array(truth),
        "p50": 1e3 * np.percentile(latencies, 50),
        "p99": 1e3 * np.percentile(latencies, 99),
        "lid": local_intrinsic_dim(np.array(distances)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="BEIR folder the mixture is fitted to")
    parser.add_argument("--model", type=Path, help="model directory (default: the default model)")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--components", type=int, default=256)
    parser.add_argument("--ridge", type=float, default=0.1, help="covariance shrinkage, times the mean variance")
    parser.add_argument("--m", type=int, default=HNSW_M)
    parser.add_argument("--ef-construct", type=int, default=HNSW_EF_CONSTRUCT)
    parser.add_argument(
        "--ef", default="64,128,256,512,1024", help="search-time hnsw_ef values, comma-separated (one row each)"
    )
    parser.add_argument("--local-max", type=int, default=100_000, help="largest size also run on local mode")
    parser.add_argument("--no-hard-rows", action="store_true", help="skip the diagonal-mixture and N(0, I) rows")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    faiss.omp_set_num_threads(1)  # single-thread latency for every engine

    rng = np.random.default_rng(0)
    real = real_embeddings(args.data, args.model)
    dim = real.shape[1]
    datasets = [("mixture", Mixture(real, args.components, "full", args.ridge).sample)]
    if not args.no_hard_rows:
        datasets.append(("diagonal mixture", Mixture(real, args.components, "diag").sample))
        datasets.append(("N(0, I)", lambda n, r: r.standard_normal((n, dim), dtype=np.float32)))
    # Fidelity: the LID estimate depends on N, so compare each data set with the real embeddings
    # at the real corpus's size (held-out real vectors as queries).
    held_out = rng.permutation(len(real))[: args.queries]
    fidelity = [f"real {exact(np.delete(real, held_out, axis=0), real[held_out])['lid']:.1f}"]
    for label, draw in datasets:
        sample = draw(len(real), rng).astype(np.float32)
        fidelity.append(f"{label} {exact(sample[args.queries :], sample[: args.queries])['lid']:.1f}")
    efs = [int(ef) for ef in args.ef.split(",")]
    params = CollectionParams(dim=dim, hnsw_m=args.m, hnsw_ef_construct=args.ef_construct, hnsw_ef=efs[0])
    sizes = [int(s) for s in args.sizes.split(",")]

    print(
        f"dim {dim}, {args.queries} queries, top {TOP_K}, HNSW m={args.m} ef_construct={args.ef_construct}; "
        f"mixtures of {args.components} Gaussians fitted to {len(real):,} real embeddings; local intrinsic "
        f"dimension (LID, {LID_NEIGHBOURS} neighbours) at that size: {', '.join(fidelity)}"
    )
    print(
        "| data | N | LID | engine | hnsw_ef | upsert pts/s | build s | p50 ms | p99 ms | recall@10 "
        "| FAISS exact p50 / p99 ms | p50 vs FAISS | peak RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label, draw in datasets:
        for n in sizes:
            if label != "mixture" and n != sizes[0]:
                continue  # one row per harder-than-real data set is enough
            base, queries = draw(n, rng).astype(np.float32), draw(args.queries, rng).astype(np.float32)
            truth = exact(base, queries)
            engines = [("edge", lambda folder: EdgeStore(folder))]
            if n <= args.local_max and label == "mixture":
                engines.append(("local", lambda folder: ClientStore.local_path(folder)))
            for engine, opener in engines:
                folder = Path(tempfile.mkdtemp(prefix=f"ragcun-bench-{engine}-"))
                try:
                    store = opener(folder)
                    loaded = load(store, "bench", base, params)
                    # Local mode is exact whatever the ef: one row is enough.
                    for ef in efs if engine == "edge" else efs[:1]:
                        row = {**loaded, **query(store, "bench", queries, truth["truth"], ef)}
                        print(
                            f"| {label} | {n:,} | {truth['lid']:.1f} | {engine} "
                            f"| {ef if engine == 'edge' else 'exact'} "
                            f"| {row['upsert']:,.0f} | {row['build']:.1f} | {row['p50']:.2f} | {row['p99']:.2f} "
                            f"| {row['recall']:.3f} | {truth['p50']:.2f} / {truth['p99']:.2f} "
                            f"| {row['p50'] / truth['p50']:.2f}x | {peak_rss_mib():,.0f} |",
                            flush=True,
                        )
                    store.close()
                finally:
                    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
