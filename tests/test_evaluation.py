"""``ragcun eval``, ``stats``, ``calibrate`` and query arithmetic, end to end on the real ADI corpus.

ADI is ingested once per module (by ``eval --beir``, which is itself under test) with the real
packaged encoder and an identity head, into a real SQLite catalog and the embedded Qdrant engine.
"""

import json
import shutil
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from click.testing import CliRunner

from ragcun.beir import SAMPLE_DIR, read_corpus, read_qrels, read_queries
from ragcun.cli import cli
from ragcun.evaluation import expected_calibration_error, gaussian_probabilities, separation
from ragcun.evaluation.metrics import per_query_metrics, rank, retrieval_metrics, run_from_scores
from ragcun.evaluation.stats import sample_lid
from ragcun.retrieve import GaussianRetriever

ADI_QUERIES = str(SAMPLE_DIR / "queries.jsonl")
ADI_QRELS = str(SAMPLE_DIR / "qrels" / "test.tsv")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MIXED = Path(__file__).parent / "fixtures" / "beir-mixed"  # title-only and text-only rows


def invoke(home, *argv):
    return CliRunner().invoke(cli, ["--home", home, *argv])


def run_json(home, *argv):
    result = invoke(home, *argv, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_png(path):
    assert path.read_bytes()[:8] == PNG_MAGIC
    height, width, _ = matplotlib.image.imread(path).shape
    assert height > 100 and width > 100


@pytest.fixture(scope="module")
def adi(tmp_path_factory, identity_model_dir):
    """A home holding collection ``adi``, created by ``eval --beir``, and that first report."""
    root = tmp_path_factory.mktemp("eval")
    home = str(root / "home")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAGCUN_CACHE", str(root / "cache"))  # the baselines' embedding cache, kept out of ~/.cache
        assert invoke(home, "init").exit_code == 0
        plot = root / "reliability.png"
        report = run_json(
            home,
            "eval",
            "--beir",
            str(SAMPLE_DIR),
            "-c",
            "adi",
            "--model",
            str(identity_model_dir),
            "--compare",
            "base-cosine,base-l2,bm25",
            "--plot",
            str(plot),
        )
        yield home, report, plot, root


def test_eval_beir_reports_every_figure_and_stores_it(adi):
    home, report, plot, _ = adi
    assert report["collection"] == "adi" and report["num_queries"] == 35
    assert (report["unknown_query_ids"], report["unknown_doc_ids"]) == (0, 0)
    # ADI numbers queries and documents separately, and 4 queries judge their same-id document relevant.
    (warning,) = report["warnings"]
    assert warning.startswith("4 query(ies) have a relevant document with the query's own id")
    model, cosine, l2, bm25 = report["results"]
    assert model["method"].startswith("model ") and len(model["model_version"]) == 64
    assert [cosine["method"], l2["method"], bm25["method"]] == ["base-cosine", "base-l2", "bm25"]
    for result in report["results"]:
        assert set(result["metrics"]) == {"ndcg@10", "recall@10", "recall@100", "mrr@10"}
        assert all(0 < v <= 1 for v in result["metrics"].values())
    # The identity head is the base encoder without Normalize: its space *is* base-l2 (scored from the
    # stored vectors; the headed-model test below checks base-l2 computed by re-embedding).
    assert model["metrics"] == pytest.approx(l2["metrics"]) and model["separation"] == pytest.approx(l2["separation"])
    for result in (model, cosine):
        assert result["separation"] > 0  # relevant documents are nearer than the rest, on this corpus
        assert 0 <= result["ece"] <= 1 and result["sigma"] == 1.0
        assert sum(row["count"] for row in result["reliability"]) == 35 * 10
    assert -1 <= model["spearman_query_norm_ndcg"] <= 1 and -1 <= model["spearman_doc_norm_relevance"] <= 1
    assert cosine["spearman_query_norm_ndcg"] is None  # unit vectors carry no norm
    assert bm25["ece"] is None and bm25["spearman_doc_norm_relevance"] is None and bm25["separation"] is None
    assert report["plot"] == str(plot)
    assert_png(plot)

    stored = [row for row in run_json(home, "eval", "list", "-c", "adi") if row["batch"] == report["batch"]]
    assert [row["method"] for row in stored] == [r["method"] for r in report["results"]]
    assert stored[0]["model_version"] == model["model_version"] and stored[1]["model_version"] is None
    assert stored[0]["ndcg@10"] == pytest.approx(model["metrics"]["ndcg@10"])
    assert stored[0]["keep_identical_ids"] is False and stored[0]["missing_documents"] == 0
    text = invoke(home, "eval", "list")
    assert text.exit_code == 0 and "ndcg@10" in text.output and "bm25" in text.output
    assert "same-ids" in text.output.splitlines()[0] and " ignored " in text.output


def test_every_adi_document_is_in_the_collection(adi):
    home = adi[0]
    lines = sum(1 for line in (SAMPLE_DIR / "corpus.jsonl").read_text().splitlines() if line.strip())
    (physical,) = run_json(home, "collections", "show", "adi")["physical"]
    assert physical["documents"] == lines == 82


def test_eval_ndcg_agrees_with_the_trainers_evaluator(adi, identity_embedder):
    """The collection path (scroll, best chunk per document, pytrec_eval) gives the trainer's figures."""
    report = run_json(
        adi[0],
        "eval",
        "-c",
        "adi",
        "--queries",
        ADI_QUERIES,
        "--qrels",
        ADI_QRELS,
        "--compare",
        "none",
        "--keep-identical-ids",
    )
    assert report["warnings"] == []
    corpus, queries, qrels = read_corpus(SAMPLE_DIR), read_queries(SAMPLE_DIR), read_qrels(ADI_QRELS)
    query_ids = sorted(q for q in qrels if q in queries)
    docs = identity_embedder.encode([d.content for d in corpus])
    indices, scores = rank(identity_embedder.encode([queries[q] for q in query_ids]), docs, k=100)
    run = run_from_scores(query_ids, [d.doc_id for d in corpus], indices, scores)
    expected = retrieval_metrics(run, qrels)
    assert report["results"][0]["metrics"]["ndcg@10"] == pytest.approx(expected["ndcg@10"], abs=1e-4)
    assert report["results"][0]["metrics"]["recall@100"] == pytest.approx(expected["recall@100"], abs=1e-4)


def test_baselines_of_a_headed_model_use_the_base_encoder(adi, tmp_path, mlp_embedder):
    """With a real head, base-l2 re-embeds the chunk texts without it: the identity model's figures."""
    home, identity_report = adi[0], adi[1]
    mlp_embedder.save(tmp_path / "mlp")
    assert (
        invoke(
            home, "ingest", str(SAMPLE_DIR / "corpus.jsonl"), "-c", "adi-mlp", "--model", str(tmp_path / "mlp")
        ).exit_code
        == 0
    )
    report = run_json(
        home, "eval", "-c", "adi-mlp", "--queries", ADI_QUERIES, "--qrels", ADI_QRELS, "--compare", "base-l2"
    )
    model, base_l2 = report["results"]
    assert model["model_version"] == mlp_embedder.fingerprint
    assert base_l2["metrics"] == pytest.approx(identity_report["results"][2]["metrics"], abs=1e-6)


def test_eval_text_table_and_bad_qrels_are_counted(adi, tmp_path):
    home = adi[0]
    qrels = tmp_path / "qrels.tsv"
    lines = (SAMPLE_DIR / "qrels" / "test.tsv").read_text().splitlines()
    qrels.write_text("\n".join([*lines, "999\t1\t1", "999\t2\t1", "1\tno-such-doc\t1"]) + "\n")
    result = invoke(home, "eval", "-c", "adi", "--queries", ADI_QUERIES, "--qrels", str(qrels), "--compare", "none")
    assert result.exit_code == 0, result.output
    assert "2 qrels row(s) name a query id missing from the queries file" in result.stderr
    assert "1 qrels row(s) name a document id missing from the collection" in result.stderr
    header = result.stdout.splitlines()[1].split()
    assert header[:3] == ["method", "ndcg@10", "mrr@10"] and "separation" in header and "ece" in header
    assert len(result.stdout.splitlines()) == 3  # summary, header, the collection's model alone


@pytest.mark.parametrize(
    "content, message",
    [
        ("query-id\tcorpus-id\tscore\n", "no relevance judgement (empty qrels"),
        ("query-id\tcorpus-id\tscore\n999\t1\t1\n", "no query has a relevant document in the collection"),
    ],
)
def test_eval_refuses_unusable_qrels(adi, tmp_path, content, message):
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text(content)
    result = invoke(adi[0], "eval", "-c", "adi", "--queries", ADI_QUERIES, "--qrels", str(qrels))
    assert result.exit_code == 1 and result.output.startswith("Error: ") and message in result.output


def test_eval_refuses_duplicate_query_ids(adi, tmp_path):
    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"_id": "1", "text": "a"}\n{"_id": "2", "text": "b"}\n{"_id": "1", "text": "c"}\n')
    result = invoke(adi[0], "eval", "-c", "adi", "--queries", str(queries), "--qrels", ADI_QRELS)
    assert result.exit_code == 1
    assert result.output == f"Error: {queries}: 1 duplicate query id(s), e.g. 1; each query id must appear once\n"


