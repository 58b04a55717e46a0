"""Model versions bound to collections: reindex, rollback, gc and the consistency check, on real engines."""

import json
import signal
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from qdrant_client import QdrantClient
from sqlalchemy import func, select

from ragcun.catalog.models import Collection, CollectionChunk
from ragcun.cli import cli
from ragcun.collections import chunk_lineage, reindex, rollback
from ragcun.collections.check import check
from ragcun.errors import RagcunError
from ragcun.ingest import ingest
from ragcun.retrieve.collection import search
from ragcun.settings import Settings
from ragcun.workspace import Workspace

from .conftest import copy_adi_home, open_home, run_cli_until_fault

QUERY = "computer-based retrieval of documents"


def distances_match(embedder, query, hits):
    q = embedder.encode([query])[0]
    vectors = embedder.encode([h.text for h in hits])
    return np.allclose(np.linalg.norm(vectors - q, axis=1), [h.distance for h in hits], rtol=1e-4, atol=1e-4)


def active(ws, name):
    with ws.catalog.session() as session:
        c = session.scalar(select(Collection).where(Collection.name == name, Collection.status == "active"))
        return c.physical_name, c.model_version.fingerprint


def test_reindex_switches_search_and_the_alias(tmp_path, adi_template, identity_embedder, model_b):
    for engine in ("edge", "local"):
        root = copy_adi_home(adi_template, engine, tmp_path / engine)
        with open_home(root, engine) as ws:
            before = search(ws, "adi", QUERY, top_k=5)
            assert distances_match(identity_embedder, QUERY, before)
            result = reindex(ws, "adi", model_b, batch_size=16)
            assert result.switched and result.chunks_embedded == result.chunks_total == 82
            after = search(ws, "adi", QUERY, top_k=5)
            assert distances_match(model_b, QUERY, after)
            assert active(ws, "adi") == (result.physical_name, model_b.fingerprint)
            assert ws.store.shape(result.physical_name).dim == 64
            # Searching with the old model is now refused, naming both versions.
            with pytest.raises(
                RagcunError,
                match=f"built by model {model_b.fingerprint[:12]}.*model {identity_embedder.fingerprint[:12]}",
            ):
                search(ws, "adi", QUERY, embedder=identity_embedder)
            # Re-running the finished command changes nothing.
            assert not reindex(ws, "adi", model_b).switched
        if engine == "local":
            client = QdrantClient(path=str(root / "local-qdrant"))
            alias_hits = client.query_points(
                "adi", query=model_b.encode([QUERY])[0].tolist(), using="dense", limit=5
            ).points
            client.close()
            assert [p.payload["doc_id"] for p in alias_hits] == [h.doc_id for h in after]


def test_searches_keep_working_during_a_reindex(adi_workspace, model_b):
    workspace = adi_workspace
    failures, empties, served = [], [], []
    done = threading.Event()

    def searcher():
        while not done.is_set():
            try:
                hits = search(workspace, "adi", QUERY, top_k=5)
                (served if hits else empties).append(len(hits))
            except Exception as exc:  # the test is that this never happens
                failures.append(repr(exc))

    thread = threading.Thread(target=searcher)
    thread.start()
    try:
        reindex(workspace, "adi", model_b, batch_size=4)
        time.sleep(0.3)
    finally:
        done.set()
        thread.join()
    assert failures == [] and empties == []
    assert len(served) >= 3


def test_rollback_reactivates_the_previous_version_without_losing_documents(
    adi_workspace, identity_embedder, model_b, tmp_path
):
    workspace = adi_workspace
    old_physical, _ = active(workspace, "adi")
    reindex(workspace, "adi", model_b, batch_size=32)
    extra = tmp_path / "extra.txt"
    extra.write_text("Gaussian embeddings keep the norm of every vector.")
    ingest(workspace, [extra], "adi", model_b)
    result = rollback(workspace, "adi")
    assert result.physical_name == old_physical and result.chunks_embedded == 1
    assert active(workspace, "adi") == (old_physical, identity_embedder.fingerprint)
    hits = search(workspace, "adi", "Gaussian embeddings keep the norm", top_k=1)
    assert hits[0].text.startswith("Gaussian embeddings") and distances_match(
        identity_embedder, QUERY, search(workspace, "adi", QUERY, 3)
    )
    assert [r.problems for r in check(workspace, "adi")] == [0]
    # The version just retired is now "the previous one": rolling back again returns to it.
    assert rollback(workspace, "adi").model_version == model_b.fingerprint


def test_gc_and_model_removal(adi_home, model_b_dir):
    home = adi_home  # ADI ingested with the identity model
    runner = CliRunner()

    def run(*argv, code=0):
        result = runner.invoke(cli, ["--home", home, *argv])
        assert result.exit_code == code, result.output
        return result

    run("reindex", "-c", "adi", "--model", str(model_b_dir), "--batch-size", "64")
    versions = json.loads(run("models", "list", "--json").stdout)
    assert sorted(c["status"] for m in versions for c in m["collections"]) == ["active", "retired"]
    old = next(m["fingerprint"] for m in versions if m["collections"][0]["status"] == "retired")
    refused = run("models", "remove", old[:12], code=1)
    assert "is bound to adi-" in refused.output and "(retired)" in refused.output
    dropped = json.loads(run("collections", "gc", "--keep", "0", "--yes", "--json").stdout)
    assert [d["model_version"] for d in dropped] == [old]
    assert json.loads(run("models", "remove", old[:12], "--json").stdout)["fingerprint"] == old
    assert (
        run("rollback", "-c", "adi", code=1).output.strip()
        == "Error: collection 'adi' has no retired version to roll back to"
    )


