"""``ragcun eval``: retrieval quality and the Gaussian claims, for a collection's model and baselines.

Evaluation is exact: the collection's stored vectors are scrolled and every query is compared with
every point (:func:`ragcun.evaluation.metrics.rank`), so HNSW recall never blurs a comparison. A document
scores as its best chunk. Baselines embed the same chunk texts:

* ``base-cosine`` / ``base-l2``: the model's base encoder without its head (and without Normalize),
  by cosine or by raw L2. Cosine is computed as L2 between unit vectors, which ranks identically
  and gives the distances that the separation and probability figures need.
* ``bm25``: bm25s with English stop words and Snowball stemming.
* ``dense``, ``bm25-engine``, ``hybrid`` (the default fusion), ``hybrid-rrf``, ``hybrid-dbsf``: the
  collection itself searched through its engine in that mode (top 300 chunks per query), so that
  dense, BM25 and hybrid search sit side by side.
* anything else: a model directory or registered model version, which re-embeds the chunk texts.

``mode``/``filter`` evaluate the collection's own row through the engine too (a filter applies to
every engine method).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import select

from ragcun.catalog.models import Document, EvalResult, ModelVersion
from ragcun.catalog.ops import active_collection, require_collection
from ragcun.collections.runs import failed_documents
from ragcun.errors import IncompleteCollectionError, InvalidInputError
from ragcun.evaluation.corpus import (
    CollectionPoints,
    doc_distances,
    exclude_self_hits,
    load_points,
    min_per_doc,
    relevance_grades,
)
from ragcun.evaluation.data import (
    JudgedQueries,
    judged_queries,
    read_qrels_strict,
    read_queries_strict,
)
from ragcun.evaluation.metrics import (
    expected_calibration_error,
    gaussian_probabilities,
    mean_metrics,
    per_query_metrics,
    reliability,
    separation,
    spearman,
)
from ragcun.workspace import Workspace

if TYPE_CHECKING:  # the model imports torch; annotations alone need not
    from qdrant_client import models

    from ragcun.model import GaussianEmbedder


logger = logging.getLogger(__name__)

BASELINES = ("base-cosine", "base-l2", "bm25")
# The collection searched through its engine: method name -> (mode, fusion; None: the default).
ENGINE_METHODS = {
    "dense": ("dense", None),
    "bm25-engine": ("bm25", None),
    "hybrid": ("hybrid", None),
    "hybrid-rrf": ("hybrid", "rrf"),
    "hybrid-dbsf": ("hybrid", "dbsf"),
}
ENGINE_DEPTH = 300  # chunks fetched per query from the engine
RUN_DEPTH = 100  # documents kept per query: enough for Recall@100
CALIBRATION_DEPTH = 10  # candidates whose probabilities are calibrated: a default search page


@dataclass
class MethodResult:
    """One method's figures on the judged queries."""

    method: str
    metrics: dict[str, float]
    separation: float | None = None
    spearman_query_norm_ndcg: float | None = None
    spearman_doc_norm_relevance: float | None = None
    sigma: float | None = None
    ece: float | None = None
    reliability: list[dict] = field(default_factory=list)
    model_version: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EvalReport:
    collection: str
    batch: str
    queries: str
    qrels: str
    num_queries: int
    unknown_query_ids: int
    unknown_doc_ids: int
    warnings: list[str]
    results: list[MethodResult]
    missing_documents: int = 0  # corpus documents the collection lacks (failed at ingest; --allow-incomplete)
    keep_identical_ids: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def score_distances(
    name: str,
    distances: np.ndarray,
    judged: JudgedQueries,
    points: CollectionPoints,
    query_norms: np.ndarray | None = None,
    doc_norms: np.ndarray | None = None,
    sigma: float | None = None,
    ignore_identical_ids: bool = True,
) -> MethodResult:
    """Every figure of one method from its (query × document) distance matrix, smaller = nearer.

    Norm correlations need the norms the method's space gives (``None`` for spaces without one, such
    as cosine or BM25); probabilities need a σ (``None`` skips calibration figures).
    """
    if ignore_identical_ids:
        distances = exclude_self_hits(distances, judged.query_ids, points)
    depth = min(RUN_DEPTH, distances.shape[1])
    order = np.argsort(distances, axis=1, kind="stable")[:, :depth]
    run = {
        q: {points.doc_ids[j]: -float(distances[i, j]) for j in order[i] if np.isfinite(distances[i, j])}
        for i, q in enumerate(judged.query_ids)
    }
    per_query = per_query_metrics(run, judged.qrels)
    result = MethodResult(name, mean_metrics(per_query))

    grades = relevance_grades(judged.query_ids, judged.qrels, points)
    finite = np.isfinite(distances)
    seps = [separation(distances[i], grades[i] > 0, finite[i]) for i in range(len(judged.query_ids))]
    seps = [s for s in seps if np.isfinite(s)]
    result.separation = float(np.mean(seps)) if seps else None

    rows = np.arange(len(judged.query_ids))[:, None]
    if query_norms is not None:
        result.spearman_query_norm_ndcg = spearman(query_norms, [per_query[q]["ndcg@10"] for q in judged.query_ids])
    if doc_norms is not None:
        # Over each query's retrieved candidates: does a larger norm go with relevance?
        result.spearman_doc_norm_relevance = spearman(doc_norms[order].ravel(), grades[rows, order].ravel())
    if sigma is not None:
        cut = order[:, :CALIBRATION_DEPTH]
        probabilities = gaussian_probabilities(distances[rows, cut], sigma)
        labels = grades[rows, cut] > 0
        result.sigma = sigma
        result.ece = expected_calibration_error(probabilities, labels)
        result.reliability = reliability(probabilities, labels)
    return result


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def score_vectors(
    name: str,
    queries: np.ndarray,
    chunks: np.ndarray,
    judged: JudgedQueries,
    points: CollectionPoints,
    sigma: float,
    with_norms: bool = True,
    ignore_identical_ids: bool = True,
) -> MethodResult:
    distances = doc_distances(queries, chunks, points.chunk_doc, len(points.doc_ids))
    return score_distances(
        name,
        distances,
        judged,
        points,
        query_norms=np.linalg.norm(queries, axis=1) if with_norms else None,
        doc_norms=points.doc_norms(chunks) if with_norms else None,
        sigma=sigma,
        ignore_identical_ids=ignore_identical_ids,
    )