def test_eval_ignores_a_document_with_the_query_id(tmp_path, identity_model_dir):
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    docs = [
        ("q1", "How are library catalogues computerised?"),
        ("d1", "Computerising the catalogue of a university library."),
        ("d2", "The Eiffel Tower is a wrought-iron landmark in Paris."),
    ]
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in docs))
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": docs[0][1]}) + "\n")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    home = str(tmp_path / "home")
    assert invoke(home, "init").exit_code == 0
    report = run_json(home, "eval", "--beir", str(folder), "--model", str(identity_model_dir), "--compare", "none")
    assert report["collection"] == "beir-beir"
    # Without the rule, the query's own text (doc q1) would rank first and MRR@10 would be 0.5.
    assert report["results"][0]["metrics"]["mrr@10"] == 1.0


def test_title_only_and_text_only_rows_are_documents(tmp_path, identity_model_dir):
    home = str(tmp_path / "home")
    assert invoke(home, "init").exit_code == 0
    report = run_json(
        home, "eval", "--beir", str(MIXED), "-c", "mixed", "--model", str(identity_model_dir), "--compare", "none"
    )
    lines = (MIXED / "corpus.jsonl").read_text().splitlines()
    (physical,) = run_json(home, "collections", "show", "mixed")["physical"]
    # d6 has an id and nothing else (as two Cranfield documents do): kept as an empty document, not failed.
    assert physical["documents"] == len(lines) == 6
    assert report["missing_documents"] == 0 and report["unknown_doc_ids"] == 0
    # d1 is a title alone: "how do I rotate keys?" still finds it first.
    assert report["results"][0]["metrics"]["mrr@10"] > 0.5


