"""The admin CLI end to end through CliRunner, against real files, SQLite and the embedded engine."""

import json
import time

import pytest
from click.testing import CliRunner

from ragcun.cli import cli

from .conftest import KILLABLE, THREE_DOCS


def hold_home(store_folder: str, holding) -> None:
    """In another process: open the home's embedded store, say so, and keep it until killed."""
    from ragcun.store import EdgeStore

    store = EdgeStore(store_folder)  # noqa: F841  (held open until the process is killed)
    holding.set()
    time.sleep(120)


@pytest.fixture
def home(tmp_path, identity_model_dir):
    home = str(tmp_path / "home")
    runner = CliRunner()
    assert runner.invoke(cli, ["--home", home, "init"]).exit_code == 0
    folder = tmp_path / "in"
    folder.mkdir()
    for i, text in enumerate(THREE_DOCS):
        (folder / f"d{i}.txt").write_text(text)
    result = runner.invoke(
        cli, ["--home", home, "ingest", str(folder), "-c", "docs", "--model", str(identity_model_dir), "--json"]
    )
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    assert {k: counts[k] for k in ("added", "updated", "unchanged", "deleted", "failed")} == {
        "added": 3,
        "updated": 0,
        "unchanged": 0,
        "deleted": 0,
        "failed": 0,
    }
    return home


def run_json(home, *argv):
    result = CliRunner().invoke(cli, ["--home", home, *argv, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_search_then_lineage(home, tmp_path):
    hits = run_json(home, "search", "What is machine learning?", "-c", "docs", "-k", "2")
    assert len(hits) == 2
    assert set(hits[0]) >= {"chunk_id", "doc_id", "distance", "norm", "text", "source"}
    assert hits[0]["text"] == THREE_DOCS[1] and hits[0]["distance"] < hits[1]["distance"]
    lineage = run_json(home, "docs", "show", hits[0]["chunk_id"])
    assert lineage["source"]["uri"] == "d1.txt"  # named relative to the ingested folder
    assert lineage["source"]["path"] == str((tmp_path / "in" / "d1.txt").resolve())
    assert len(lineage["source"]["sha256"]) == 64
    (stored,) = lineage["collections"]
    assert stored["ingest_run"] == 1 and stored["norm"] == pytest.approx(hits[0]["norm"], rel=1e-6)
    text = CliRunner().invoke(cli, ["--home", home, "docs", "show", hits[0]["chunk_id"]])
    assert "d1.txt" in text.output and "by model" in text.output


def test_listings(home):
    (collection,) = run_json(home, "collections", "list")
    assert (collection["name"], collection["documents"], collection["chunks"], collection["dim"]) == ("docs", 3, 3, 384)
    shown = run_json(home, "collections", "show", "docs")
    assert shown["physical"][0]["engine_points"] == 3 and shown["physical"][0]["distance"] == "Euclid"
    (run,) = run_json(home, "runs", "list")
    assert (run["status"], run["added"]) == ("completed", 3)
    assert run_json(home, "runs", "show", "1")["errors"] == []
    status = run_json(home, "status")
    assert status["engine"] == "edge" and status["collections"][0]["chunks"] == 3


def test_docs_delete_and_collection_drop(home, tmp_path):
    doc_id = "d2.txt"  # as `docs list` prints it
    deleted = run_json(home, "docs", "delete", doc_id, "-c", "docs")
    assert deleted["chunks_deleted"] == 1
    assert run_json(home, "collections", "show", "docs")["physical"][0]["engine_points"] == 2
    # The deleted document comes back on the next ingest of its (unchanged) folder.
    again = run_json(home, "ingest", str(tmp_path / "in"), "-c", "docs")
    assert (again["added"], again["unchanged"]) == (1, 2)
    dropped = run_json(home, "collections", "drop", "docs", "--yes")
    assert dropped["documents_deleted"] == 3
    assert run_json(home, "collections", "list") == []


def test_second_process_on_the_home_gets_a_one_line_error(home):
    holding = KILLABLE.Event()
    holder = KILLABLE.Process(target=hold_home, args=(f"{home}/qdrant", holding))
    holder.start()
    try:
        assert holding.wait(60)
        result = CliRunner().invoke(cli, ["--home", home, "--wait", "0", "search", "anything", "-c", "docs"])
        assert result.exit_code == 1
        assert result.output.strip() == (
            f"Error: {home}/qdrant is in use by another process (pid {holder.pid}); the embedded store allows one "
            "process at a time: wait for it, or run a Qdrant server and set QDRANT_URL"
        )
    finally:
        holder.kill()
        holder.join()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if CliRunner().invoke(cli, ["--home", home, "search", "anything", "-c", "docs"]).exit_code == 0:
            break
        time.sleep(0.2)
    else:
        pytest.fail("home still locked after the holder died")