def bm25_distances(texts: list[str], queries: list[str], chunk_doc: np.ndarray, n_docs: int) -> np.ndarray:
    """Negated BM25 scores per document (best chunk), so that smaller is nearer like a distance."""
    import bm25s
    import Stemmer

    logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG through its own handler
    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    tokens = bm25s.tokenize(queries, stopwords="en", stemmer=stemmer, show_progress=False)
    indices, scores = retriever.retrieve(tokens, k=len(texts), show_progress=False)
    ordered = np.empty(scores.shape)
    np.put_along_axis(ordered, indices, -scores, axis=1)
    return min_per_doc(ordered, chunk_doc, n_docs)


def engine_distances(
    ws: Workspace,
    judged: JudgedQueries,
    points: CollectionPoints,
    mode: str,
    fusion: str | None = None,
    where: str | models.Filter | None = None,
) -> np.ndarray:
    """(query × document) ranks from searching the collection through its engine: a document's rank is
    its best chunk's; documents not among the top :data:`ENGINE_DEPTH` chunks are at infinity."""
    from ragcun.retrieve.base import DEFAULT_FUSION
    from ragcun.retrieve.collection import search

    index = points.doc_index
    ranks = np.full((len(judged.query_ids), len(points.doc_ids)), np.inf)
    for i, text in enumerate(judged.texts):
        hits = search(
            ws,
            points.name,
            text,
            min(ENGINE_DEPTH, len(points.texts)),
            exact=True,
            mode=mode,
            fusion=fusion or DEFAULT_FUSION,
            filter=where,
        )
        for rank, hit in enumerate(hits):
            j = index.get(hit.doc_id)
            if j is not None and ranks[i, j] == np.inf:
                ranks[i, j] = rank
    return ranks


