"""Exact top-k L2 search: FAISS ``IndexFlatL2`` against the numpy path of ``ragcun.store.memory``.

Both sides do what the in-memory retriever needs: the ``k`` nearest rows and their true distances,
recomputed in float64 for the winners (FAISS's own are float32 squared distances of the expansion
‖x‖² + ‖q‖² − 2x·q, as are numpy's). The numpy side is :func:`ragcun.store.memory.exact_nearest`:
one BLAS product and ``np.argpartition``. Vectors and queries are N(0, I) float32, the model's
target distribution; both sides get the same data in the same process, timed alternately so that
load from other processes falls on both.

Where ragcun searches exactly: the in-memory retriever (top-k of one query, or of a batch) is
this. ``ragcun eval`` is not: it needs every query-to-chunk distance (best chunk per document,
separation over all documents), a full matrix that a top-k index does not give any faster.

Prints one table: per corpus size and query batch, the median milliseconds per batch of each side
and their ratio (FAISS / numpy: below 1 means FAISS is faster), and whether both returned the same
neighbours.

Usage: python benchmarks/exact.py [--sizes 1000,10000,100000] [--dim 256] [--batches 1,100] [--k 10]

FAISS is not a ragcun dependency: ``pip install faiss-cpu`` (or ``faiss-gpu``) to run this.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np

from ragcun.store.memory import exact_nearest, rerank_exact


def faiss_nearest(index, vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """FAISS's candidates with their distances recomputed exactly, as ``GaussianRetriever`` used to do."""
    _, candidates = index.search(queries, k)
    return rerank_exact(vectors, queries, candidates)


def median_ms(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main() -> None:
    import faiss

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--batches", default="1,100", help="queries per search call, comma-separated")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--budget", type=float, default=2.0, help="seconds of timing per side and row (at least 5 runs)"
    )
    parser.add_argument("--threads", type=int, help="threads for both FAISS and numpy's BLAS (default: theirs)")
    args = parser.parse_args()

    from threadpoolctl import threadpool_info, threadpool_limits

    if args.threads:
        faiss.omp_set_num_threads(args.threads)
        threadpool_limits(args.threads)
    blas = ", ".join(
        f"{p['internal_api']} {p.get('version')} {p.get('architecture')} x{p['num_threads']}"
        for p in threadpool_info()
        if p["user_api"] == "blas"
    )
    rng = np.random.default_rng(0)
    print(
        f"dim {args.dim}, top {args.k}, N(0, I) float32; faiss {faiss.__version__} "
        f"({faiss.omp_get_max_threads()} threads); numpy {np.__version__}, BLAS: {blas}"
    )
    print("| corpus | batch | FAISS ms | numpy ms | FAISS / numpy | same neighbours |")
    print("|---|---|---|---|---|---|")
    for n in (int(s) for s in args.sizes.split(",")):
        vectors = rng.standard_normal((n, args.dim), dtype=np.float32)
        sq_norms = np.einsum("nd,nd->n", vectors, vectors)
        index = faiss.IndexFlatL2(args.dim)
        index.add(vectors)
        for batch in (int(b) for b in args.batches.split(",")):
            queries = rng.standard_normal((batch, args.dim), dtype=np.float32)
            ids_faiss, _ = faiss_nearest(index, vectors, queries, args.k)
            ids_numpy, _ = exact_nearest(vectors, sq_norms, queries, args.k)
            same = bool(np.array_equal(ids_faiss, ids_numpy))
            # One warm-up call each sized the repeats: as many as fit the budget, at least 5.
            start = time.perf_counter()
            faiss_nearest(index, vectors, queries, args.k)
            exact_nearest(vectors, sq_norms, queries, args.k)
            repeats = max(5, int(args.budget / max(time.perf_counter() - start, 1e-6)))
            faiss_ms, numpy_ms = [], []
            for _ in range(repeats):  # alternate, so background load falls on both sides alike
                faiss_ms.append(median_ms(partial(faiss_nearest, index, vectors, queries, args.k), 1))
                numpy_ms.append(median_ms(partial(exact_nearest, vectors, sq_norms, queries, args.k), 1))
            f, m = float(np.median(faiss_ms)), float(np.median(numpy_ms))
            print(f"| {n:,} | {batch} | {f:.3f} | {m:.3f} | {f / m:.2f} | {'yes' if same else 'no'} |", flush=True)


if __name__ == "__main__":
    main()
