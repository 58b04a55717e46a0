"""``check --repair`` mends the store from the catalog and never against it: nine planted faults, each found,
each fixed with nothing lost (the same chunks with the same texts, one point per chunk), on both engines."""

from __future__ import annotations

import shutil
import uuid

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import delete, select, update

from ragcun.catalog.models import Chunk, Collection, CollectionChunk
from ragcun.cli import cli
from ragcun.collections.check import check

from .conftest import ENGINES, copy_adi_home, open_home


@pytest.fixture(params=ENGINES)
def adi_root(request, tmp_path, adi_template):
    """``(root, engine)``: a copy of the ADI home on each engine."""
    return copy_adi_home(adi_template, request.param, tmp_path / "adi"), request.param


def opened(root, engine, embedder):
    """The workspace of ``root``, with the session's identity model as the collection's (no reload per test)."""
    ws = open_home(root, engine)
    with ws.catalog.session() as session:
        fingerprint = session.scalar(select(Collection).where(Collection.name == "adi")).model_version.fingerprint
    assert embedder.fingerprint == fingerprint
    ws._models[fingerprint] = embedder
    return ws


def physical(ws) -> str:
    with ws.catalog.session() as session:
        return session.scalar(select(Collection.physical_name).where(Collection.name == "adi"))


def contents(ws) -> tuple[dict[str, str], dict[str, str]]:
    """The catalog's chunk texts and the store's point texts, by id."""
    with ws.catalog.session() as session:
        chunks = dict(session.execute(select(Chunk.id, Chunk.text)).all())
    points = {str(r.id): (r.payload or {}).get("text") for r in ws.store.scroll(physical(ws))}
    return chunks, points


def point(ws, point_id: str):
    return ws.store.retrieve(physical(ws), [point_id], with_vectors=True)[0]


def rewrite(ws, point_id: str, vector=None, **payload) -> None:
    record = point(ws, point_id)
    body = {k: v for k, v in {**record.payload, **payload}.items() if v is not None}
    new = np.asarray(record.vector if vector is None else vector, dtype=np.float32)
    ws.store.upsert(physical(ws), [point_id], new[None, :], [body])


def plant(ws, fault: str, ids: list[str]) -> None:
    """One fault on the ADI collection, on the points ``ids[:2]``."""
    a, b = ids[0], ids[1]
    if fault == "missing_points":
        ws.store.delete(physical(ws), [a, b])
    elif fault == "tampered_text":
        rewrite(ws, a, text="tampered")
    elif fault == "removed_doc_id":
        rewrite(ws, a, doc_id=None)
    elif fault == "wrong_payload_norm":
        rewrite(ws, a, norm=123.0)
    elif fault == "wrong_catalog_norm":
        with ws.catalog.session() as session:
            session.execute(update(CollectionChunk).where(CollectionChunk.chunk_id == a).values(norm=5.0))
            session.commit()
    elif fault == "scaled_vector":  # x2: the payload's norm is now wrong, and must not be adopted
        rewrite(ws, a, vector=2 * np.asarray(point(ws, a).vector))
    elif fault == "deleted_membership":
        with ws.catalog.session() as session:
            session.execute(delete(CollectionChunk).where(CollectionChunk.chunk_id.in_([a, b])))
            session.commit()
    else:
        raise AssertionError(fault)