def evaluate(
    ws: Workspace,
    collection_name: str,
    queries_path: str | Path,
    qrels_path: str | Path,
    compare: Sequence[str] = ("base-cosine",),
    store: bool = True,
    ignore_identical_ids: bool = True,
    allow_incomplete: bool = False,
    mode: str = "dense",
    fusion: str | None = None,
    filter: str | models.Filter | None = None,
) -> EvalReport:
    """Score collection ``collection_name``'s model and each ``compare`` method on judged queries.

    Args:
        ws: The workspace.
        collection_name: Logical collection; its active version is evaluated.
        queries_path: BEIR ``queries.jsonl``; duplicate ids are an error.
        qrels_path: BEIR qrels TSV; rows naming unknown queries or documents are counted and ignored.
        compare: Baselines (``base-cosine``, ``base-l2``, ``bm25``) or model directories / versions.
        store: Record the results in the catalog (listed by ``ragcun eval list``).
        ignore_identical_ids: Never retrieve the document whose id is the query's (the BEIR rule
            for corpora that contain their queries). Wrong where query and document ids are
            separate numberings (ADI, Cranfield, Medline, CISI): a warning says so when the qrels
            judge such a document relevant.
        allow_incomplete: Score a collection whose ingest left failed documents (the report's
            ``missing_documents`` says how many) instead of refusing.
        mode: ``dense`` scores the collection's model exactly over its stored vectors; ``bm25`` or
            ``hybrid`` search it through the engine (as does any ``filter``).
        fusion: For ``hybrid``: ``rrf`` or ``dbsf`` (``None``: the default).
        filter: A payload filter (string or Qdrant filter) for the engine searches.

    Returns:
        An :class:`EvalReport`, the collection's own model first.

    Raises:
        IncompleteCollectionError: the collection's last ingest failed on documents, and
            ``allow_incomplete`` is false: qrels naming them would be silently dropped.
    """
    from ragcun.collections.versions import load_model_ref
    from ragcun.model.cache import base_embeddings

    queries = read_queries_strict(queries_path)
    qrels = read_qrels_strict(qrels_path)
    with ws.catalog.session() as session:
        require_collection(session, collection_name)
        missing = failed_documents(session, collection_name)
        # Empty documents (an id, no text) have no point but are documents of the collection: qrels naming them
        # are kept, a relevant document no search can find, as trec_eval would score it.
        document_ids = set(session.scalars(select(Document.doc_id).where(Document.collection_name == collection_name)))
    if missing.count and not allow_incomplete:
        raise IncompleteCollectionError(
            f"collection {collection_name!r} lacks {missing.count} document(s) that failed to ingest "
            f"({missing.summary()}); see `ragcun runs show {missing.run_ids[0]}`, fix the corpus and ingest again, "
            "or pass --allow-incomplete to score it anyway"
        )
    points = load_points(ws, collection_name)
    judged = judged_queries(queries, qrels, set(points.doc_ids) | document_ids)
    same_id = sum(judged.qrels[q].get(q, 0) > 0 for q in judged.query_ids)
    if ignore_identical_ids and same_id:
        judged.warnings.append(
            f"{same_id} query(ies) have a relevant document with the query's own id, which "
            "identical-id exclusion hides: query and document ids look like separate "
            "numberings; consider --keep-identical-ids"
        )
    if missing.count:
        judged.warnings.append(
            f"{missing.count} corpus document(s) failed to ingest and are missing from the "
            f"collection (see `ragcun runs show {missing.run_ids[0]}`)"
        )
    with ws.catalog.session() as session:
        embedder = ws.embedder_for(require_collection(session, collection_name))
    sigma = float(points.settings.get("sigma", 1.0))
    logger.info("evaluating %s: %d queries, %d points", collection_name, len(judged.query_ids), len(points.texts))
    query_vectors = embedder.encode_queries(judged.texts)

    def engine_result(method: str, mode: str, fusion: str | None) -> MethodResult:
        ranks = engine_distances(ws, judged, points, mode, fusion, filter)
        result = score_distances(method, ranks, judged, points, ignore_identical_ids=ignore_identical_ids)
        result.separation = None  # ranks are no distance
        return result

    if mode == "dense" and filter is None:
        results = [
            score_vectors(
                f"model {points.model_fingerprint[:12]}",
                query_vectors,
                points.vectors,
                judged,
                points,
                sigma,
                ignore_identical_ids=ignore_identical_ids,
            )
        ]
    else:
        results = [engine_result(f"model {points.model_fingerprint[:12]} {mode}", mode, fusion)]
    results[0].model_version = points.model_fingerprint
    base: tuple[np.ndarray, np.ndarray] | None = None
    for method in compare:
        if method in ENGINE_METHODS:
            results.append(engine_result(method, *ENGINE_METHODS[method]))
            results[-1].model_version = points.model_fingerprint
        elif method in ("base-cosine", "base-l2"):
            if base is None and embedder.head_spec.kind == "identity":
                base = (query_vectors, points.vectors)  # an identity head stores the base encoder's own vectors
            elif base is None:
                # The base-embedding cache the trainer shares ($RAGCUN_CACHE): texts it already embedded are reused.
                cache = ws.settings.cache_dir
                base = (
                    base_embeddings(embedder, judged.texts, cache).numpy(),
                    base_embeddings(embedder, points.texts, cache).numpy(),
                )
            if method == "base-cosine":
                # σ = 1 on the unit sphere is uncalibrated: the ECE shown is what an untuned σ gives.
                results.append(
                    score_vectors(
                        method,
                        unit(base[0]),
                        unit(base[1]),
                        judged,
                        points,
                        1.0,
                        with_norms=False,
                        ignore_identical_ids=ignore_identical_ids,
                    )
                )
            else:
                results.append(
                    score_vectors(method, *base, judged, points, 1.0, ignore_identical_ids=ignore_identical_ids)
                )
        elif method == "bm25":
            distances = bm25_distances(points.texts, judged.texts, points.chunk_doc, len(points.doc_ids))
            results.append(
                score_distances(method, distances, judged, points, ignore_identical_ids=ignore_identical_ids)
            )
            # Negated BM25 scores are no distance (most documents tie at 0): a separation would not compare.
            results[-1].separation = None
        else:
            other = load_model_ref(ws, method)
            result = score_vectors(
                f"model {other.fingerprint[:12]}",
                other.encode_queries(judged.texts),
                other.encode(points.texts),
                judged,
                points,
                1.0,
                ignore_identical_ids=ignore_identical_ids,
            )
            result.model_version = other.fingerprint
            results.append(result)
    report = EvalReport(
        collection_name,
        str(uuid.uuid4()),
        str(queries_path),
        str(qrels_path),
        len(judged.query_ids),
        judged.unknown_query_ids,
        judged.unknown_doc_ids,
        judged.warnings,
        results,
        missing_documents=missing.count,
        keep_identical_ids=not ignore_identical_ids,
    )
    if store:
        save_report(ws, report, points)
    return report


