"""Training data: (query, positive, negative?) pairs from three sources, and the base-embedding cache.

Sources, detected from the path:

* a BEIR folder with ``qrels/<split>.tsv``: one pair per relevant (query, document);
* a JSONL file of ``{"query": …, "positive": …, "negative": …?}`` rows;
* a raw corpus with no queries (a BEIR ``corpus.jsonl`` or a folder without qrels, or a ``.txt``
  file of one document per line): self-supervised views, two random spans of the same document.

Pairs are stored as indices into one de-duplicated text list, so the frozen recipe embeds every text
once through the base encoder and caches the result on disk (:mod:`ragcun.model.cache`).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragcun.beir import read_corpus, read_jsonl, read_qrels, read_queries
from ragcun.errors import InvalidInputError

NO_NEGATIVE = -1


@dataclass
class PairSet:
    """Pairs over one shared text list.

    ``query``/``positive``/``negative`` index ``texts`` (``negative`` is ``NO_NEGATIVE`` when absent);
    ``corpus`` indexes the documents to retrieve from at evaluation time, ``doc_ids`` names them,
    and ``qrels``/``query_ids`` describe held-out queries (empty when the data has none).
    """

    texts: list[str]
    query: list[int] = field(default_factory=list)
    positive: list[int] = field(default_factory=list)
    negative: list[int] = field(default_factory=list)
    corpus: list[int] = field(default_factory=list)
    doc_ids: list[str] = field(default_factory=list)
    query_ids: dict[str, int] = field(default_factory=dict)  # query id -> text index
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    kind: str = "pairs"
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.query)


class _Texts:
    """Assigns each distinct text one index."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self._index: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        if text not in self._index:
            self._index[text] = len(self.texts)
            self.texts.append(text)
        return self._index[text]


def load_beir_pairs(
    folder: Path, split: str = "train", dev_fraction: float = 0.0, seed: int = 0
) -> tuple[PairSet, PairSet | None]:
    """Pairs from a BEIR split; a ``dev_fraction`` of its *queries* is held out for model selection.

    Queries, not pairs, are split, so no held-out query ever contributes a training pair.
    """
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        raise InvalidInputError(f"{qrels_path}: missing; a BEIR training folder needs qrels/{split}.tsv")
    corpus = read_corpus(folder)
    queries = read_queries(folder)
    qrels = {qid: {d: g for d, g in docs.items() if g > 0} for qid, docs in read_qrels(qrels_path).items()}
    qrels = {qid: docs for qid, docs in qrels.items() if docs and qid in queries}
    qids = sorted(qrels)
    random.Random(seed).shuffle(qids)
    n_dev = round(len(qids) * dev_fraction)
    dev_qids, train_qids = set(qids[:n_dev]), set(qids[n_dev:])

    texts = _Texts()
    doc_index = {doc.doc_id: texts(doc.content) for doc in corpus}
    base: dict[str, Any] = dict(corpus=list(doc_index.values()), doc_ids=list(doc_index), sources=[str(qrels_path)])
    train = PairSet(texts=texts.texts, kind="beir", **base)
    for qid in sorted(train_qids):
        for doc_id in sorted(qrels[qid]):
            if doc_id in doc_index:
                train.query.append(texts(queries[qid]))
                train.positive.append(doc_index[doc_id])
                train.negative.append(NO_NEGATIVE)
    dev = None
    if dev_qids:
        dev = PairSet(texts=texts.texts, kind="beir-dev", **base)
        dev.query_ids = {qid: texts(queries[qid]) for qid in sorted(dev_qids)}
        dev.qrels = {qid: qrels[qid] for qid in sorted(dev_qids)}
    return train, dev


def load_jsonl_pairs(path: Path) -> PairSet:
    """Pairs from JSONL rows ``{"query", "positive", "negative"?}``; positives and negatives form the corpus."""
    texts = _Texts()
    pairs = PairSet(texts=texts.texts, kind="jsonl", sources=[str(path)])
    corpus: dict[int, None] = {}
    rows = read_jsonl(
        path, lambda row: (row["query"], row["positive"], row.get("negative")), "{query, positive, negative?}"
    )
    for query, positive, negative in rows:
        pairs.query.append(texts(query))
        pairs.positive.append(texts(positive))
        corpus[pairs.positive[-1]] = None
        pairs.negative.append(texts(negative) if negative else NO_NEGATIVE)
        if negative:
            corpus[pairs.negative[-1]] = None
    pairs.corpus = list(corpus)
    pairs.doc_ids = [str(i) for i in pairs.corpus]
    return pairs


