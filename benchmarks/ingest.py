"""End-to-end ingest throughput against pure model encoding of the same chunks.

Prints one table, in one run:

* ``encode only``: ``GaussianEmbedder.encode`` over exactly the chunks the ingest writes
  (the baseline; timed before and after the ingest, and averaged, to cancel machine drift);
* ``ragcun ingest``: reading, chunking, encoding, store upserts and catalog writes, end to end;
* the ratio between them, and the storage + catalog overhead it implies.

Usage: python benchmarks/ingest.py [--data ../shared/datasets/scifact] [--limit N] [--engine edge|local]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from common import DEFAULT_DATA, corpus_file

from ragcun.ingest import IngestOptions, ingest
from ragcun.ingest.chunking import Chunker
from ragcun.ingest.readers import SourceDocument, read_source
from ragcun.model import GaussianEmbedder
from ragcun.settings import Settings
from ragcun.store import ClientStore
from ragcun.workspace import Workspace, init_home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="BEIR folder or a corpus .jsonl")
    parser.add_argument("--limit", type=int, default=0, help="only the first N documents (0: all)")
    parser.add_argument("--engine", choices=["edge", "local"], default="edge")
    parser.add_argument("--model", type=Path, help="model directory (default: the default model)")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    embedder = GaussianEmbedder.load(args.model) if args.model else GaussianEmbedder.load(_default_model())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = corpus_file(args.data, args.limit, tmp)
        docs = [d for d in read_source(corpus) if isinstance(d, SourceDocument)]
        chunker = Chunker(embedder.base.tokenizer, embedder.max_seq_length - 2, 32)
        chunks = [c.text for d in docs for c in chunker.split(d.content)]

        def encode_seconds() -> float:
            start = time.perf_counter()
            for i in range(0, len(chunks), args.batch_size):  # the ingest encodes in the same batches
                embedder.encode(chunks[i : i + args.batch_size], show_progress_bar=False)
            return time.perf_counter() - start

        embedder.encode(chunks[:64], show_progress_bar=False)  # warm-up
        before = encode_seconds()
        settings = Settings.from_env(home=tmp / "home", environ={})
        init_home(settings)
        store = ClientStore.local_path(tmp / "local") if args.engine == "local" else None
        with Workspace(settings, store=store) as ws:
            start = time.perf_counter()
            result = ingest(
                ws, [corpus], "bench", embedder, IngestOptions(batch_size=args.batch_size, jsonl_format="beir")
            )
            ingest_seconds = time.perf_counter() - start
        after = encode_seconds()

    encode = (before + after) / 2
    print(
        f"{len(docs)} documents, {len(chunks)} chunks from {corpus.name}, engine {args.engine}, "
        f"model {embedder.fingerprint[:12]}, batch {args.batch_size}"
    )
    print(json.dumps(result.counts()))
    print("| path | docs/s | chunks/s | vs encode only |")
    print("|---|---|---|---|")
    print(
        f"| encode only (mean of {before:.1f}s, {after:.1f}s) | {len(docs) / encode:.1f} "
        f"| {len(chunks) / encode:.1f} | 1.00x |"
    )
    print(
        f"| ragcun ingest, end to end | {len(docs) / ingest_seconds:.1f} | {len(chunks) / ingest_seconds:.1f} "
        f"| {encode / ingest_seconds:.2f}x |"
    )
    print(f"storage + catalog overhead: {100 * (ingest_seconds - encode) / ingest_seconds:.1f}% of ingest time")


def _default_model() -> Path:
    from ragcun.model import default_model_path

    return default_model_path()


if __name__ == "__main__":
    main()
