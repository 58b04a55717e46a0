"""``ragcun serve`` under load: a real server process on 10,000 chunks, driven by 1, 4 and 16 clients.

Builds (once; the ingest is idempotent, so a rerun reuses it) a home whose collection ``bench`` holds
``--chunks`` short generated texts embedded by the default model, then:

1. in this process, ``ragcun.retrieve.search()`` single-threaded for ``--seconds``, in the main thread and
   in one worker thread: the faster is the baseline;
2. starts ``ragcun serve`` on the same home and, for each client count, keeps that many clients (threads,
   each with its own keep-alive connection) sending ``POST /collections/bench/search`` for ``--seconds``.

Prints one table: queries/s, its ratio to in-process, p50/p95/p99 latency, errors, and the mean
embedding batch the server formed (from its /metrics). Targets at 16 clients: throughput ≥ 0.7× the
in-process single-thread figure, p99 ≤ 10× p50, no errors. The clients share the machine's cores with
the server, as they would on one host; the load average before and after is printed with the table.

Usage: python benchmarks/serve.py [--chunks 10000] [--seconds 15] [--clients 1,4,16] [--home DIR]
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

CACHE = Path.home() / ".cache" / "ragcun-bench"
COLLECTION = "bench"
TOP_K = 10
# Texts are random strings of these words: short, so that the 10,000-chunk ingest is quick.
VOCABULARY = (
    "river mountain engine protein market signal forest theory library voltage glacier neuron harbor "
    "algorithm contract vaccine orbit quartz budget sonnet tariff enzyme bridge satellite pigment "
    "election fossil reactor cathedral monsoon ledger plasma vineyard compiler lantern tundra memo "
    "climate archive dialect turbine genome courier furnace mosaic asteroid tribunal meadow vector"
)


def generate(n: int, seed: int, words: int) -> list[str]:
    rng, words_of = random.Random(seed), VOCABULARY.split()
    return [" ".join(rng.choice(words_of) for _ in range(words)) for _ in range(n)]


def build_home(home: Path, chunks: int) -> None:
    """Collection ``bench`` of ``chunks`` short texts (one chunk each) embedded by the default model."""
    from ragcun.ingest import ingest
    from ragcun.model import GaussianEmbedder, default_model_path
    from ragcun.settings import Settings
    from ragcun.workspace import Workspace, init_home

    settings = Settings.from_env(home=home, environ={})
    init_home(settings)
    corpus = home.parent / f"corpus-{chunks}.jsonl"
    if not corpus.exists():
        rows = [{"id": f"c{i}", "text": text} for i, text in enumerate(generate(chunks, seed=1, words=12))]
        corpus.write_text("".join(json.dumps(row) + "\n" for row in rows))
    started = time.perf_counter()
    with Workspace(settings) as ws:
        result = ingest(ws, [corpus], COLLECTION, GaussianEmbedder.load(default_model_path()))
    print(f"ingest: {result.counts()} in {time.perf_counter() - started:.1f} s", flush=True)


def in_process(home: Path, queries: list[str], seconds: float, thread: bool) -> dict:
    """Single-thread ``search()`` on the home, warm (model loaded, first query done), in the main thread or
    in one worker thread: on a loaded machine torch's intra-op threads behave very differently in the two
    (measured here: 260 ms against 19 ms to encode one query), so both are measured and the faster is the
    baseline."""
    from ragcun.retrieve.collection import search
    from ragcun.settings import Settings
    from ragcun.workspace import Workspace

    latencies: list[float] = []
    elapsed = [0.0]

    def run() -> None:
        with Workspace(Settings.from_env(home=home, environ={})) as ws:
            search(ws, COLLECTION, queries[0], TOP_K)
            started = time.perf_counter()
            i = 0
            while time.perf_counter() - started < seconds:
                t = time.perf_counter()
                search(ws, COLLECTION, queries[i % len(queries)], TOP_K)
                latencies.append(time.perf_counter() - t)
                i += 1
            elapsed[0] = time.perf_counter() - started

    if thread:
        worker = threading.Thread(target=run)
        worker.start()
        worker.join()
    else:
        run()
    where = "one worker thread" if thread else "main thread"
    return summary(f"in-process search(), {where}", 1, latencies, elapsed[0], 0)


def start_server(home: Path, log: Path) -> tuple[subprocess.Popen, int]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RAGCUN_")}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "ragcun.cli", "--home", str(home), "serve", "--port", "0"],
            env=environ,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        found = re.search(r"Uvicorn running on http://[\d.]+:(\d+)", log.read_text(errors="replace"))
        if found:
            return process, int(found.group(1))
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"ragcun serve did not start:\n{log.read_text(errors='replace')}")


def post(connection: http.client.HTTPConnection, path: str, body: dict) -> tuple[int, bytes]:
    connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, response.read()


def drive(port: int, clients: int, queries: list[str], seconds: float) -> dict:
    """``clients`` threads, each sending searches back to back on its own connection for ``seconds``."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(n: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        rng = random.Random(n)
        start.wait()
        while time.perf_counter() < stop_at[0]:
            body = {"query": rng.choice(queries), "k": TOP_K}
            t = time.perf_counter()
            try:
                status, _ = post(connection, f"/collections/{COLLECTION}/search", body)
            except (OSError, http.client.HTTPException):
                status = 0
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            latencies[n].append(time.perf_counter() - t)
            errors[n] += status != 200
        connection.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.perf_counter() + seconds
    started = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return summary("ragcun serve", clients, [x for row in latencies for x in row], elapsed, sum(errors))


