"""The same interface tests against every engine: qdrant-edge, qdrant-client local mode, and the in-memory store."""

import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import models

from ragcun.errors import CollectionNotFound, StoreLockedError
from ragcun.store import ClientStore, CollectionParams, EdgeStore, MemoryStore

from .conftest import KILLABLE

DIM = 8
OPENERS = {
    "edge": lambda folder: EdgeStore(folder / "edge"),
    "local": lambda folder: ClientStore.local_path(folder / "local"),
    "memory": lambda folder: MemoryStore(),
}


@pytest.fixture(params=list(OPENERS))
def store(request, tmp_path):
    opened = OPENERS[request.param](tmp_path)
    yield opened
    opened.close()


def points(n, seed=0):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32) * rng.uniform(0.5, 3.0, size=(n, 1)).astype(np.float32)
    ids = [str(uuid.UUID(int=i + 1)) for i in range(n)]
    payloads = [
        {"doc_id": f"d{i}", "text": f"text {i}", "norm": float(np.linalg.norm(v))} for i, v in enumerate(vectors)
    ]
    return ids, vectors, payloads


def test_collection_is_euclidean_with_the_model_dim(store):
    store.create_collection("c", CollectionParams(dim=DIM))
    shape = store.shape("c")
    assert (shape.dim, shape.distance, shape.points) == (DIM, models.Distance.EUCLID, 0)
    assert store.list_collections() == ["c"]
    with pytest.raises(ValueError, match="already exists"):
        store.create_collection("c", CollectionParams(dim=DIM))


def test_search_scores_are_true_l2_distances_ascending(store):
    ids, vectors, payloads = points(50)
    store.create_collection("c", CollectionParams(dim=DIM))
    store.upsert("c", ids, vectors, payloads)
    query = np.random.default_rng(9).normal(size=DIM).astype(np.float32)
    hits = store.search("c", query, limit=5, exact=True)
    expected = np.sort(np.linalg.norm(vectors - query, axis=1))[:5]
    np.testing.assert_allclose([h.score for h in hits], expected, rtol=1e-5)
    by_id = dict(zip(ids, vectors, strict=True))
    for hit in hits:
        assert hit.score == pytest.approx(float(np.linalg.norm(by_id[hit.id] - query)), rel=1e-5)
        assert hit.payload["text"].startswith("text ")


def test_norm_survives_upsert_and_fetch(store):
    ids, vectors, payloads = points(20)
    store.create_collection("c", CollectionParams(dim=DIM))
    store.upsert("c", ids, vectors, payloads)
    records = store.retrieve("c", ids[:5], with_vectors=True)
    assert len(records) == 5
    for record in records:
        i = ids.index(record.id)
        np.testing.assert_allclose(record.vector, vectors[i], rtol=1e-6)
        assert np.linalg.norm(record.vector) == pytest.approx(record.payload["norm"], rel=1e-6)


def test_upsert_same_ids_overwrites_and_delete_removes(store):
    ids, vectors, payloads = points(30)
    store.create_collection("c", CollectionParams(dim=DIM))
    store.upsert("c", ids, vectors, payloads)
    store.upsert("c", ids, vectors * 2, payloads)
    assert store.count("c") == 30
    store.delete("c", [*ids[:10], str(uuid.uuid4())])
    assert store.count("c") == 20
    assert sorted(r.id for r in store.scroll("c", batch_size=7)) == sorted(ids[10:])


def test_same_id_twice_in_one_upsert_keeps_the_last(store):
    ids, vectors, payloads = points(3)
    store.create_collection("c", CollectionParams(dim=DIM))
    store.upsert("c", [ids[0], ids[1], ids[0]], vectors, payloads)
    assert store.count("c") == 2
    (record,) = store.retrieve("c", [ids[0]], with_vectors=True)
    np.testing.assert_allclose(record.vector, vectors[2], rtol=1e-6)
    assert record.payload["text"] == "text 2"
    assert store.search("c", vectors[2], limit=1, exact=True)[0].id == ids[0]


def test_search_beyond_the_collection_size_returns_every_point(store):
    ids, vectors, payloads = points(4)
    store.create_collection("c", CollectionParams(dim=DIM))
    assert store.search("c", vectors[0], limit=3, exact=True) == []
    store.upsert("c", ids, vectors, payloads)
    hits = store.search("c", vectors[0], limit=10, exact=True)
    assert sorted(h.id for h in hits) == sorted(ids) and hits[0].id == ids[0]


def test_missing_collection_is_a_clear_error(store):
    with pytest.raises(CollectionNotFound, match="'nope'"):
        store.search("nope", np.zeros(DIM, dtype=np.float32), limit=1)
    store.drop_collection("nope")  # dropping what is not there is not an error


def test_drop_collection(store):
    store.create_collection("c", CollectionParams(dim=DIM))
    store.drop_collection("c")
    assert store.list_collections() == []


def open_again(engine: str, folder: str, report: str) -> None:
    """In a second process: open the store folder; on the in-use error, write its message and exit 3."""
    try:
        open_store(engine, Path(folder))
    except StoreLockedError as exc:
        Path(report).write_text(str(exc))
        sys.exit(3)


