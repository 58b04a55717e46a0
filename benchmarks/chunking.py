"""Structure-aware chunks against token windows: retrieval quality and ingest throughput, in one run.

    .venv/bin/python benchmarks/chunking.py [--data /work/shared/datasets] [--cache /work/scratch/adapt/emb]

Quality: nDCG@10 (pytrec_eval) of the base encoder (all-MiniLM-L6-v2, cosine; a document scores as
its best chunk) on each chunking of

* the five shared BEIR collections, with the default chunk size (the model's 256 - 2 tokens). Chunk
  texts that the base-embedding cache already holds (``--cache``, see its README) are not encoded
  again; only the new ones are. Where both chunkers give the same chunks for every document, the
  scores are the same by construction, and the table says so;
* the structured fixture corpus (tests/fixtures/structured: Markdown and HTML handbooks with tables,
  12 judged queries), also with the heading path prepended to the embedded text.

Throughput: the chunkers alone (documents per second of chunking, every document of every collection,
tokenization included), and a whole ``ingest()`` (read, chunk, embed, store) of the fixture corpus
plus the first ``--ingest-docs`` SciFact documents into a fresh home, for each chunker. Encoding
dominates a whole ingest; the chunking-only figure isolates what the chunker itself costs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ragcun.beir import read_qrels, read_queries
from ragcun.evaluation.metrics import mean_metrics, per_query_metrics
from ragcun.ingest.chunking import ChunkText, make_chunker
from ragcun.ingest.readers import SourceDocument, discover, read_source

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = ("adi", "cisi", "cranfield", "medline", "scifact")
FIXTURE = ROOT / "tests" / "fixtures" / "structured"
KINDS = ("tokens", "structure")


def documents(paths: list[Path]) -> list[SourceDocument]:
    return [d for path in paths for d in read_source(path) if isinstance(d, SourceDocument)]


def chunk_all(kind: str, tokenizer, docs: list[SourceDocument], max_tokens: int) -> tuple[list[list[ChunkText]], float]:
    chunker = make_chunker(kind, tokenizer, max_tokens, 32)
    started = time.perf_counter()
    chunks = [chunker.split(d.content) for d in docs]
    return chunks, time.perf_counter() - started


class Encoder:
    """Base-encoder embeddings (no Normalize) of texts, from the shared cache where it has them."""

    def __init__(self, base, cache: Path | None):
        self.base = base
        self.known: dict[str, np.ndarray] = {}
        self.encoded = 0
        if cache is not None and cache.is_dir():
            for folder in sorted(p for p in cache.iterdir() if (p / "chunks.jsonl").is_file()):
                vectors = np.load(folder / "chunks.npy")
                with (folder / "chunks.jsonl").open() as rows:
                    for row, vector in zip(rows, vectors, strict=False):
                        self.known[json.loads(row)["text"]] = vector

    def __call__(self, texts: list[str]) -> np.ndarray:
        new = sorted({t for t in texts if t not in self.known})
        if new:
            vectors = self.base.encode(new, batch_size=64, convert_to_numpy=True, show_progress_bar=False)
            self.known.update(zip(new, vectors, strict=False))
            self.encoded += len(new)
        return np.stack([self.known[t] for t in texts]).astype(np.float32)


def ndcg(
    encoder: Encoder,
    docs: list[SourceDocument],
    chunks: list[list[ChunkText]],
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    with_path: bool = False,
) -> float:
    texts, owner = [], []
    for i, doc_chunks in enumerate(chunks):
        for c in doc_chunks:
            texts.append(f"{c.heading_path}\n{c.text}" if with_path and c.heading_path else c.text)
            owner.append(i)
    judged = [q for q in queries if q in qrels]
    unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)  # noqa: E731
    scores = unit(encoder([queries[q] for q in judged])) @ unit(encoder(texts)).T
    per_doc = np.full((len(judged), len(docs)), -np.inf)
    np.maximum.at(per_doc.T, np.asarray(owner), scores.T)  # a document scores as its best chunk
    order = np.argsort(-per_doc, axis=1)[:, :100]
    run = {q: {docs[j].doc_id: float(per_doc[i, j]) for j in order[i]} for i, q in enumerate(judged)}
    return mean_metrics(per_query_metrics(run, qrels))["ndcg@10"]


def differing(a: list[list[ChunkText]], b: list[list[ChunkText]]) -> int:
    return sum([c.text for c in x] != [c.text for c in y] for x, y in zip(a, b, strict=False))


def fixture_docs() -> tuple[list[SourceDocument], dict[str, str], dict[str, dict[str, int]]]:
    docs = documents(discover([FIXTURE / "docs"]))
    # Judged by file name: the qrels name documents as the files they are.
    docs = [SourceDocument(Path(d.doc_id).name, d.text, d.title, d.metadata) for d in docs]
    return docs, read_queries(FIXTURE / "queries.jsonl"), read_qrels(FIXTURE / "qrels" / "test.tsv")


def ingest_throughput(embedder, data: Path, n_docs: int) -> dict[str, float]:
    from ragcun.ingest import IngestOptions, ingest
    from ragcun.settings import Settings
    from ragcun.workspace import Workspace, init_home

    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "scifact.jsonl"
        with (data / "scifact" / "corpus.jsonl").open() as source:
            corpus.write_text("".join(line for _, line in zip(range(n_docs), source, strict=False)))
        for kind in KINDS:
            settings = Settings.from_env(home=Path(tmp) / f"home-{kind}", environ={})
            init_home(settings)
            ws = Workspace(settings)
            try:
                started = time.perf_counter()
                result = ingest(
                    ws, [corpus, FIXTURE / "docs"], "bench", embedder, IngestOptions(chunking=kind, jsonl_format="beir")
                )
                seconds = time.perf_counter() - started
            finally:
                ws.close()
            rates[kind] = (result.added / seconds, result.chunks_written, seconds)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/datasets"), help="folder of BEIR folders")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path("/work/scratch/adapt/emb"),
        help="base-embedding cache of the shared collections (missing: everything is encoded)",
    )
    parser.add_argument("--ingest-docs", type=int, default=300, help="SciFact documents in the whole-ingest run")
    parser.add_argument("--only", choices=("quality", "throughput"), help="run one half of the benchmark")
    parser.add_argument(
        "--collections",
        default=",".join(COLLECTIONS),
        help="comma-separated shared collections to score ('' for the fixture corpus alone)",
    )
    args = parser.parse_args()

    from ragcun.model import GaussianEmbedder, default_model_path

    if args.only != "throughput":
        quality(args)
    if args.only != "quality":
        embedder = GaussianEmbedder.load(default_model_path())
        rates = ingest_throughput(embedder, args.data, args.ingest_docs)
        for kind, (rate, chunks, seconds) in rates.items():
            print(f"whole ingest, {kind}: {rate:.1f} docs/s ({chunks} chunks in {seconds:.1f} s)")
        print(f"whole-ingest ratio structure / tokens: {rates['structure'][0] / rates['tokens'][0]:.2f}")


def quality(args: argparse.Namespace) -> None:
    from ragcun.model.embedder import DEFAULT_BASE_MODEL, load_base_encoder

    base = load_base_encoder(DEFAULT_BASE_MODEL, device="cpu")
    tokenizer, max_tokens = base.tokenizer, base.max_seq_length - 2
    encoder = Encoder(base, args.cache)
    print(f"chunk size {max_tokens} tokens; {len(encoder.known)} cached chunk embeddings", flush=True)

    print(
        "| corpus | docs | chunks (tokens / structure) | docs chunked differently | nDCG@10 tokens | "
        "nDCG@10 structure | chunking docs/s tokens | structure | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    totals = {k: 0.0 for k in KINDS}
    n_total = 0
    for name in [c for c in args.collections.split(",") if c]:
        folder = args.data / name
        docs = documents([folder / "corpus.jsonl"])
        queries, qrels = read_queries(folder), read_qrels(folder / "qrels" / "test.tsv")
        runs = {k: chunk_all(k, tokenizer, docs, max_tokens) for k in KINDS}
        for k in KINDS:
            totals[k] += runs[k][1]
        n_total += len(docs)
        diff = differing(runs["tokens"][0], runs["structure"][0])
        scores = {k: ndcg(encoder, docs, runs[k][0], queries, qrels) for k in KINDS}
        rate = {k: len(docs) / runs[k][1] for k in KINDS}
        same = " (same chunks)" if diff == 0 else ""
        print(
            f"| {name} | {len(docs)} | {sum(map(len, runs['tokens'][0]))} / {sum(map(len, runs['structure'][0]))} "
            f"| {diff} | {scores['tokens']:.4f} | {scores['structure']:.4f}{same} | {rate['tokens']:.0f} "
            f"| {rate['structure']:.0f} | {rate['structure'] / rate['tokens']:.2f} |",
            flush=True,
        )

    docs, queries, qrels = fixture_docs()
    for size in (max_tokens, 128):
        runs = {k: chunk_all(k, tokenizer, docs, size) for k in KINDS}
        scores = {k: ndcg(encoder, docs, runs[k][0], queries, qrels) for k in KINDS}
        with_path = ndcg(encoder, docs, runs["structure"][0], queries, qrels, with_path=True)
        print(
            f"| fixture ({size} tokens) | {len(docs)} | {sum(map(len, runs['tokens'][0]))} / "
            f"{sum(map(len, runs['structure'][0]))} | {differing(runs['tokens'][0], runs['structure'][0])} | "
            f"{scores['tokens']:.4f} | {scores['structure']:.4f} (heading path embedded: {with_path:.4f}) "
            f"| | | |",
            flush=True,
        )
    if n_total:
        print(
            f"\nchunking alone, all {n_total} BEIR documents: tokens {n_total / totals['tokens']:.0f} docs/s, "
            f"structure {n_total / totals['structure']:.0f} docs/s, "
            f"ratio {totals['tokens'] / totals['structure']:.2f}"
        )
    print(f"chunk texts encoded in this run (not in the cache): {encoder.encoded}", flush=True)


if __name__ == "__main__":
    main()
