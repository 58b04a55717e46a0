"""Hybrid search, filters and metadata through a real collection and the real encoder, on both engines."""

import json

import pytest
from click.testing import CliRunner

from ragcun.cli import cli
from ragcun.errors import InvalidInputError
from ragcun.ingest import ingest
from ragcun.rag import Retriever
from ragcun.retrieve import GaussianRetriever
from ragcun.retrieve.collection import search

DOCS = {
    "kernel": "The nightly build failed: the linker reported error QX7731 in module libfoo.",
    "cars": "Automobiles need their engine oil changed every ten thousand kilometres.",
    "cooking": "Knead the dough for ten minutes, then let it rise for an hour before baking.",
    "tax": "Income tax returns must be filed before the end of April.",
    "music": "The orchestra rehearsed the symphony twice before the concert.",
}
LEXICAL = "QX7731"  # only the kernel document has it; nothing means it semantically
SEMANTIC = "vehicle motor lubrication"  # the cars document means it without sharing a word


def write_corpus(folder):
    folder.mkdir()
    with (folder / "kb.jsonl").open("w") as out:
        for i, (doc_id, text) in enumerate(DOCS.items()):
            # Fields besides id and text are the document's metadata.
            out.write(json.dumps({"id": doc_id, "text": text, "team": "infra" if i % 2 else "ops", "rank": i}) + "\n")


@pytest.fixture
def kb(workspace, identity_embedder, tmp_path):
    write_corpus(tmp_path / "corpus")
    ingest(workspace, [tmp_path / "corpus"], "kb", identity_embedder)
    return workspace


def test_hybrid_finds_the_lexical_and_the_semantic_match(kb, identity_embedder):
    query = f"{LEXICAL} {SEMANTIC}"
    assert search(kb, "kb", LEXICAL, 1, mode="bm25")[0].doc_id == "kernel"
    assert search(kb, "kb", SEMANTIC, 1)[0].doc_id == "cars"
    assert search(kb, "kb", SEMANTIC, 5, mode="bm25") == []  # no shared term
    for fusion in ("rrf", "dbsf"):
        top = {h.doc_id for h in search(kb, "kb", query, 2, mode="hybrid", fusion=fusion)}
        assert top == {"kernel", "cars"}, fusion


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_a_filter_returns_only_matching_points_with_their_metadata(kb, mode):
    hits = search(kb, "kb", "the engine oil and the build error", 10, mode=mode, filter="metadata.team=infra")
    assert hits and {h.doc_id for h in hits} <= {"cars", "tax"}
    assert all(h.metadata["team"] == "infra" for h in hits)
    assert {h.doc_id for h in search(kb, "kb", "anything", 10, filter="metadata.rank>=3 & doc_id!=music")} == {"tax"}
    assert search(kb, "kb", "anything", 10, filter="ingested_at<2000-01-01") == []
    assert len(search(kb, "kb", "anything", 10, filter="ingested_at>=2000-01-01")) == len(DOCS)


def test_an_indexed_field_is_matched_by_its_index_type_only(kb):
    from qdrant_client import models

    from ragcun.collections.create import index_payload
    from ragcun.retrieve.filters import parse_filter

    # Unindexed, "rank=3" is the text "3" or the integer 3; the engine must then read every payload.
    either = parse_filter("metadata.rank=3")
    assert isinstance(either.must[0], models.Filter) and len(either.must[0].should) == 2
    # Indexed as an integer: the one condition the index serves, and a non-integer value is refused.
    exact = parse_filter("metadata.rank=3|4", {"metadata.rank": "integer"})
    assert exact.must == [models.FieldCondition(key="metadata.rank", match=models.MatchAny(any=[3, 4]))]
    with pytest.raises(InvalidInputError, match=r"'metadata\.rank' is indexed as integer; use integer values"):
        parse_filter("metadata.rank=three", {"metadata.rank": "integer"})
    keyword = parse_filter("metadata.team=7", {"metadata.team": "keyword"})
    assert keyword.must == [models.FieldCondition(key="metadata.team", match=models.MatchValue(value="7"))]
    # Collection search follows the collection's own indexes, with the same results.
    index_payload(kb, "kb", "metadata.rank", "integer")
    assert {h.doc_id for h in search(kb, "kb", "anything", 10, filter="metadata.rank=3")} == {"tax"}
    with pytest.raises(InvalidInputError, match="indexed as integer"):
        search(kb, "kb", "anything", 10, filter="metadata.rank=x")


@pytest.mark.parametrize(
    "bad, named",
    [
        ("colour=red", "unknown key 'colour'"),
        ("metadata.team", "expected KEY=VALUE"),
        ("metadata.rank>=high", "'high' is not a number"),
        ("ingested_at>=yesterday", "'yesterday' is not a date"),
        ("metadata.team=a||b", "an empty alternative"),
    ],
)
def test_an_invalid_filter_is_one_line_naming_the_bad_part(kb, bad, named):
    with pytest.raises(InvalidInputError, match=named):
        search(kb, "kb", "anything", 3, filter=bad)


def test_cli_search_modes_filter_and_metadata(kb, monkeypatch):
    if kb.store.engine != "edge":
        pytest.skip("the CLI opens the embedded store of its home")
    home = str(kb.settings.home)
    kb.close()
    runner = CliRunner()
    result = runner.invoke(
        cli, ["--home", home, "search", f"{LEXICAL} {SEMANTIC}", "-c", "kb", "-k", "2", "--mode", "hybrid", "--json"]
    )
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)
    assert {h["doc_id"] for h in hits} == {"kernel", "cars"}
    assert all(h["score"] is not None and "team" in h["metadata"] for h in hits)
    result = runner.invoke(cli, ["--home", home, "search", "oil", "-c", "kb", "--filter", "metadata.team=ops"])
    assert result.exit_code == 0, result.output
    assert "team=ops" in result.output and "team=infra" not in result.output
    result = runner.invoke(cli, ["--home", home, "search", "oil", "-c", "kb", "--filter", "nope=1"])
    assert result.exit_code == 1 and "unknown key 'nope'" in result.output


