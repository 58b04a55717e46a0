"""Base embeddings of the shared collections, chunked as ``ragcun ingest`` chunks them, cached as .npy.

For each BEIR folder: every document's ``join_title(title, text)`` split by ragcun's :class:`Chunker`
(the base model's max length minus 2 tokens, 32 overlapping), embedded by the base encoder with its
Normalize removed (what :class:`GaussianEmbedder` feeds its head); its queries; two random word
spans (8–32 words) of every chunk (of 3,000 random chunks in larger collections), the query-like inputs that
adapting may train on; and each
titled document's title. Off-topic general questions are embedded once, for the abstention figures.

Layout of ``OUT/NAME/``: ``chunks.npy`` (float32, chunks × 384), ``chunks.jsonl`` (doc_id, ordinal,
text), ``queries.npy`` + ``queries.json`` (ids), ``spans.npy`` + ``spans.json`` ({chunk, text}
per row), ``titles.npy`` + ``titles.json`` ({chunk, text}); ``OUT/offtopic.npy`` + ``offtopic.json``.

Usage: python benchmarks/adapt_cache.py --data ../shared/datasets --out /work/scratch/adapt/emb [--names adi cisi]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from pathlib import Path

import numpy as np
import torch

from ragcun.beir import join_title, read_corpus, read_queries
from ragcun.ingest.chunking import Chunker
from ragcun.model import DEFAULT_BASE_MODEL, GaussianEmbedder

NAMES = ("adi", "medline", "cisi", "cranfield", "scifact")
SPANS_PER_CHUNK, MAX_SPANS, SPAN_WORDS = 2, 6000, (8, 32)
# Questions no collection here answers: what a user might ask a library-science or aerodynamics corpus by mistake.
OFF_TOPIC = [
    "What is the capital of Australia?",
    "How do I bake sourdough bread at home?",
    "Who won the football world cup in 2018?",
    "What is the best way to learn to play the guitar?",
    "How many calories are in a banana?",
    "What time does the sun set in Paris in June?",
    "Recommend a good science fiction novel.",
    "How do I change a flat tyre on a bicycle?",
    "What is the plot of Hamlet?",
    "Which programming language should I learn first?",
    "How tall is Mount Everest?",
    "What are the rules of chess castling?",
    "How do I get a stain out of a cotton shirt?",
    "What is the exchange rate between euros and dollars?",
    "Who painted the Mona Lisa?",
    "How long should I boil an egg?",
    "What is the population of Tokyo?",
    "How do I train a puppy to sit?",
    "What songs did the Beatles release in 1965?",
    "Where can I buy cheap flights to Spain?",
]

logger = logging.getLogger("adapt_cache")


def random_span(words: list[str], rng: random.Random) -> str:
    """A contiguous span of SPAN_WORDS[0]..SPAN_WORDS[1] words (the whole text when shorter)."""
    length = rng.randint(*SPAN_WORDS)
    if len(words) <= length:
        return " ".join(words)
    start = rng.randrange(len(words) - length + 1)
    return " ".join(words[start : start + length])


def encode(model: GaussianEmbedder, texts: list[str], what: str) -> np.ndarray:
    started = time.perf_counter()
    x = model.encode(texts, batch_size=32, show_progress_bar=False)
    seconds = time.perf_counter() - started
    logger.info("%s: %d texts in %.0f s (%.1f/s)", what, len(texts), seconds, len(texts) / max(seconds, 1e-9))
    return x.astype(np.float32)


def build(folder: Path, out: Path, model: GaussianEmbedder, seed: int = 0) -> None:
    name = folder.name
    out.mkdir(parents=True, exist_ok=True)
    chunker = Chunker(model.base.tokenizer, model.max_seq_length - 2, 32)
    chunks, titles = [], []
    for doc in read_corpus(folder):
        first = len(chunks)
        for piece in chunker.split(join_title(doc.title, doc.text)):
            chunks.append({"doc_id": doc.doc_id, "ordinal": piece.ordinal, "text": piece.text})
        if doc.title.strip():
            titles.append({"chunk": first, "text": doc.title})
    rng = random.Random(seed)
    # Encoding spans costs time on a small CPU: past MAX_SPANS, a random subset of chunks gives theirs.
    sources = range(len(chunks))
    if len(chunks) > MAX_SPANS // SPANS_PER_CHUNK:
        sources = sorted(rng.sample(sources, MAX_SPANS // SPANS_PER_CHUNK))
    spans = [
        {"chunk": i, "text": random_span(chunks[i]["text"].split(), rng)}
        for i in sources
        for _ in range(SPANS_PER_CHUNK)
    ]
    queries = read_queries(folder)
    with (out / "chunks.jsonl").open("w") as handle:
        handle.writelines(json.dumps(c) + "\n" for c in chunks)
    (out / "queries.json").write_text(json.dumps(list(queries)))
    (out / "spans.json").write_text(json.dumps(spans))
    (out / "titles.json").write_text(json.dumps(titles))
    np.save(out / "queries.npy", encode(model, list(queries.values()), f"{name} queries"))
    np.save(out / "titles.npy", encode(model, [t["text"] for t in titles], f"{name} titles"))
    np.save(out / "spans.npy", encode(model, [s["text"] for s in spans], f"{name} spans"))
    np.save(out / "chunks.npy", encode(model, [c["text"] for c in chunks], f"{name} chunks"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder holding the BEIR datasets")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--names", nargs="*", default=list(NAMES))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    model = GaussianEmbedder(DEFAULT_BASE_MODEL, head="identity", device="cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    if not (args.out / "offtopic.npy").exists():
        (args.out / "offtopic.json").write_text(json.dumps(OFF_TOPIC, indent=1))
        np.save(args.out / "offtopic.npy", encode(model, OFF_TOPIC, "off-topic questions"))
    for name in args.names:
        if (args.out / name / "chunks.npy").exists():
            logger.info("%s: cached", name)
            continue
        build(args.data / name, args.out / name, model)


if __name__ == "__main__":
    main()