def save_report(ws: Workspace, report: EvalReport, points: CollectionPoints) -> None:
    with ws.catalog.session() as session:
        versions = {}
        for result in report.results:
            if result.model_version and result.model_version not in versions:
                versions[result.model_version] = session.scalar(
                    select(ModelVersion.id).where(ModelVersion.fingerprint == result.model_version)
                )
        for result in report.results:
            # Flat, so `eval list` rows read like the report's table.
            figures = {
                **result.metrics,
                **{
                    k: v
                    for k, v in result.to_dict().items()
                    if k not in ("method", "metrics", "model_version", "reliability")
                },
                "keep_identical_ids": report.keep_identical_ids,
                "missing_documents": report.missing_documents,
            }
            session.add(
                EvalResult(
                    batch=report.batch,
                    collection_name=report.collection,
                    collection_id=points.collection_id,
                    model_version_id=versions.get(result.model_version or ""),
                    method=result.method,
                    queries=report.queries,
                    qrels=report.qrels,
                    num_queries=report.num_queries,
                    metrics=figures,
                )
            )
        session.commit()


def list_evals(ws: Workspace, collection_name: str | None = None) -> list[dict]:
    """Stored evaluation results, oldest first, optionally of one logical collection."""
    with ws.catalog.session() as session:
        query = select(EvalResult).order_by(EvalResult.id)
        if collection_name:
            query = query.where(EvalResult.collection_name == collection_name)
        return [
            {
                "id": r.id,
                "batch": r.batch,
                "collection": r.collection_name,
                "method": r.method,
                "model_version": r.model_version.fingerprint if r.model_version else None,
                "queries": r.queries,
                "qrels": r.qrels,
                "num_queries": r.num_queries,
                "created_at": r.created_at,
                **r.metrics,
            }
            for r in session.scalars(query)
        ]


def evaluate_beir(
    ws: Workspace,
    folder: str | Path,
    embedder: GaussianEmbedder | None,
    collection_name: str | None = None,
    split: str = "test",
    compare: Sequence[str] = ("base-cosine",),
    ignore_identical_ids: bool = True,
    allow_incomplete: bool = False,
    mode: str = "dense",
    fusion: str | None = None,
    filter: str | models.Filter | None = None,
) -> EvalReport:
    """Evaluate a BEIR folder, ingesting its corpus into ``collection_name`` first if needed.

    The collection (default ``beir-<folder name>``) is kept, so a second run skips the unchanged
    corpus instead of embedding it again.
    """
    from ragcun.ingest import IngestOptions, ingest

    folder = Path(folder)
    qrels_path = folder / "qrels" / f"{split}.tsv"
    for needed in (folder / "corpus.jsonl", folder / "queries.jsonl", qrels_path):
        if not needed.is_file():
            raise InvalidInputError(
                f"{needed}: missing; --beir needs a BEIR folder (corpus.jsonl, queries.jsonl, qrels/{split}.tsv)"
            )
    name = collection_name or f"beir-{folder.resolve().name}"
    with ws.catalog.session() as session:
        existing = active_collection(session, name)
        if existing is not None:
            embedder = ws.embedder_for(existing)
    if embedder is None:
        from ragcun.model import GaussianEmbedder, default_model_path

        embedder = GaussianEmbedder.load(default_model_path())
    ingest(ws, [folder / "corpus.jsonl"], name, embedder, IngestOptions(jsonl_format="beir"))
    return evaluate(
        ws,
        name,
        folder / "queries.jsonl",
        qrels_path,
        compare=compare,
        ignore_identical_ids=ignore_identical_ids,
        allow_incomplete=allow_incomplete,
        mode=mode,
        fusion=fusion,
        filter=filter,
    )
