"""`ragcun adapt` end to end: the base-vector store, the adapted version and its gate, the label-free scores.

Real encoder, real SQLite catalogs and real Qdrant engines in tmp_path; encoder calls are counted on
the real encoder with a forward hook.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from ragcun.catalog.models import BaseVector, Chunk
from ragcun.cli import cli
from ragcun.collections import check, reindex, rollback
from ragcun.collections.adapt import EXIT_REFUSED, TRAINING_RUN_FILE, adapt_collection
from ragcun.collections.base_vectors import base_key
from ragcun.ingest import IngestOptions, ingest
from ragcun.model import GaussianEmbedder
from ragcun.model.adapt import cut_spans
from ragcun.rag import RAGPipeline, Retriever
from ragcun.rag.pipeline import NOT_CLOSER_THAN_CHANCE
from ragcun.retrieve import GaussianRetriever
from ragcun.retrieve.collection import search
from ragcun.training.adapt import AdaptConfig

from .conftest import copy_adi_home, open_home

ON_TOPIC = "computer-based retrieval of documents"
OFF_TOPIC = "What is the capital of Australia?"
# A deliberately broken recipe: two output axes cannot keep the corpus's neighbours.
BROKEN = AdaptConfig(out_dim=2, gamma=1.0)


@contextmanager
def encoder_calls(encoder):
    """Count forward passes of the real base encoder (one per batch of texts) while the block runs."""
    calls = []
    handle = encoder.register_forward_hook(lambda module, args, output: calls.append(1))
    try:
        yield calls
    finally:
        handle.remove()


def served_encoder(ws, name: str):
    """The base encoder of the model the workspace serves ``name`` with (loaded by the workspace itself)."""
    from ragcun.catalog.ops import require_collection

    with ws.catalog.session() as session:
        return ws.embedder_for(require_collection(session, name)).base


def chunk_count(ws) -> int:
    with ws.catalog.session() as session:
        return session.scalar(select(func.count()).select_from(Chunk))


# ---- the base-vector store -----------------------------------------------------------------------


def test_ingest_keeps_base_vectors_and_a_head_only_reindex_never_encodes(
    adi_workspace, identity_embedder, base_encoder
):
    workspace = adi_workspace  # ADI ingested with the identity model
    with workspace.catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(BaseVector)) == chunk_count(workspace)
        row = session.scalars(select(BaseVector)).first()
        assert row.base_key == base_key(identity_embedder.config()) and len(row.vector) == 2 * 384
    linear = GaussianEmbedder(head="linear", out_dim=48, seed=11, base_encoder=base_encoder)
    with encoder_calls(base_encoder) as calls:
        result = reindex(workspace, "adi", linear)
    assert calls == [] and result.switched and result.chunks_embedded == chunk_count(workspace)
    # The points are the new head over the stored base vectors: nearly encode()'s (float16 base).
    hits = search(workspace, "adi", ON_TOPIC, 5, exact=True)
    vectors = linear.encode([h.text for h in hits])
    query = linear.encode([ON_TOPIC])[0]
    np.testing.assert_allclose([h.distance for h in hits], np.linalg.norm(vectors - query, axis=1), rtol=5e-3)

    # A chunk whose base vector is gone is encoded again (and kept), the rest still come from the store.
    with workspace.catalog.session() as session:
        session.delete(session.scalars(select(BaseVector)).first())
        session.commit()
    other = GaussianEmbedder(head="linear", out_dim=32, seed=12, base_encoder=base_encoder)
    with encoder_calls(base_encoder) as calls:
        reindex(workspace, "adi", other)
    assert len(calls) == 1
    assert [r.problems for r in check(workspace, "adi")] == [0]


def test_check_reports_and_repairs_the_base_vector_store(adi_workspace, identity_embedder):
    workspace = adi_workspace  # ADI ingested with the identity model
    with workspace.catalog.session() as session:
        gone = session.scalars(select(BaseVector)).first()
        gone_sha = gone.sha256
        session.delete(gone)
        key = base_key(identity_embedder.config())
        session.add(BaseVector(base_key=key, sha256="0" * 64, dim=384, vector=np.zeros(384, "<f2").tobytes()))
        session.commit()
    [report] = check(workspace, "adi")
    assert len(report.missing_base_vectors) >= 1 and report.orphan_base_vectors == ["0" * 64]
    with encoder_calls(served_encoder(workspace, "adi")) as calls:
        [repaired] = check(workspace, "adi", repair=True)
    assert len(calls) == 1 and repaired.problems == 0
    assert repaired.repaired["base_vectors_deleted"] == 1 and repaired.repaired["base_vectors_encoded"] >= 1
    with workspace.catalog.session() as session:
        assert session.get(BaseVector, (key, gone_sha)) is not None


def test_deleting_documents_forgets_their_base_vectors(tmp_path, workspace, identity_embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Gaussian embeddings keep the norm of every passage.")
    (folder / "b.txt").write_text("A library catalogue lists books by author and title.")
    ingest(workspace, [folder], "docs", identity_embedder)
    (folder / "b.txt").unlink()
    ingest(workspace, [folder], "docs", identity_embedder, IngestOptions(sync=True))
    with workspace.catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(BaseVector)) == 1
    assert [r.problems for r in check(workspace, "docs")] == [0]


# ---- adapt -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def adapted(tmp_path_factory, adi_template):
    """ADI ingested with the untrained base (identity head; a copy of the session's), then adapted by the
    library call."""
    ws = open_home(copy_adi_home(adi_template, "edge", tmp_path_factory.mktemp("adapt") / "adi"), "edge")
    with encoder_calls(served_encoder(ws, "adi")) as calls:
        result = adapt_collection(ws, "adi")
    yield ws, result, len(calls)
    ws.close()


def test_adapt_fits_gates_and_activates_without_re_encoding_chunks(adapted, identity_embedder):
    ws, result, calls = adapted
    assert result.passed and result.activated and not result.forced, result.reason
    assert result.previous == identity_embedder.fingerprint and result.candidate != result.previous
    assert result.chunks_encoded == 0 and result.reindex["chunks_embedded"] == result.chunks
    # the encoder ran only for the spans: batches of 32 of them
    assert result.spans > 0 and calls == -(-result.spans // 32)
    run = json.loads((Path(result.model_path) / TRAINING_RUN_FILE).read_text())
    assert run["recipe"] == "adapt" and run["labels"] == "none" and run["activated"]
    assert {"config", "chunks_isotropy", "spans_isotropy", "log"} <= set(run["metrics"])
    assert {"agreement@10", "span@10"} <= set(run["gate"]["candidate"])
    assert GaussianEmbedder.load(result.model_path).head_spec.kind == "unit-linear-unit-query"
    assert [r.problems for r in check(ws, "adi")] == [0]


def test_adapted_hits_carry_p_values_and_ask_abstains_off_topic(adapted):
    ws, _, _ = adapted
    on = search(ws, "adi", ON_TOPIC, 5)
    off = search(ws, "adi", OFF_TOPIC, 5)
    assert all(h.p_value is not None and 0.0 <= h.p_value <= 1.0 for h in on + off)
    assert [h.p_value for h in on] == sorted(h.p_value for h in on)  # nearer, less likely by chance
    assert on[0].p_value < 0.05 < off[0].p_value
    assert on[0].out_of_domain is False
    with RAGPipeline(Retriever(collection="adi", workspace=ws)) as pipeline:
        refused = pipeline.query(OFF_TOPIC)
        answered = pipeline.query(ON_TOPIC)
    assert refused.abstained and refused.answer == NOT_CLOSER_THAN_CHANCE and refused.citations == []
    assert not answered.abstained and answered.answer != NOT_CLOSER_THAN_CHANCE


def test_base_models_give_no_p_value(adi_workspace):
    hits = search(adi_workspace, "adi", ON_TOPIC, 3)
    assert [h.p_value for h in hits] == [None] * 3 and hits[0].out_of_domain is None


def test_gate_refuses_a_broken_candidate_which_stays_registered(adi_workspace, identity_embedder):
    workspace = adi_workspace  # ADI ingested with the identity model
    refused = adapt_collection(workspace, "adi", config=BROKEN)
    assert not refused.passed and not refused.activated and "agreement" in refused.reason
    assert search(workspace, "adi", ON_TOPIC, 1)[0].p_value is None  # still served by the base
    assert (Path(refused.model_path) / TRAINING_RUN_FILE).is_file()
    with encoder_calls(served_encoder(workspace, "adi")) as calls:
        forced = adapt_collection(workspace, "adi", config=BROKEN, force=True)
    assert forced.activated and forced.forced and forced.candidate == refused.candidate
    assert calls == []  # the spans come from the home's base-embedding cache this time
    assert rollback(workspace, "adi").model_version == identity_embedder.fingerprint


def test_adapt_and_ingest_adapt_cli(adi_home, tmp_path):
    home = adi_home  # `ragcun ingest ADI -c adi --model <identity model>` done
    runner = CliRunner()
    extra = tmp_path / "extra.txt"
    extra.write_text("Automatic indexing assigns subject terms to documents so that a retrieval system can find them.")
    done = runner.invoke(cli, ["--home", home, "ingest", str(extra), "-c", "adi", "--adapt", "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["ingest"]["added"] == 1 and report["adapt"]["activated"] and report["adapt"]["chunks"] == 83
    text = runner.invoke(cli, ["--home", home, "search", ON_TOPIC, "-c", "adi", "-k", "3"])
    assert text.exit_code == 0, text.output
    header = text.output.splitlines()[1]
    assert "distance" in header and "norm" in header and "p chance" in header and "P(rel)" not in header
    again = runner.invoke(cli, ["--home", home, "adapt", "-c", "adi"])
    assert again.exit_code == 0 and "gate passed" in again.output, again.output
    answer = runner.invoke(cli, ["--home", home, "ask", OFF_TOPIC, "-c", "adi", "--json"])
    assert answer.exit_code == 0 and json.loads(answer.stdout)["abstained"]


def test_adapt_cli_exit_code_when_the_gate_refuses(adi_home, monkeypatch):
    home = adi_home  # `ragcun ingest ADI -c adi --model <identity model>` done
    runner = CliRunner()
    # The recipe's defaults are what the CLI runs; break them for this test only.
    monkeypatch.setattr(AdaptConfig, "__init__", _broken_init)
    refused = runner.invoke(cli, ["--home", home, "adapt", "-c", "adi"])
    assert refused.exit_code == EXIT_REFUSED and "gate refused" in refused.output and "not activated" in refused.output


_real_init = AdaptConfig.__init__


def _broken_init(self, *args, **kwargs):
    _real_init(self, *args, **{"out_dim": 2, "gamma": 1.0, **kwargs})


# ---- in memory ------------------------------------------------------------------------------------


def test_retriever_adapt_refits_in_memory_through_the_head_only(identity_embedder, base_encoder):
    from ragcun.beir import SAMPLE_DIR, read_corpus

    docs = [d.content for d in read_corpus(SAMPLE_DIR)]
    retriever = GaussianRetriever(embedder=identity_embedder)
    retriever.add_documents(docs)
    with encoder_calls(base_encoder) as calls:
        fitted = retriever.adapt()
    assert fitted.passed and fitted.activated, fitted.reason
    assert len(calls) == -(-fitted.spans // 32)  # spans only: the documents' base vectors were kept
    assert retriever.embedder is fitted.model and len(retriever) == len(docs)
    hits = retriever.search(ON_TOPIC, 3)
    assert hits[0].p_value is not None and hits[0].p_value < 0.05
    np.testing.assert_allclose(
        hits[0].distance,
        np.linalg.norm(fitted.model.encode([hits[0].text])[0] - fitted.model.encode_queries([ON_TOPIC])[0]),
        rtol=1e-4,
    )


def test_cut_spans_is_capped_and_skips_short_texts():
    texts = ["one two three", " ".join(f"w{i}" for i in range(40)), " ".join(f"v{i}" for i in range(30))]
    spans, owner = cut_spans(texts)
    assert len(spans) == 4 and set(owner.tolist()) == {1, 2}
    assert all(len(s.split()) == 12 and s in texts[o] for s, o in zip(spans, owner, strict=False))
    from ragcun.model.adapt import SpanOptions

    assert len(cut_spans(texts, SpanOptions(cap=3))[0]) == 3
