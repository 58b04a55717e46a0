"""A kill at every step of every write path, then something else, and the store still agrees with the catalog.

Each case copies a small home (three one-chunk documents in collection ``kb``), makes the change its path
writes, runs that command in a child process that ``ragcun.faults`` SIGKILLs at one named step, then does a
*different* next thing in this process, and checks the end state: point count equals chunk count, no
duplicate (doc, chunk) pair, no catalog chunk without its point in any version, no pending change left,
and ``check`` clean without ``--repair``.

The children come from ``conftest.KILLABLE``, a ``forkserver`` that imported torch, sentence-transformers and
ragcun but never ran a torch op (so a fork is OpenMP-safe): a case costs a fork and a model load, not an
interpreter start.

Steps × next actions tried, and survived (``same``: the same command again; ``revert``: the input file put
back as it was, then ingest; ``other``: another command on the collection; ``check``: ``check`` alone):

============  ====================================================  ==============================
path          steps (fault points)                                  next actions
============  ====================================================  ==============================
ingest        after_journal, after_upsert, after_catalog            same, check, other
update        after_journal, after_upsert, after_catalog,           revert at every step; same,
              after_delete                                          check, other, search
sync          after_catalog, after_delete                           same, revert
docs_delete   after_catalog, after_delete                           check, other
reindex       after_create, after_upsert@2, after_batch@2,          same, check, other, search,
              after_build, after_verify, after_switch               same, check
rollback      after_upsert, after_batch, after_build,               same, other, check, search,
              after_verify, after_switch                            same
gc            after_catalog, after_drop                             check, other
drop          after_catalog, after_drop                             other (ingest into the name again)
repair        after_orphans, after_upsert, after_batch              same, then check-and-repair
                                                                    alternately
============  ====================================================  ==============================
"""

from __future__ import annotations

import os
import signal
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select, update

from ragcun.catalog.models import Chunk, Collection, CollectionChunk, Document, ModelVersion, PendingChange, Source
from ragcun.collections import check, delete_document, drop_collection, gc, reindex, rollback
from ragcun.faults import FAULT_ENV
from ragcun.ingest import IngestOptions, ingest
from ragcun.retrieve.collection import search
from ragcun.settings import Settings
from ragcun.workspace import Workspace

from .conftest import KILLABLE, THREE_DOCS, copy_tree, init_root

FILES = {f"d{i}.txt": text for i, text in enumerate(THREE_DOCS)}
CHANGED = "The Eiffel Tower was finished in 1889 and was the tallest structure in the world for forty years."
NEW = "Qdrant stores vectors and searches them by distance."


def settings(root: Path) -> Settings:
    return Settings.from_env(home=root / "home", environ={"RAGCUN_WAIT": "0"})


def act(ws: Workspace, root: Path, action: str, embedders: dict) -> None:
    """Run one command's library call on the home under ``root`` (in a child, or in this process)."""
    if action == "ingest":
        ingest(ws, [root / "in"], "kb", embedders["identity"], IngestOptions(sync=True, batch_size=1))
    elif action == "delete":
        delete_document(ws, "kb", "d1.txt")
    elif action == "reindex":
        reindex(ws, "kb", embedders["b"], batch_size=1)
    elif action == "rollback":
        rollback(ws, "kb", batch_size=1)
    elif action == "drop":
        drop_collection(ws, "kb")
    elif action == "gc":
        gc(ws, "kb", keep=0)
    elif action == "repair":
        check(ws, "kb", repair=True, yes=True)  # the planted orphan is repair's to delete
    elif action == "check":
        check(ws, "kb")
    elif action == "search":
        assert search(ws, "kb", "a programming language", top_k=2)
    else:
        raise AssertionError(action)


def killed(root: str, action: str, fault: str, model_dirs: dict[str, str]) -> None:
    """The child: run ``action`` with ``RAGCUN_FAULT=fault``; it must die there."""
    import torch

    from ragcun.model import GaussianEmbedder

    torch.set_num_threads(1)
    os.environ[FAULT_ENV] = fault
    embedders = {"identity": None, "b": None}
    if action == "ingest":
        embedders["identity"] = GaussianEmbedder.load(model_dirs["identity"])
    if action == "reindex":
        embedders["b"] = GaussianEmbedder.load(model_dirs["b"])
    with Workspace(settings(Path(root))) as ws:
        act(ws, Path(root), action, embedders)
    os._exit(0)  # the fault point was never reached: the parent sees exit code 0, not -SIGKILL