def test_mismatched_model_search_is_refused_by_the_cli(adi_home, model_b_dir, model_b):
    home = adi_home
    runner = CliRunner()
    result = runner.invoke(cli, ["--home", home, "search", QUERY, "-c", "adi", "--model", str(model_b_dir)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: collection 'adi' was built by model ")
    assert f"refusing to search it with model {model_b.fingerprint[:12]}" in result.output


def plant_faults(ws, name):
    physical, _ = active(ws, name)
    ids = sorted(r.id for r in ws.store.scroll(physical))
    victim, corrupt = ids[0], ids[1]
    ws.store.delete(physical, [victim])
    record = ws.store.retrieve(physical, [corrupt], with_vectors=True)[0]
    ws.store.upsert(physical, [corrupt], np.array([record.vector]), [{**record.payload, "norm": 123.0}])
    orphan = str(uuid.uuid4())
    ws.store.upsert(physical, [orphan], np.array([record.vector]), [{**record.payload, "doc_id": "ghost"}])


def test_check_finds_each_planted_fault_and_repair_fixes_it(adi_workspace):
    workspace = adi_workspace
    assert check(workspace, "adi")[0].problems == 0
    plant_faults(workspace, "adi")
    (report,) = check(workspace, "adi")
    assert (len(report.missing_points), len(report.orphan_points), len(report.wrong_norms)) == (1, 1, 1)
    (repaired,) = check(workspace, "adi", repair=True, yes=True)
    assert repaired.problems == 0 and repaired.points == 82
    assert repaired.repaired == {
        "collection_rebuilt": 0,
        "points_restored": 1,
        "memberships_restored": 0,
        "points_reembedded": 1,
        "orphans_deleted": 1,
        "orphans_kept": 0,
        "base_vectors_encoded": 0,
        "base_vectors_deleted": 0,
    }
    # A restored point keeps its lineage: the ingest run that first wrote it, in the catalog and the payload.
    victim = sorted(r.id for r in workspace.store.scroll(active(workspace, "adi")[0]))[0]
    (stored,) = chunk_lineage(workspace, victim).collections
    assert stored["ingest_run"] == 1
    assert workspace.store.retrieve(stored["physical_name"], [victim])[0].payload["ingest_run"] == 1


def test_check_cli_exit_codes(adi_home):
    home = adi_home
    runner = CliRunner()
    assert runner.invoke(cli, ["--home", home, "check"]).exit_code == 0
    with Workspace(Settings.from_env(home=home, environ={})) as ws:
        plant_faults(ws, "adi")
    found = runner.invoke(cli, ["--home", home, "check", "--json"])
    assert found.exit_code == 1
    (report,) = json.loads(found.stdout)
    assert (report["missing_points"], report["orphan_points"], report["wrong_norms"]) == (1, 1, 1)
    # The orphan point has no chunk in the catalog: deleting it needs --yes.
    assert runner.invoke(cli, ["--home", home, "check", "--repair"]).exit_code == 1
    assert runner.invoke(cli, ["--home", home, "check", "--repair", "--yes"]).exit_code == 0
    assert runner.invoke(cli, ["--home", home, "check"]).exit_code == 0


@pytest.mark.slow
def test_reindex_killed_at_three_points_resumes_and_ends_consistent(adi_home, model_b_dir, model_b):
    home = Path(adi_home)
    settings = Settings.from_env(home=home, environ={})
    runner = CliRunner()
    argv = ["--home", str(home), "reindex", "-c", "adi", "--model", str(model_b_dir), "--batch-size", "2"]
    built = []
    # Each run starts where the last stopped: 1 batch of 2 claimed; then 19 more, a 20th stored, not claimed;
    # then 20 more.
    for fault in ("reindex.after_batch@1", "reindex.after_upsert@20", "reindex.after_batch@20"):
        assert run_cli_until_fault(argv, fault) == -signal.SIGKILL
        with Workspace(settings) as probe, probe.catalog.session() as session:
            target = session.scalar(select(Collection).where(Collection.status == "building"))
            built.append(session.scalar(select(func.count()).where(CollectionChunk.collection_id == target.id)))
        with Workspace(settings) as ws:  # the old version keeps serving until the switch
            assert active(ws, "adi")[1] != model_b.fingerprint
            assert len(search(ws, "adi", QUERY, top_k=3)) == 3
    assert built == [2, 40, 80]  # each run continued the last
    finished = runner.invoke(cli, ["--home", str(home), "reindex", "-c", "adi", "--model", str(model_b_dir), "--json"])
    assert finished.exit_code == 0, finished.output
    result = json.loads(finished.stdout)
    assert result["switched"] and result["chunks_total"] == 82 and result["chunks_embedded"] <= 82 - built[-1]
    assert runner.invoke(cli, ["--home", str(home), "check"]).exit_code == 0
    with Workspace(settings) as ws:
        assert active(ws, "adi")[1] == model_b.fingerprint
        assert distances_match(model_b, QUERY, search(ws, "adi", QUERY, top_k=5))


def test_reindex_after_calibration_keeps_index_params_only(workspace, identity_embedder, model_b, tmp_path):
    from .conftest import THREE_DOCS

    for i, text in enumerate(THREE_DOCS):
        (tmp_path / f"d{i}.txt").write_text(text)
    ingest(workspace, [tmp_path], "small", identity_embedder)
    with workspace.catalog.session() as session:
        collection = session.scalar(select(Collection).where(Collection.name == "small"))
        collection.settings = {**collection.settings, "sigma": 0.7}  # what `ragcun calibrate` stores
        session.commit()
    result = reindex(workspace, "small", model_b)
    assert result.switched and result.chunks_total == 3
    with workspace.catalog.session() as session:
        new = session.scalar(select(Collection).where(Collection.physical_name == result.physical_name))
        assert "sigma" not in new.settings and new.settings["dim"] == 64  # σ belongs to the old model