def random_span(words: list[str], rng: random.Random, min_words: int, max_words: int) -> str:
    """A contiguous span of ``min_words``..``max_words`` words (the whole text when shorter)."""
    length = min(len(words), rng.randint(min_words, max_words))
    start = rng.randint(0, len(words) - length)
    return " ".join(words[start : start + length])


def span_pairs(
    documents: list[str],
    views_per_doc: int = 2,
    min_words: int = 8,
    max_words: int = 64,
    seed: int = 0,
    source: str = "",
) -> PairSet:
    """Self-supervised pairs for unlabeled text: two random spans of the same document.

    The spans are drawn once (seeded) rather than every step, so the frozen recipe can embed them
    once and cache them; ``views_per_doc`` pairs per document give the variety instead.
    """
    rng = random.Random(seed)
    texts = _Texts()
    pairs = PairSet(texts=texts.texts, kind="spans", sources=[source] if source else [])
    corpus = {}
    for doc_no, document in enumerate(documents):
        words = document.split()
        if len(words) < 2:
            continue
        corpus[texts(document)] = str(doc_no)
        for _ in range(views_per_doc):
            pairs.query.append(texts(random_span(words, rng, min_words, max_words)))
            pairs.positive.append(texts(random_span(words, rng, min_words, max_words)))
            pairs.negative.append(NO_NEGATIVE)
    pairs.corpus, pairs.doc_ids = list(corpus), list(corpus.values())
    return pairs


def merge(a: PairSet, b: PairSet) -> PairSet:
    """One pair set holding both; ``a``'s corpus and evaluation data are kept."""
    texts = _Texts()
    for text in a.texts:
        texts(text)
    remap = [texts(text) for text in b.texts]
    merged = PairSet(
        texts=texts.texts,
        query=list(a.query),
        positive=list(a.positive),
        negative=list(a.negative),
        corpus=list(a.corpus),
        doc_ids=list(a.doc_ids),
        query_ids=dict(a.query_ids),
        qrels=dict(a.qrels),
        kind=f"{a.kind}+{b.kind}",
        sources=a.sources + b.sources,
    )
    merged.query += [remap[i] for i in b.query]
    merged.positive += [remap[i] for i in b.positive]
    merged.negative += [remap[i] if i != NO_NEGATIVE else NO_NEGATIVE for i in b.negative]
    return merged


def require_training_data(path: str | Path) -> Path:
    """``path`` as a ``Path``, or InvalidInputError when there is nothing there (a light check: the command
    line makes it before it loads torch)."""
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"{path}: no such training data")
    return path


def load_training_data(
    path: str | Path, split: str = "train", dev_fraction: float = 0.0, seed: int = 0, span_views: int = 0
) -> tuple[PairSet, PairSet | None]:
    """Detect the data format and load (train, dev). ``span_views`` > 0 adds span pairs from the corpus."""
    path = require_training_data(path)
    dev = None
    if path.is_dir() and (path / "qrels" / f"{split}.tsv").is_file():
        train, dev = load_beir_pairs(path, split, dev_fraction, seed)
        if span_views:
            docs = [train.texts[i] for i in train.corpus]
            train = merge(train, span_pairs(docs, span_views, seed=seed, source=str(path / "corpus.jsonl")))
        return train, dev
    if path.is_file() and path.suffix == ".jsonl" and path.name != "corpus.jsonl":
        return load_jsonl_pairs(path), None
    if path.is_dir() or path.name == "corpus.jsonl":
        documents = [doc.content for doc in read_corpus(path)]
    elif path.suffix == ".txt":
        documents = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        raise InvalidInputError(f"{path}: not a BEIR folder, a pairs .jsonl, a corpus.jsonl or a .txt corpus")
    return span_pairs(documents, max(span_views, 2), seed=seed, source=str(path)), None


def fingerprint(pairs: PairSet) -> str:
    """sha256 over the training pairs' texts, in order: names exactly what a model was trained on."""
    digest = hashlib.sha256()
    for q, p, n in zip(pairs.query, pairs.positive, pairs.negative, strict=True):
        for i in (q, p, n):
            digest.update((pairs.texts[i] if i != NO_NEGATIVE else "").encode())
            digest.update(b"\x00")
    return digest.hexdigest()