@dataclass(frozen=True)
class Case:
    path: str  # the write path, as fault points name it
    step: str  # the fault point's step (``STEP@N`` for the N-th time)
    then: str  # same | revert | other | check | search

    @property
    def action(self) -> str:
        return {"update": "ingest", "sync": "ingest", "docs_delete": "delete"}.get(self.path, self.path)

    @property
    def template(self) -> str:
        return "reindexed" if self.path in ("rollback", "gc") else "base"

    def __str__(self) -> str:
        return f"{self.path}.{self.step}-{self.then}"


CASES = [
    *(
        Case("ingest", s, t)
        for s, t in [("after_journal", "same"), ("after_upsert", "check"), ("after_catalog", "other")]
    ),
    *(Case("update", s, "revert") for s in ("after_journal", "after_upsert", "after_catalog", "after_delete")),
    *(
        Case("update", s, t)
        for s, t in [
            ("after_journal", "same"),
            ("after_upsert", "check"),
            ("after_catalog", "other"),
            ("after_delete", "search"),
        ]
    ),
    *(Case("sync", s, t) for s, t in [("after_catalog", "same"), ("after_delete", "revert")]),
    *(Case("docs_delete", s, t) for s, t in [("after_catalog", "check"), ("after_delete", "other")]),
    *(
        Case("reindex", s, t)
        for s, t in [
            ("after_create", "same"),
            ("after_upsert@2", "check"),
            ("after_batch@2", "other"),
            ("after_build", "search"),
            ("after_verify", "same"),
            ("after_switch", "check"),
        ]
    ),
    *(
        Case("rollback", s, t)
        for s, t in [
            ("after_upsert", "same"),
            ("after_batch", "other"),
            ("after_build", "check"),
            ("after_verify", "search"),
            ("after_switch", "same"),
        ]
    ),
    *(Case("gc", s, t) for s, t in [("after_catalog", "check"), ("after_drop", "other")]),
    *(Case("drop", s, "other") for s in ("after_catalog", "after_drop")),
    *(
        Case("repair", s, t)
        for s, t in [
            ("after_orphans", "same"),
            ("after_upsert", "check"),
            ("after_batch", "same"),
        ]
    ),
]


def write_files(folder: Path, files: dict[str, str]) -> None:
    folder.mkdir(exist_ok=True)
    for stale in folder.iterdir():
        stale.unlink()
    for name, text in files.items():
        (folder / name).write_text(text)


@pytest.fixture(scope="module")
def templates(tmp_path_factory, identity_embedder, model_b) -> dict[str, Path]:
    """``base``: kb with three documents (identity model); ``reindexed``: then reindexed to model b, with a
    fourth document that only the active version has (a rollback must embed it)."""
    base = init_root(tmp_path_factory.mktemp("faults-base"))
    write_files(base / "in", FILES)
    with Workspace(settings(base)) as ws:
        ingest(ws, [base / "in"], "kb", identity_embedder)
    reindexed = copy_home(base, tmp_path_factory.mktemp("faults-reindexed") / "root")
    with Workspace(settings(reindexed)) as ws:
        reindex(ws, "kb", model_b)
        (reindexed / "in" / "d3.txt").write_text(NEW)
        ingest(ws, [reindexed / "in"], "kb", model_b)
    return {"base": base, "reindexed": reindexed}


def copy_home(source: Path, root: Path) -> Path:
    """Copy a case's root (sparse, :func:`copy_tree`); the catalog's absolute paths (model copies, source
    files) follow it."""
    copy_tree(source, root)
    with Workspace(settings(root)) as ws, ws.catalog.session() as session:
        for column in (ModelVersion.path, Source.path):
            session.execute(update(column.class_).values({column: func.replace(column, str(source), str(root))}))
        session.commit()
    return root


def prepare(case: Case, root: Path) -> None:
    """The change the killed command writes."""
    if case.path == "ingest":
        (root / "in" / "d3.txt").write_text(NEW)
    elif case.path == "update":
        (root / "in" / "d2.txt").write_text(CHANGED)
    elif case.path == "sync":
        (root / "in" / "d2.txt").unlink()
    elif case.path == "repair":
        plant_faults(root)