def test_eval_refuses_a_collection_with_failed_documents(tmp_path, identity_model_dir):
    folder = tmp_path / "beir"
    shutil.copytree(MIXED, folder)
    with (folder / "corpus.jsonl").open("a") as corpus:
        corpus.write(json.dumps({"_id": "d7", "title": "Rotation", "text": 6}) + "\n")
        corpus.write(json.dumps({"_id": "d8", "text": 7}) + "\n")
    home = str(tmp_path / "home")
    assert invoke(home, "init").exit_code == 0
    refused = invoke(home, "eval", "--beir", str(folder), "--model", str(identity_model_dir), "--compare", "none")
    assert refused.exit_code == 1
    assert refused.output == (
        "Error: collection 'beir-beir' lacks 2 document(s) that failed to ingest "
        "(\"field 'text' is int, not a string\" ×2); "
        "see `ragcun runs show 1`, fix the corpus and ingest again, or pass --allow-incomplete to score it anyway\n"
    )
    # The same refusal for an evaluation of the collection by name.
    by_name = invoke(
        home,
        "eval",
        "-c",
        "beir-beir",
        "--queries",
        str(folder / "queries.jsonl"),
        "--qrels",
        str(folder / "qrels" / "test.tsv"),
        "--compare",
        "none",
    )
    assert by_name.exit_code == 1 and "lacks 2 document(s)" in by_name.output
    report = run_json(home, "eval", "--beir", str(folder), "--compare", "none", "--allow-incomplete")
    assert report["missing_documents"] == 2
    assert any("2 corpus document(s) failed to ingest" in w for w in report["warnings"])
    assert run_json(home, "eval", "list")[-1]["missing_documents"] == 2
    # Fixed and ingested again, the collection is complete and eval scores it without the flag.
    shutil.copy(MIXED / "corpus.jsonl", folder / "corpus.jsonl")
    assert run_json(home, "eval", "--beir", str(folder), "--compare", "none")["missing_documents"] == 0