FAULTS = {
    "missing_points": "missing_points",
    "tampered_text": "payload_mismatches",
    "removed_doc_id": "payload_mismatches",
    "wrong_payload_norm": "wrong_norms",
    "wrong_catalog_norm": "wrong_norms",
    "scaled_vector": "wrong_norms",
    "deleted_membership": "missing_memberships",
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_each_fault_is_found_and_repaired_from_the_catalog(adi_root, identity_embedder, fault):
    root, engine = adi_root
    with opened(root, engine, identity_embedder) as ws:
        before = contents(ws)
        ids = sorted(before[1])
        fresh = {i: np.asarray(point(ws, i).vector) for i in ids[:2]}
        plant(ws, fault, ids)
        (found,) = check(ws, "adi")
        assert len(getattr(found, FAULTS[fault])) >= 1 and found.problems >= 1, found.to_dict()
        (repaired,) = check(ws, "adi", repair=True)
        assert repaired.problems == 0, repaired.to_dict()
        (again,) = check(ws, "adi", full=True)
        assert again.problems == 0 and again.points == again.chunks == 82
        assert contents(ws) == before  # nothing lost: the same chunks, the same texts, one point each
        for point_id, vector in fresh.items():  # re-embedded from the text, not adopted from the store
            assert np.allclose(point(ws, point_id).vector, vector, rtol=0, atol=1e-2)
        with ws.catalog.session() as session:
            norms = dict(session.execute(select(CollectionChunk.chunk_id, CollectionChunk.norm)).all())
        assert all(abs(norms[i] - float(np.linalg.norm(v))) < 1e-2 for i, v in fresh.items())


def test_a_deleted_membership_keeps_its_points_and_lineage(adi_root, identity_embedder):
    root, engine = adi_root
    with opened(root, engine, identity_embedder) as ws:
        ids = sorted(contents(ws)[1])
        plant(ws, "deleted_membership", ids)
        (found,) = check(ws, "adi")
        assert found.missing_memberships == ids[:2] and found.orphan_points == []
        (repaired,) = check(ws, "adi", repair=True)
        assert repaired.repaired["memberships_restored"] == 2 and repaired.repaired["orphans_deleted"] == 0
        with ws.catalog.session() as session:
            runs = session.scalars(select(CollectionChunk.ingest_run_id).where(CollectionChunk.chunk_id.in_(ids[:2])))
            assert list(runs) == [1, 1]


def test_an_altered_vector_with_consistent_norms_is_found_by_verification(adi_root, identity_embedder):
    """A vector turned to another direction, with the payload and catalog norms kept: only a re-embedding shows it."""
    root, engine = adi_root
    with opened(root, engine, identity_embedder) as ws:
        before = contents(ws)
        victim = sorted(before[1])[0]
        original = np.asarray(point(ws, victim).vector)
        rewrite(ws, victim, vector=np.roll(original, 1))  # same norm, another direction
        assert check(ws, "adi", sample=0)[0].problems == 0  # the norms alone cannot tell
        (found,) = check(ws, "adi", full=True)
        assert found.wrong_vectors == [victim] and found.vectors_verified == 82
        (repaired,) = check(ws, "adi", repair=True, full=True)
        assert repaired.problems == 0 and repaired.repaired["points_reembedded"] == 1
        assert np.allclose(point(ws, victim).vector, original, atol=1e-2)
        assert contents(ws) == before


def test_orphan_points_are_deleted_only_with_yes(adi_root, identity_embedder):
    root, engine = adi_root
    with opened(root, engine, identity_embedder) as ws:
        before = contents(ws)
        source = point(ws, sorted(before[1])[0])
        orphan = str(uuid.uuid4())
        ws.store.upsert(physical(ws), [orphan], np.array([source.vector]), [{**source.payload, "doc_id": "ghost"}])
        (found,) = check(ws, "adi")
        assert found.orphan_points == [orphan]
        (kept,) = check(ws, "adi", repair=True)
        assert kept.orphan_points == [orphan] and kept.repaired["orphans_kept"] == 1
        (repaired,) = check(ws, "adi", repair=True, yes=True)
        assert repaired.problems == 0 and repaired.repaired["orphans_deleted"] == 1
        assert contents(ws) == before


def test_a_deleted_collection_is_rebuilt_from_the_catalog(adi_root, identity_embedder):
    root, engine = adi_root
    with opened(root, engine, identity_embedder) as ws:
        before = contents(ws)
        name = physical(ws)
    if engine == "edge":  # the folder itself, gone behind ragcun's back
        shutil.rmtree(root / "home" / "qdrant" / "collections" / name)
    else:  # qdrant-client local mode keeps a meta file of its collections: drop it through the client
        with open_home(root, engine) as ws:
            ws.store.drop_collection(name)
    with opened(root, engine, identity_embedder) as ws:
        (found,) = check(ws, "adi")
        assert found.missing_collection == [name] and len(found.missing_points) == 82
        (repaired,) = check(ws, "adi", repair=True)
        assert repaired.problems == 0 and repaired.repaired["collection_rebuilt"] == 1
        assert contents(ws) == before
        assert ws.store.get_alias("adi") in (None, name)


def test_cli_repair_asks_for_yes_before_deleting_what_the_catalog_cannot_rebuild(adi_home):
    from ragcun.settings import Settings
    from ragcun.workspace import Workspace

    with Workspace(Settings.from_env(home=adi_home, environ={})) as ws:
        source = point(ws, sorted(contents(ws)[1])[0])
        ws.store.upsert(physical(ws), [str(uuid.uuid4())], np.array([source.vector]), [source.payload])
    runner = CliRunner()
    kept = runner.invoke(cli, ["--home", adi_home, "check", "--repair"])
    assert kept.exit_code == 1
    assert (
        "1 points have no chunk in the catalog, which cannot rebuild them: rerun with --repair --yes to delete them"
        in kept.stderr
    )
    assert runner.invoke(cli, ["--home", adi_home, "check", "--repair", "--yes"]).exit_code == 0
    clean = runner.invoke(cli, ["--home", adi_home, "check"])
    assert clean.exit_code == 0 and "82 points, 82 chunks: consistent" in clean.stdout