def plant_faults(root: Path) -> None:
    """A point missing, an orphan point, a point whose payload norm is wrong: what repair mends."""
    with Workspace(settings(root)) as ws:
        physical = active_physical(ws)
        records = sorted(ws.store.scroll(physical, with_vectors=True), key=lambda r: str(r.id))
        ws.store.delete(physical, [str(records[0].id)])
        orphan = np.asarray(records[1].vector, dtype=np.float32)
        ws.store.upsert(physical, [str(uuid.uuid4())], orphan[None, :], [{**records[1].payload, "doc_id": "ghost"}])
        wrong = records[2]
        ws.store.upsert(
            physical,
            [str(wrong.id)],
            np.asarray(wrong.vector, dtype=np.float32)[None, :],
            [{**wrong.payload, "norm": wrong.payload["norm"] * 2}],
        )


def follow_up(case: Case, root: Path, embedders: dict) -> None:
    """The next thing a user does after the kill (in this process: a command after the killed one)."""
    with Workspace(settings(root)) as ws:
        if case.then == "same":
            act(ws, root, case.action, embedders)
        elif case.then == "revert":
            write_files(root / "in", FILES)
            act(ws, root, "ingest", embedders)
        elif case.then == "other":
            # A different write on the same collection: delete a document if this path did not, else ingest one.
            if case.action in ("delete", "drop"):
                act(ws, root, "ingest", embedders)
            else:
                act(ws, root, "delete", embedders)
        else:
            act(ws, root, case.then, embedders)
        if case.path == "repair" and case.then != "same":
            act(ws, root, "repair", embedders)  # the planted faults are repair's to mend


def active_physical(ws: Workspace) -> str:
    with ws.catalog.session() as session:
        return session.scalars(
            select(Collection.physical_name).where(Collection.name == "kb", Collection.status == "active")
        ).one()


def assert_consistent(root: Path) -> None:
    with Workspace(settings(root)) as ws:
        reports = check(ws)
        assert [r.problems for r in reports] == [0], [r.to_dict() for r in reports]
        with ws.catalog.session() as session:
            assert session.scalar(select(func.count()).select_from(PendingChange)) == 0
            chunks = set(session.scalars(select(Chunk.id).join(Document).where(Document.collection_name == "kb")))
            collections = session.scalars(select(Collection)).all()
            assert set(ws.store.list_collections()) == {c.physical_name for c in collections}
            for collection in collections:
                members = set(
                    session.scalars(
                        select(CollectionChunk.chunk_id).where(CollectionChunk.collection_id == collection.id)
                    )
                )
                points = list(ws.store.scroll(collection.physical_name))
                ids = {str(p.id) for p in points}
                assert members <= ids, f"{collection.physical_name} claims points it lacks: {members - ids}"
                if collection.status == "active":
                    assert ids == members == chunks and ws.store.count(collection.physical_name) == len(chunks)
                    pairs = [(p.payload["doc_id"], p.payload["chunk"]) for p in points]
                    assert len(pairs) == len(set(pairs))


def assert_files_ingested(root: Path) -> None:
    """The catalog holds exactly the folder's files, each with its current text."""
    with Workspace(settings(root)) as ws, ws.catalog.session() as session:
        stored = dict(
            session.execute(
                select(Document.doc_id, Chunk.text).join(Chunk).where(Document.collection_name == "kb")
            ).all()
        )
    assert stored == {p.name: p.read_text() for p in (root / "in").iterdir()}


@pytest.mark.slow
def test_a_kill_at_every_step_of_every_write_path_leaves_store_and_catalog_consistent(
    tmp_path, templates, identity_model_dir, model_b_dir, identity_embedder, model_b
):
    model_dirs = {"identity": str(identity_model_dir), "b": str(model_b_dir)}
    embedders = {"identity": identity_embedder, "b": model_b}
    survived = []
    for n, case in enumerate(CASES):
        root = copy_home(templates[case.template], tmp_path / f"case{n}")
        prepare(case, root)
        child = KILLABLE.Process(target=killed, args=(str(root), case.action, f"{case.path}.{case.step}", model_dirs))
        child.start()
        child.join(120)
        assert child.exitcode == -signal.SIGKILL, f"{case}: the fault point was not reached ({child.exitcode})"
        follow_up(case, root, embedders)
        assert_consistent(root)
        if case.then in ("same", "revert") and case.action == "ingest":
            assert_files_ingested(root)
        survived.append(str(case))
    assert len(survived) == len(CASES) == 33