def test_stats_against_the_gaussian_reference(adi):
    home, _, _, root = adi
    plot = root / "stats.png"
    stats = run_json(home, "stats", "-c", "adi", "--plot", str(plot))
    assert (stats["count"], stats["dim"]) == (82, 384)
    assert stats["norm"]["chi"]["mean"] == pytest.approx(np.sqrt(384 - 0.5), rel=1e-3)
    assert set(stats["norm"]["quantiles"]) == {"0.05", "0.25", "0.5", "0.75", "0.95"}
    assert len(stats["per_dim_mean"]) == len(stats["per_dim_var"]) == len(stats["eigenvalues"]) == 384
    assert stats["eigenvalues"] == sorted(stats["eigenvalues"], reverse=True)
    # 82 points span at most 81 directions, whatever the model.
    assert 0 < stats["effective_rank_ratio"] <= 81 / 384
    assert stats["effective_rank_cap"] == pytest.approx(81 / 384)
    (warning,) = stats["warnings"]
    assert warning.startswith(
        "82 points in 384 dimensions: the effective rank / dim cannot exceed (points - 1) / dim = 0.211"
    )
    assert 0.8 < stats["sigreg_reference"] < 1.4 < stats["sigreg"]  # raw MiniLM is far from N(0, I)
    # Text embeddings lie near low-dimensional patches; 82 Gaussian points in 384-d do not.
    assert 2 < stats["local_intrinsic_dim"] < 0.7 * stats["local_intrinsic_dim_reference"]
    assert_png(plot)
    text = invoke(home, "stats", "-c", "adi")
    assert text.exit_code == 0 and "χ(384)" in text.output and "SIGReg" in text.output
    assert "local intrinsic dim" in text.output
    assert "at most 0.211 with 82 points" in text.output and "warning: 82 points in 384 dimensions" in text.output


def test_local_intrinsic_dim_finds_the_dimension_of_a_subspace():
    rng = np.random.default_rng(0)
    embed = rng.standard_normal((4, 64))
    on_subspace = rng.standard_normal((5000, 4)) @ embed  # 4-dimensional data in a 64-d space
    assert 3.3 < sample_lid(on_subspace) < 4.7
    assert sample_lid(rng.standard_normal((5000, 64))) > 25  # the estimator is biased low at high dim
    assert sample_lid(np.ones((50, 8))) is None  # duplicates only: no spread to measure
    assert sample_lid(np.eye(2)) is None  # too few points for two neighbours


def test_stats_needs_two_points(adi, tmp_path, identity_model_dir):
    home = adi[0]
    (tmp_path / "one.txt").write_text("A single document about library catalogues.")
    assert (
        invoke(home, "ingest", str(tmp_path / "one.txt"), "-c", "tiny", "--model", str(identity_model_dir)).exit_code
        == 0
    )
    result = invoke(home, "stats", "-c", "tiny")
    assert result.exit_code == 1
    assert result.output.startswith("Error: collection 'tiny' has 1 point(s); stats need at least 2")


