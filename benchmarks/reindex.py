"""Reindex time against a fresh ingest of the same corpus with the same model.

A collection is first ingested with the untrained base model (setup, not timed). Then, in one run:

* ``fresh ingest``: the corpus ingested from its file with model B into a new collection (the baseline);
* ``reindex``: the first collection rebuilt with model B from the chunk text kept in the catalog.

Reindex skips reading and chunking files, so its time should not exceed the fresh ingest's.

Usage: python benchmarks/reindex.py [--data ../shared/datasets/scifact] [--limit N] [--model DIR]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from common import DEFAULT_DATA, corpus_file

from ragcun.collections import reindex
from ragcun.ingest import IngestOptions, ingest
from ragcun.model import GaussianEmbedder, load_base_encoder
from ragcun.settings import Settings
from ragcun.workspace import Workspace, init_home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="BEIR folder or a corpus .jsonl")
    parser.add_argument("--limit", type=int, default=0, help="only the first N documents (0: all)")
    parser.add_argument("--model", type=Path, help="model B directory (default: the default model)")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from ragcun.model import default_model_path

    model_b = GaussianEmbedder.load(args.model or default_model_path())
    model_a = GaussianEmbedder(base_encoder=load_base_encoder(model_b.base_model))  # the untrained base
    options = IngestOptions(batch_size=args.batch_size, jsonl_format="beir")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = corpus_file(args.data, args.limit, tmp)
        settings = Settings.from_env(home=tmp / "home", environ={})
        init_home(settings)
        with Workspace(settings) as ws:
            setup = ingest(ws, [corpus], "reindexed", model_a, options)
            model_b.encode(["warm-up"], show_progress_bar=False)
            start = time.perf_counter()
            fresh = ingest(ws, [corpus], "fresh", model_b, options)
            fresh_seconds = time.perf_counter() - start
            start = time.perf_counter()
            result = reindex(ws, "reindexed", model_b, batch_size=args.batch_size)
            reindex_seconds = time.perf_counter() - start

    print(
        f"{setup.added} documents, {result.chunks_total} chunks from {corpus.name}; "
        f"model A {model_a.fingerprint[:12]} (base), model B {model_b.fingerprint[:12]}"
    )
    print("| path | seconds | chunks/s | vs fresh ingest |")
    print("|---|---|---|---|")
    print(f"| fresh ingest with B | {fresh_seconds:.1f} | {fresh.chunks_written / fresh_seconds:.1f} | 1.00x |")
    print(
        f"| reindex A → B | {reindex_seconds:.1f} | {result.chunks_embedded / reindex_seconds:.1f} "
        f"| {reindex_seconds / fresh_seconds:.2f}x |"
    )


if __name__ == "__main__":
    main()
