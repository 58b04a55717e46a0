"""Encoding throughput: ragcun's encoder against plain sentence-transformers on the same base.

Prints one table of docs/s for three paths, measured in interleaved rounds in one process:

* ``ragcun``: GaussianEmbedder.encode (token-length sorted batches + head)
* ``sentence-transformers``: SentenceTransformer.encode on the same base model (the baseline)
* ``ragcun, unsorted``: GaussianEmbedder.encode with length sorting off
* ``ragcun, uncapped``: sorted batches of ``--batch-size`` texts however many tokens they pad to (on CPU
  ragcun also caps a forward pass at ``CPU_TOKENS_PER_FORWARD`` padded tokens)

Usage: python benchmarks/encode.py [--data ../shared/datasets/scifact] [--docs 2000] [--words 100]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path

import torch
from common import DEFAULT_DATA
from sentence_transformers import SentenceTransformer

from ragcun.beir import read_corpus
from ragcun.model import DEFAULT_BASE_MODEL, GaussianEmbedder, load_base_encoder, resolve_base_model


def load_texts(data: Path, docs: int, words: int) -> list[str]:
    corpus = [doc.content for doc in read_corpus(data)]
    # Keep documents of at least `words` words, cut to exactly that, so every text is ~`words` words.
    long_enough = [" ".join(text.split()[:words]) for text in corpus if len(text.split()) >= words]
    if len(long_enough) < docs:
        raise SystemExit(f"{data}: only {len(long_enough)} documents have {words}+ words; need {docs}")
    return long_enough[:docs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="BEIR folder or corpus.jsonl")
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--words", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved timing rounds; the median is reported")
    parser.add_argument(
        "--head",
        default="mlp",
        choices=["identity", "linear", "mlp"],
        help="head of the ragcun model (mlp is the trained default's shape)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    texts = load_texts(args.data, args.docs, args.words)
    base = load_base_encoder(DEFAULT_BASE_MODEL, device="cpu")
    ours = GaussianEmbedder(head=args.head, base_encoder=base)
    uncapped = GaussianEmbedder(head=args.head, base_encoder=base)
    uncapped.head.load_state_dict(ours.head.state_dict())
    uncapped.cpu_tokens_per_forward = 1 << 30
    plain = SentenceTransformer(resolve_base_model(DEFAULT_BASE_MODEL), device="cpu")

    paths = {
        "ragcun": lambda: ours.encode(texts, batch_size=args.batch_size, show_progress_bar=False),
        "sentence-transformers": lambda: plain.encode(texts, batch_size=args.batch_size, show_progress_bar=False),
        "ragcun, unsorted": lambda: ours.encode(
            texts, batch_size=args.batch_size, show_progress_bar=False, sort_by_length=False
        ),
        "ragcun, uncapped": lambda: uncapped.encode(texts, batch_size=args.batch_size, show_progress_bar=False),
    }
    warmup = texts[: args.batch_size * 2]
    ours.encode(warmup, show_progress_bar=False)
    plain.encode(warmup, show_progress_bar=False)

    seconds: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name, run in paths.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)

    rate = {name: len(texts) / statistics.median(times) for name, times in seconds.items()}
    baseline = rate["sentence-transformers"]
    print(
        f"{len(texts)} docs of {args.words} words, batch {args.batch_size}, head {args.head}, "
        f"torch threads {torch.get_num_threads()}, median of {args.rounds} rounds"
    )
    print("| path | docs/s | vs sentence-transformers |")
    print("|---|---|---|")
    for name, value in rate.items():
        print(f"| {name} | {value:.1f} | {value / baseline:.2f}x |")


if __name__ == "__main__":
    main()