def test_calibrate_stores_sigma_and_search_reports_probabilities(adi, tmp_path):
    home = adi[0]
    # Calibrate on the odd query ids only (a dev split), as one would never on the reported test set.
    rows = (SAMPLE_DIR / "qrels" / "test.tsv").read_text().splitlines()
    dev = tmp_path / "dev.tsv"
    dev.write_text("\n".join([rows[0], *(r for r in rows[1:] if int(r.split("\t")[0]) % 2)]) + "\n")
    result = run_json(home, "calibrate", "-c", "adi", "--queries", ADI_QUERIES, "--qrels", str(dev))
    sigma = result["sigma"]
    assert sigma > 0 and sigma != 1.0 and result["previous_sigma"] == 1.0 and result["top_k"] == 10
    assert result["ece_after"] <= result["ece_before"] + 1e-9

    hits = run_json(home, "search", "What is information science?", "-c", "adi", "-k", "5", "--exact")
    assert sum(h["probability"] for h in hits) == pytest.approx(1.0)
    distances = np.array([h["distance"] for h in hits])
    assert [h["probability"] for h in hits] == pytest.approx(list(gaussian_probabilities(distances, sigma)))
    assert len({h["query_norm"] for h in hits}) == 1 and hits[0]["query_norm"] > 0
    text = invoke(home, "search", "What is information science?", "-c", "adi", "-k", "2")
    assert text.output.startswith("query norm ") and "P(rel)" in text.output and "  0." in text.output

    assert run_json(home, "calibrate", "-c", "adi", "--sigma", "2.5")["previous_sigma"] == pytest.approx(sigma)
    report = run_json(home, "eval", "-c", "adi", "--queries", ADI_QUERIES, "--qrels", ADI_QRELS, "--compare", "none")
    assert report["results"][0]["sigma"] == 2.5
    bad = invoke(home, "calibrate", "-c", "adi")
    assert bad.exit_code == 2 and "give --queries and --qrels" in bad.output


def count_topic(texts, word):
    return sum(word in text.lower() for text in texts)


def test_search_plus_minus_moves_results_toward_a_topic(adi):
    home = adi[0]
    query = ["indexing of documents", "-c", "adi", "-k", "10", "--exact"]
    plain = [h["text"] for h in run_json(home, "search", *query)]
    plus = [h["text"] for h in run_json(home, "search", *query, "--plus", "medicine")]
    minus = [h["text"] for h in run_json(home, "search", *query, "--minus", "medicine")]
    assert count_topic(plus, "medic") > count_topic(plain, "medic") >= count_topic(minus, "medic")
    only_plus = run_json(home, "search", "--plus", "medicine", "-c", "adi", "-k", "3")
    assert len(only_plus) == 3
    empty = invoke(home, "search", "-c", "adi")
    assert empty.exit_code == 2 and "give a QUERY, or at least one --plus" in empty.output


def test_query_arithmetic_api(identity_embedder):
    retriever = GaussianRetriever(embedder=identity_embedder)
    retriever.add_documents([d.content for d in read_corpus(SAMPLE_DIR)])
    query = retriever.embed("information retrieval systems")
    plain = [doc for doc, _ in retriever.retrieve_vector(query, 10)]
    toward = [doc for doc, _ in retriever.retrieve_vector(query + retriever.embed("library"), 10)]
    away = [doc for doc, _ in retriever.retrieve_vector(query - retriever.embed("library"), 10)]
    assert count_topic(toward, "librar") > count_topic(plain, "librar") >= count_topic(away, "librar")


def test_figures_on_known_inputs():
    # Relevant at distance 1, the rest at 3: separation = (3 − 1) / std.
    distances, relevant = np.array([1.0, 3.0, 3.0, 3.0]), np.array([True, False, False, False])
    assert separation(distances, relevant) == pytest.approx(2.0 / distances.std())
    assert np.isnan(separation(distances, np.zeros(4, dtype=bool)))
    # Labels drawn with exactly the predicted probability give a small ECE; inverted labels a large one.
    rng = np.random.default_rng(0)
    p = rng.uniform(size=20000)
    assert expected_calibration_error(p, rng.uniform(size=p.size) < p) < 0.02
    assert expected_calibration_error(p, p < 0.5) > 0.4
    probabilities = gaussian_probabilities(np.array([[0.0, 1.0], [5.0, 5.0]]), sigma=1.0)
    assert probabilities.sum(axis=1) == pytest.approx([1.0, 1.0])
    assert probabilities[0, 0] == pytest.approx(1 / (1 + np.exp(-0.5))) and probabilities[1, 0] == 0.5
    run = {"q": {"a": 3.0, "b": 2.0}}
    assert per_query_metrics(run, {"q": {"b": 1}})["q"]["mrr@10"] == 0.5
