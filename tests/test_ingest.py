"""Ingestion against real engines, a real SQLite catalog and the real encoder."""

import json
import signal

import numpy as np
import pytest
from qdrant_client import QdrantClient
from sqlalchemy import func, select

from ragcun.catalog.models import Chunk, CollectionChunk, Document, IngestRun
from ragcun.errors import ModelMismatchError
from ragcun.ingest import IngestOptions, ingest
from ragcun.model import GaussianEmbedder
from ragcun.retrieve.collection import search
from ragcun.settings import Settings
from ragcun.workspace import Workspace, init_home

from .conftest import ADI, THREE_DOCS, copy_adi_home, open_home, run_cli_until_fault


def write_docs(folder, docs):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_text(text)
    return folder


def store_state(ws, name):
    """(point ids in the store, chunk ids the catalog says the collection holds)."""
    with ws.catalog.session() as session:
        from ragcun.catalog.ops import require_collection

        collection = require_collection(session, name)
        catalog_ids = set(
            session.scalars(select(CollectionChunk.chunk_id).where(CollectionChunk.collection_id == collection.id))
        )
        physical = collection.physical_name
    point_ids = [r.id for r in ws.store.scroll(physical)]
    return point_ids, catalog_ids


def test_reingest_is_idempotent(workspace, identity_embedder, tmp_path):
    folder = write_docs(tmp_path / "in", {f"d{i}.txt": text for i, text in enumerate(THREE_DOCS)})
    first = ingest(workspace, [folder], "docs", identity_embedder)
    assert (first.added, first.unchanged, first.chunks_written) == (3, 0, 3)
    second = ingest(workspace, [folder], "docs", identity_embedder)
    assert (second.added, second.updated, second.unchanged, second.chunks_written) == (0, 0, 3, 0)
    points, catalog = store_state(workspace, "docs")
    assert len(points) == len(set(points)) == 3 and set(points) == catalog


def test_changed_file_replaces_its_chunks(workspace, identity_embedder, tmp_path):
    folder = write_docs(tmp_path / "in", {"a.txt": THREE_DOCS[0], "b.txt": THREE_DOCS[2]})
    ingest(workspace, [folder], "docs", identity_embedder)
    (folder / "a.txt").write_text("Rust is a systems programming language focused on memory safety.")
    result = ingest(workspace, [folder], "docs", identity_embedder)
    assert (result.added, result.updated, result.unchanged, result.chunks_written) == (0, 1, 1, 1)
    points, catalog = store_state(workspace, "docs")
    assert len(points) == 2 and set(points) == catalog
    hits = search(workspace, "docs", "memory safe systems language", top_k=1, embedder=identity_embedder)
    assert hits[0].text.startswith("Rust is")
    assert all("Python" not in h.text for h in search(workspace, "docs", "python", top_k=5, embedder=identity_embedder))


def test_sync_deletes_documents_of_vanished_files(workspace, identity_embedder, tmp_path):
    folder = write_docs(tmp_path / "in", {f"d{i}.txt": text for i, text in enumerate(THREE_DOCS)})
    ingest(workspace, [folder], "docs", identity_embedder)
    (folder / "d1.txt").unlink()
    without_sync = ingest(workspace, [folder], "docs", identity_embedder)
    assert without_sync.deleted == 0 and len(store_state(workspace, "docs")[0]) == 3
    with_sync = ingest(workspace, [folder], "docs", identity_embedder, IngestOptions(sync=True))
    assert with_sync.deleted == 1
    points, catalog = store_state(workspace, "docs")
    assert len(points) == 2 and set(points) == catalog
    assert all(
        "Machine learning" not in h.text
        for h in search(workspace, "docs", "machine learning", top_k=5, embedder=identity_embedder)
    )


def test_jsonl_line_removed_from_changed_file_is_deleted(workspace, identity_embedder, tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"id": f"x{i}", "text": t}) + "\n" for i, t in enumerate(THREE_DOCS)))
    ingest(workspace, [path], "docs", identity_embedder)
    path.write_text("".join(json.dumps({"id": f"x{i}", "text": t}) + "\n" for i, t in enumerate(THREE_DOCS[:2])))
    result = ingest(workspace, [path], "docs", identity_embedder)
    assert (result.unchanged, result.deleted) == (2, 1)


def test_long_documents_are_chunked_by_model_tokens(workspace, identity_embedder, tmp_path):
    long_text = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(200))
    folder = write_docs(tmp_path / "in", {"long.txt": long_text, "short.txt": THREE_DOCS[0]})
    result = ingest(workspace, [folder], "docs", identity_embedder, IngestOptions(chunk_tokens=100, chunk_overlap=10))
    with workspace.catalog.session() as session:
        chunks = session.scalars(
            select(Chunk).join(Document).where(Document.doc_id.endswith("long.txt")).order_by(Chunk.ordinal)
        ).all()
        short = session.scalars(select(Chunk).join(Document).where(Document.doc_id.endswith("short.txt"))).all()
    assert len(short) == 1 and short[0].text == THREE_DOCS[0]
    assert len(chunks) > 5 and all(c.token_count <= 100 for c in chunks)
    assert all(c.text in long_text for c in chunks)
    assert result.chunks_written == len(chunks) + 1