def test_in_memory_retrievers_have_the_same_modes(identity_embedder):
    retriever = GaussianRetriever(embedder=identity_embedder)
    retriever.add_documents(list(DOCS.values()), ids=list(DOCS), metadata=[{"team": "a"}, {"team": "b"}, {}, {}, {}])
    assert retriever.search(LEXICAL, 1, mode="bm25")[0].doc_id == "kernel"
    top = {h.doc_id for h in retriever.search(f"{LEXICAL} {SEMANTIC}", 2, mode="hybrid")}
    assert top == {"kernel", "cars"}
    assert [h.doc_id for h in retriever.search("oil", 5, filter="metadata.team=b")] == ["cars"]
    rag = Retriever(embedder=identity_embedder, mode="hybrid")
    rag.add_documents(list(DOCS.values()), ids=list(DOCS))
    assert {h.doc_id for h in rag.retrieve(f"{LEXICAL} {SEMANTIC}", 2)} == {"kernel", "cars"}
    with pytest.raises(InvalidInputError, match="mode must be one of"):
        Retriever(embedder=identity_embedder, mode="sparse")


def make_legacy(ws, physical):
    """Turn a physical collection into the layout of ragcun before hybrid search: one unnamed dense vector."""
    import qdrant_edge as qe
    from qdrant_client import models

    records = list(ws.store.scroll(physical, with_vectors=True))
    ws.store.drop_collection(physical)
    dim = len(records[0].vector)
    if ws.store.engine == "edge":
        ws.store._shards[physical] = qe.EdgeShard.create(
            str(ws.store._path(physical)),
            qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Euclid)),
        )
    else:
        ws.store.client.create_collection(
            physical, vectors_config=models.VectorParams(size=dim, distance=models.Distance.EUCLID)
        )
    ws.store.upsert(physical, [r.id for r in records], [r.vector for r in records], [r.payload for r in records])
    return {str(r.id): r.vector for r in records}


def test_a_legacy_collection_searches_dense_until_reindex_adds_bm25(kb, identity_embedder, caplog):
    from ragcun.catalog.ops import require_collection
    from ragcun.collections import reindex

    with kb.catalog.session() as session:
        old = require_collection(session, "kb").physical_name
    vectors = make_legacy(kb, old)
    assert not kb.store.shape(old).hybrid
    with caplog.at_level("WARNING"):
        hits = search(kb, "kb", LEXICAL, 5, mode="hybrid")
    assert [h.doc_id for h in hits] == [h.doc_id for h in search(kb, "kb", LEXICAL, 5)]
    assert "has no BM25 vectors yet" in caplog.text and "ragcun reindex -c kb" in caplog.text

    result = reindex(kb, "kb")
    assert result.switched and result.chunks_embedded == 0 and result.chunks_total == len(DOCS)
    assert result.previous_physical_name == old and kb.store.shape(result.physical_name).hybrid
    assert search(kb, "kb", LEXICAL, 1, mode="bm25")[0].doc_id == "kernel"
    copied = {str(r.id): r.vector for r in kb.store.scroll(result.physical_name, with_vectors=True)}
    assert copied.keys() == vectors.keys()
    assert all(copied[k] == pytest.approx(vectors[k]) for k in vectors)  # not re-embedded
    assert not reindex(kb, "kb").switched  # nothing left to do


def test_payload_index_on_a_metadata_key_is_kept_by_reindex(kb, mlp_embedder):
    from ragcun.catalog.ops import require_collection
    from ragcun.collections import reindex
    from ragcun.collections.create import index_payload

    assert index_payload(kb, "kb", "metadata.team")["indexes"] == {"metadata.team": "keyword"}
    with pytest.raises(InvalidInputError, match="unknown key 'colour'"):
        index_payload(kb, "kb", "colour")
    reindex(kb, "kb", mlp_embedder)
    with kb.catalog.session() as session:
        assert require_collection(session, "kb").settings["payload_indexes"] == {"metadata.team": "keyword"}
    assert {h.doc_id for h in search(kb, "kb", "oil", 10, filter="metadata.team=infra")} == {"cars", "tax"}


def test_eval_puts_dense_bm25_and_hybrid_side_by_side(kb, tmp_path):
    from ragcun.evaluation import evaluate

    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        json.dumps({"_id": "q1", "text": LEXICAL}) + "\n" + json.dumps({"_id": "q2", "text": SEMANTIC}) + "\n"
    )
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\tkernel\t1\nq2\tcars\t1\n")
    report = evaluate(
        kb,
        "kb",
        queries,
        qrels,
        compare=["dense", "bm25-engine", "hybrid-rrf", "hybrid-dbsf"],
        store=False,
        mode="hybrid",
    )
    by_method = {
        r.method.split()[-1] if r.method.startswith("model") else r.method: r.metrics["recall@10"]
        for r in report.results
    }
    assert by_method["hybrid"] == by_method["hybrid-rrf"] == by_method["hybrid-dbsf"] == 1.0
    assert by_method["bm25-engine"] == 0.5  # the semantic query shares no word with its document
    filtered = evaluate(kb, "kb", queries, qrels, compare=[], store=False, mode="hybrid", filter="metadata.team=ops")
    assert filtered.results[0].metrics["recall@10"] == 0.5  # cars (team infra) is filtered out