def summary(what: str, clients: int, latencies: list[float], elapsed: float, errors: int) -> dict:
    ms = np.asarray(latencies) * 1000
    return {
        "what": what,
        "clients": clients,
        "queries": len(latencies),
        "qps": len(latencies) / elapsed,
        "p50": float(np.percentile(ms, 50)),
        "p95": float(np.percentile(ms, 95)),
        "p99": float(np.percentile(ms, 99)),
        "errors": errors,
    }


def embed_batches(port: int) -> tuple[float, float]:
    """(sum, count) of the server's embedding batch sizes so far."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    found = {
        m.group(1): float(m.group(2)) for m in re.finditer(r"^ragcun_embed_batch_size_(sum|count) (\S+)$", text, re.M)
    }
    return found.get("sum", 0.0), found.get("count", 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=15.0, help="Measuring time per row.")
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--home", type=Path, help="Home to build or reuse (default: under ~/.cache/ragcun-bench).")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    home = (args.home or CACHE / f"serve-{args.chunks}" / "home").resolve()
    home.parent.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    build_home(home, args.chunks)
    queries = generate(500, seed=2, words=5)

    rows = [in_process(home, queries, args.seconds, thread) for thread in (False, True)]
    process, port = start_server(home, home.parent / "serve.log")
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        status, body = post(connection, f"/collections/{COLLECTION}/search", {"query": queries[0], "k": TOP_K})
        connection.close()
        if status != 200:
            raise SystemExit(f"warm-up search failed: {status} {body[:200]!r}")
        for clients in (int(c) for c in args.clients.split(",")):
            before = embed_batches(port)
            row = drive(port, clients, queries, args.seconds)
            after = embed_batches(port)
            row["batch"] = (after[0] - before[0]) / max(after[1] - before[1], 1)
            rows.append(row)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    load_after = os.getloadavg()

    base = max(rows[0]["qps"], rows[1]["qps"])  # the faster in-process figure is the baseline
    print(
        f"\n{args.chunks} chunks, top {TOP_K}, {args.seconds:.0f} s per row, {os.cpu_count()} cores; "
        f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f}\n"
    )
    print(
        "| what | clients | queries/s | × in-process | p50 ms | p95 ms | p99 ms | p99/p50 | errors | mean embed batch |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        batch = f"{r['batch']:.1f}" if "batch" in r else "1"
        print(
            f"| {r['what']} | {r['clients']} | {r['qps']:.1f} | {r['qps'] / base:.2f} | {r['p50']:.1f} | "
            f"{r['p95']:.1f} | {r['p99']:.1f} | {r['p99'] / r['p50']:.1f} | {r['errors']} | {batch} |"
        )
    last = rows[-1]
    verdict = last["qps"] >= 0.7 * base and last["p99"] <= 10 * last["p50"] and last["errors"] == 0
    print(
        f"\ntarget at {last['clients']} clients (≥ 0.7× in-process, p99 ≤ 10× p50, no errors): "
        f"{'met' if verdict else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