def test_payload_carries_text_norm_and_provenance(workspace, identity_embedder, tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text(json.dumps({"id": "ml", "text": THREE_DOCS[1], "lang": "en"}) + "\n")
    result = ingest(workspace, [path], "docs", identity_embedder)
    hit = search(workspace, "docs", "machine learning", top_k=1, embedder=identity_embedder)[0]
    record = workspace.store.retrieve(f"docs-{identity_embedder.fingerprint[:12]}", [hit.chunk_id], with_vectors=True)[
        0
    ]
    payload = record.payload
    assert payload["doc_id"] == "ml" and payload["chunk"] == 0 and payload["text"] == THREE_DOCS[1]
    assert payload["model_version"] == identity_embedder.fingerprint and payload["ingest_run"] == result.run_id
    # The source is named like the file relative to what was ingested (here the file itself).
    assert payload["source"] == "docs.jsonl" and payload["metadata"] == {"lang": "en"}
    # The norm is kept: the stored vector is the unnormalized embedding and its norm is recorded.
    np.testing.assert_allclose(record.vector, identity_embedder.encode([THREE_DOCS[1]])[0], rtol=1e-5, atol=1e-5)
    assert payload["norm"] == pytest.approx(float(np.linalg.norm(record.vector)), rel=1e-5)
    assert hit.distance == pytest.approx(
        float(np.linalg.norm(identity_embedder.encode(["machine learning"])[0] - record.vector)), rel=1e-4
    )


def test_other_model_is_refused_before_anything_is_written(workspace, identity_embedder, base_encoder, tmp_path):
    folder = write_docs(tmp_path / "in", {"a.txt": THREE_DOCS[0]})
    ingest(workspace, [folder], "docs", identity_embedder)
    other = GaussianEmbedder(head="linear", out_dim=64, base_encoder=base_encoder)
    write_docs(folder, {"b.txt": THREE_DOCS[1]})
    with pytest.raises(ModelMismatchError, match="was built by model"):
        ingest(workspace, [folder], "docs", other)
    with pytest.raises(ModelMismatchError, match="refusing to search it with model"):
        search(workspace, "docs", "anything", embedder=other)
    points, catalog = store_state(workspace, "docs")
    assert len(points) == 1 and len(catalog) == 1


def test_plain_qdrant_client_sees_what_ragcun_search_sees(tmp_path, adi_template, identity_embedder):
    """An app that knows nothing of ragcun queries the collection with qdrant-client alone."""
    root = copy_adi_home(adi_template, "local", tmp_path / "adi")  # ADI ingested in qdrant-client local mode
    with open_home(root, "local") as ws:
        ours = search(ws, "adi", "computer-based retrieval of documents", top_k=5, embedder=identity_embedder)
    physical = f"adi-{identity_embedder.fingerprint[:12]}"
    client = QdrantClient(path=str(root / "local-qdrant"))
    theirs = client.query_points(
        physical,
        query=identity_embedder.encode(["computer-based retrieval of documents"])[0].tolist(),
        using="dense",
        limit=5,
        with_payload=True,
    ).points
    client.close()
    assert [p.payload["doc_id"] for p in theirs] == [h.doc_id for h in ours]
    assert [p.payload["text"] for p in theirs] == [h.text for h in ours]
    np.testing.assert_allclose([p.score for p in theirs], [h.distance for h in ours], rtol=1e-5)
    assert [p.payload["norm"] for p in theirs] == [h.norm for h in ours]


@pytest.mark.slow
def test_kill_9_mid_ingest_then_rerun_finishes_without_duplicates(tmp_path, identity_model_dir, identity_embedder):
    home = tmp_path / "home"
    settings = Settings.from_env(home=home, environ={})
    init_home(settings)
    # Killed once the third batch of 4 is upserted: two batches claimed by the catalog, the third not yet.
    argv = ["--home", str(home), "ingest", ADI, "-c", "adi", "--batch-size", "4", "--model", str(identity_model_dir)]
    assert run_cli_until_fault(argv, "ingest.after_upsert@3") == -signal.SIGKILL
    with Workspace(settings) as probe, probe.catalog.session() as session:
        written = session.scalar(select(func.count()).select_from(CollectionChunk)) or 0
    assert 8 <= written < 82 and (home / "catalog.sqlite").exists()

    with Workspace(settings) as ws:
        result = ingest(ws, [ADI], "adi", identity_embedder)
        assert result.added + result.unchanged == 82
        assert result.chunks_written <= 82 - 8  # what the killed run stored is not embedded again
        points, catalog = store_state(ws, "adi")
        assert len(points) == len(set(points)) == len(catalog) == 82
        assert set(points) == catalog
        with ws.catalog.session() as session:
            statuses = session.scalars(select(IngestRun.status).order_by(IngestRun.id)).all()
    assert statuses == ["interrupted", "completed"]


def test_without_a_terminal_progress_is_logged_with_counts_and_rate(workspace, identity_embedder, tmp_path, caplog):
    import logging

    from ragcun.ingest import IngestOptions

    folder = tmp_path / "in"
    folder.mkdir()
    for i, text in enumerate(THREE_DOCS):
        (folder / f"d{i}.txt").write_text(text)
    with caplog.at_level(logging.INFO, logger="ragcun.progress"):
        ingest(workspace, [folder], "kb", identity_embedder, IngestOptions(batch_size=1, log_every=0))
    lines = [r.getMessage() for r in caplog.records if r.name == "ragcun.progress"]
    assert lines[-1].startswith("kb 3/3 files: 3 added, 0 updated, 0 unchanged, 0 failed; 3 chunks embedded (")
    assert lines[-1].endswith(" documents/s)")


def test_loading_a_model_is_announced_before_it_starts(identity_model_dir, caplog):
    import logging

    from ragcun.model import GaussianEmbedder

    with caplog.at_level(logging.INFO, logger="ragcun.progress"):
        GaussianEmbedder.load(identity_model_dir)
    assert caplog.records[0].getMessage() == f"loading model {identity_model_dir.name} …"
