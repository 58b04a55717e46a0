"""Judged query sets for evaluation: strict readers and the alignment of qrels with a corpus."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ragcun.beir import read_corpus, read_qrels
from ragcun.errors import EvaluationError

logger = logging.getLogger(__name__)


def read_queries_strict(path: str | Path) -> dict[str, str]:
    """A BEIR ``queries.jsonl`` (or its folder) as ``{id: text}``, refusing duplicate ids.

    :func:`ragcun.beir.read_queries` keeps the last text of a repeated id; for evaluation that would
    silently judge one text against qrels written for another, so a repeat is an error here.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "queries.jsonl"
    try:
        rows = read_corpus(path)  # same line format (_id, text), and it keeps repeated ids
    except ValueError as exc:
        raise EvaluationError(str(exc).replace("BEIR corpus line", "BEIR query line")) from exc
    ids = [row.doc_id for row in rows]
    queries = {row.doc_id: row.text for row in rows}
    repeated = sorted(q for q, n in Counter(ids).items() if n > 1)
    if repeated:
        raise EvaluationError(
            f"{path}: {len(repeated)} duplicate query id(s), e.g. {', '.join(repeated[:5])}; "
            "each query id must appear once"
        )
    if not queries:
        raise EvaluationError(f"{path}: no queries")
    return queries


def read_qrels_strict(path: str | Path) -> dict[str, dict[str, int]]:
    """A BEIR qrels TSV, refusing a file without any judgement."""
    try:
        qrels = read_qrels(path)
    except ValueError as exc:  # InvalidInputError: the file and line, and what a qrels file holds
        raise EvaluationError(str(exc)) from exc
    if not any(grade > 0 for docs in qrels.values() for grade in docs.values()):
        raise EvaluationError(f"{path}: no relevance judgement (empty qrels, or every grade is 0)")
    return qrels


@dataclass
class JudgedQueries:
    """The queries that can be evaluated against a corpus, with what had to be left out."""

    query_ids: list[str]
    texts: list[str]
    qrels: dict[str, dict[str, int]]
    unknown_query_ids: int = 0  # qrels rows whose query is not in the queries file
    unknown_doc_ids: int = 0  # qrels rows whose document is not in the collection
    warnings: list[str] = field(default_factory=list)


def judged_queries(queries: dict[str, str], qrels: dict[str, dict[str, int]], doc_ids: set[str]) -> JudgedQueries:
    """Keep the qrels rows whose query and document both exist; count and log the others.

    A query is evaluated when it keeps at least one relevant (grade > 0) document.
    """
    kept: dict[str, dict[str, int]] = {}
    unknown_queries = unknown_docs = 0
    for qid, docs in qrels.items():
        if qid not in queries:
            unknown_queries += len(docs)
            continue
        known = {d: g for d, g in docs.items() if d in doc_ids}
        unknown_docs += len(docs) - len(known)
        if any(g > 0 for g in known.values()):
            kept[qid] = known
    warnings = []
    if unknown_queries:
        warnings.append(f"{unknown_queries} qrels row(s) name a query id missing from the queries file; ignored")
    if unknown_docs:
        warnings.append(f"{unknown_docs} qrels row(s) name a document id missing from the collection; ignored")
    for message in warnings:
        logger.warning(message)
    if not kept:
        raise EvaluationError(
            "no query has a relevant document in the collection: check that the queries, qrels "
            "and collection belong together"
        )
    ids = sorted(kept)
    return JudgedQueries(ids, [queries[q] for q in ids], kept, unknown_queries, unknown_docs, warnings)