def open_store(engine: str, folder: Path):
    return EdgeStore(folder) if engine == "edge" else ClientStore.local_path(folder)


@pytest.mark.parametrize("engine", ["edge", "local"])
def test_second_process_gets_a_clear_in_use_error(tmp_path, engine):
    folder = tmp_path / engine
    first = open_store(engine, folder)
    try:
        second = KILLABLE.Process(target=open_again, args=(engine, str(folder), str(tmp_path / "error")))
        second.start()
        second.join(120)
        assert second.exitcode == 3
        assert "is in use by another process" in (tmp_path / "error").read_text()
    finally:
        first.close()
    # Once the first process lets go, the folder opens again.
    open_store(engine, folder).close()


def test_memory_store_saves_and_loads_without_pickle(tmp_path):
    ids, vectors, payloads = points(25)
    store = MemoryStore()
    store.create_collection("c", CollectionParams(dim=DIM))
    store.upsert("c", ids, vectors, payloads)
    store.delete("c", ids[:5])
    store.save("c", tmp_path / "saved")
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["points.json", "vectors.npy"]
    np.load(tmp_path / "saved" / "vectors.npy", allow_pickle=False)  # plain arrays, no objects

    loaded = MemoryStore()
    loaded.load("c", tmp_path / "saved")
    assert loaded.shape("c") == store.shape("c")
    query = np.random.default_rng(3).normal(size=DIM).astype(np.float32)
    assert loaded.search("c", query, limit=7) == store.search("c", query, limit=7)
    assert [r.model_dump() for r in loaded.scroll("c", with_vectors=True)] == [
        r.model_dump() for r in store.scroll("c", with_vectors=True)
    ]


def test_memory_store_refuses_a_vector_of_another_dim():
    store = MemoryStore()
    store.create_collection("c", CollectionParams(dim=DIM))
    ids, vectors, payloads = points(2)
    with pytest.raises(ValueError, match="dim 4, the collection's is 8"):
        store.upsert("c", ids, vectors[:, :4], payloads)
    store.upsert("c", ids, vectors, payloads)
    with pytest.raises(ValueError, match="dim 3, the collection's is 8"):
        store.search("c", np.zeros(3), limit=1)


def test_edge_second_opener_in_process_is_refused(tmp_path):
    first = EdgeStore(tmp_path / "e")
    with pytest.raises(StoreLockedError, match=r"in use by another process \(pid \d+\)"):
        EdgeStore(tmp_path / "e")
    first.close()


def hold_until_told(folder: str, holding, go, released) -> None:
    """In another process: take the folder's lock, say so, release it when told, say so, and wait to be killed."""
    from ragcun.store.lock import FolderLock

    lock = FolderLock(Path(folder))
    holding.set()
    go.wait(60)
    lock.release()
    released.set()
    time.sleep(60)


def test_a_command_waits_for_the_lock_then_fails_or_proceeds(tmp_path, caplog):
    import logging
    import threading

    from click.testing import CliRunner

    from ragcun.cli import cli
    from ragcun.settings import Settings
    from ragcun.workspace import init_home

    home = tmp_path / "home"
    init_home(Settings.from_env(home=home, environ={}))
    holding, go, released = KILLABLE.Event(), KILLABLE.Event(), KILLABLE.Event()
    holder = KILLABLE.Process(target=hold_until_told, args=(str(home / "qdrant"), holding, go, released))
    holder.start()
    try:
        assert holding.wait(60)
        # Not released within the wait: the one-line error, after about the wait.
        started = time.monotonic()
        caplog.set_level(logging.WARNING, logger="ragcun.store.lock")
        refused = CliRunner().invoke(cli, ["--home", str(home), "check", "--wait", "0.5"])
        waited = time.monotonic() - started
        assert refused.exit_code == 1
        assert refused.output.strip().splitlines()[-1] == (
            f"Error: {home}/qdrant is in use by another process (pid {holder.pid}); the embedded store allows one "
            "process at a time: wait for it, or run a Qdrant server and set QDRANT_URL"
        )
        assert 0.5 <= waited < 5
        # Released within the wait: the store opens; each wait was said once, naming the holder.
        threading.Timer(0.3, go.set).start()
        started = time.monotonic()
        EdgeStore(home / "qdrant", wait=30).close()
        assert time.monotonic() - started < 30
        assert released.wait(60)
        assert [r.getMessage() for r in caplog.records if r.name == "ragcun.store.lock"] == [
            f"{home}/qdrant is in use by process {holder.pid}: waiting up to {wait} s for it (--wait)"
            for wait in ("0.5", "30")
        ]
    finally:
        holder.kill()
        holder.join()


def test_the_wait_is_a_setting():
    from ragcun.errors import InvalidInputError
    from ragcun.settings import Settings

    assert Settings.from_env(environ={}).wait == 5.0
    assert Settings.from_env(environ={"RAGCUN_WAIT": "0.5"}).wait == 0.5
    with pytest.raises(InvalidInputError, match="RAGCUN_WAIT"):
        Settings.from_env(environ={"RAGCUN_WAIT": "-1"})
