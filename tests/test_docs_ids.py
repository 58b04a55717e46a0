"""Documents named the way users name them: relative ids, moving folders, docs list/show/delete, the id migration."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from ragcun.catalog.models import Chunk, Document, Source
from ragcun.cli import cli
from ragcun.collections import chunk_lineage, delete_document
from ragcun.collections.documents import list_documents
from ragcun.errors import ChunkNotFound
from ragcun.ingest import IngestOptions, ingest
from ragcun.retrieve.collection import search

from .conftest import THREE_DOCS


def write_folder(folder):
    (folder / "guides").mkdir(parents=True)
    (folder / "parking.md").write_text(THREE_DOCS[0])
    (folder / "guides" / "ml.txt").write_text(THREE_DOCS[1])
    (folder / "guides" / "paris.txt").write_text(THREE_DOCS[2])
    return folder


def test_moving_a_folder_and_reingesting_with_sync_adds_and_deletes_nothing(workspace, identity_embedder, tmp_path):
    first = ingest(workspace, [write_folder(tmp_path / "mv1")], "kb", identity_embedder)
    assert first.added == 3
    ids = sorted(d.doc_id for d in list_documents(workspace, "kb"))
    assert ids == ["guides/ml.txt", "guides/paris.txt", "parking.md"]
    before = {p.id for p in workspace.store.scroll(f"kb-{identity_embedder.fingerprint[:12]}")}
    shutil.move(tmp_path / "mv1", tmp_path / "mv2")
    again = ingest(workspace, [tmp_path / "mv2"], "kb", identity_embedder, IngestOptions(sync=True))
    assert (again.added, again.updated, again.deleted, again.unchanged, again.failed) == (0, 0, 0, 3, 0)
    assert {p.id for p in workspace.store.scroll(f"kb-{identity_embedder.fingerprint[:12]}")} == before
    with workspace.catalog.session() as session:
        paths = sorted(s.path for s in session.scalars(select(Source)))
    assert all("/mv2/" in p for p in paths)
    (tmp_path / "mv2" / "parking.md").unlink()
    assert ingest(workspace, [tmp_path / "mv2"], "kb", identity_embedder, IngestOptions(sync=True)).deleted == 1


def test_prefix_names_and_what_docs_list_prints_is_what_delete_and_show_take(workspace, identity_embedder, tmp_path):
    ingest(workspace, [write_folder(tmp_path / "in")], "kb", identity_embedder, IngestOptions(prefix="docs/"))
    listed = list_documents(workspace, "kb", source_glob="docs/guides/*")
    assert [d.doc_id for d in listed] == ["docs/guides/ml.txt", "docs/guides/paris.txt"]
    hit = search(workspace, "kb", "Eiffel Tower", 1)[0]
    assert hit.doc_id == "docs/guides/paris.txt" and hit.source == "docs/guides/paris.txt"
    assert chunk_lineage(workspace, hit.chunk_id[:8]).chunk_id == hit.chunk_id
    with pytest.raises(ChunkNotFound):
        chunk_lineage(workspace, "zzzzzzzz")
    assert delete_document(workspace, "kb", "docs/parking.md").chunks_deleted == 1
    assert [d.doc_id for d in list_documents(workspace, "kb")] == ["docs/guides/ml.txt", "docs/guides/paris.txt"]


def test_docs_list_cli(tmp_path, identity_model_dir):
    home = str(tmp_path / "home")
    runner = CliRunner()
    folder = write_folder(tmp_path / "in")
    assert runner.invoke(cli, ["--home", home, "init"]).exit_code == 0
    result = runner.invoke(cli, ["--home", home, "ingest", str(folder), "-c", "kb", "--model", str(identity_model_dir)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["--home", home, "docs", "list", "-c", "kb", "--json"])
    assert result.exit_code == 0, result.output
    assert [d["doc_id"] for d in json.loads(result.output)] == ["guides/ml.txt", "guides/paris.txt", "parking.md"]
    result = runner.invoke(cli, ["--home", home, "docs", "delete", "guides/ml.txt", "-c", "kb"])
    assert result.exit_code == 0 and "Deleted 'guides/ml.txt'" in result.output


@pytest.mark.parametrize("engine", ["edge", "local"])
def test_the_id_migration_rekeys_an_old_schema_catalog_without_reembedding(tmp_path, identity_embedder, engine):
    """A catalog made at revision 0003 (absolute ids) is upgraded; its points keep their vectors under new ids."""
    from ragcun.catalog import upgrade
    from ragcun.catalog.ops import chunk_uuid, document_uuid
    from ragcun.settings import Settings
    from ragcun.store import ClientStore, CollectionParams, EdgeStore
    from ragcun.workspace import Workspace

    settings = Settings.from_env(home=tmp_path / "home", environ={})
    settings.home.mkdir(parents=True)
    upgrade(settings.db_url, "0003")
    folder = write_folder(tmp_path / "in")
    files = [folder / "parking.md", folder / "guides" / "ml.txt"]
    vectors = identity_embedder.encode([f.read_text() for f in files])
    physical = f"kb-{identity_embedder.fingerprint[:12]}"
    # The rows and points the previous schema's ingest wrote: absolute paths as source uris and doc ids.
    from sqlalchemy import create_engine, text

    engine = create_engine(settings.db_url)
    old_chunks = []
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO model_versions (id, fingerprint, base_model, head, dim, path, created_at) "
                "VALUES (1, :f, 'base', '{}', :d, 'x', '2026-01-01')"
            ),
            {"f": identity_embedder.fingerprint, "d": identity_embedder.dim},
        )
        conn.execute(
            text(
                "INSERT INTO collections (id, name, physical_name, engine, model_version_id, status, "
                "status_changed_at, settings, created_at) VALUES (1, 'kb', :p, 'edge', 1, 'active', "
                "'2026-01-01', '{}', '2026-01-01')"
            ),
            {"p": physical},
        )
        conn.execute(
            text(
                "INSERT INTO ingest_runs (id, kind, collection_name, collection_id, model_version_id, "
                "status, inputs, counts, errors, started_at, ragcun_version) VALUES (1, 'ingest', 'kb', 1, 1, "
                "'completed', :i, '{}', '[]', '2026-01-01', '0')"
            ),
            {"i": json.dumps([str(folder)])},
        )
        for n, path in enumerate(files, 1):
            doc = document_uuid("kb", str(path))
            chunk = chunk_uuid(doc, 0, "s" * 64)
            old_chunks.append(chunk)
            conn.execute(
                text(
                    "INSERT INTO sources (id, collection_name, uri, sha256, complete_sha256, updated_at) "
                    "VALUES (:n, 'kb', :u, 'h', 'h', '2026-01-01')"
                ),
                {"n": n, "u": str(path)},
            )
            conn.execute(
                text(
                    "INSERT INTO documents (id, collection_name, doc_id, source_id, sha256, metadata, "
                    "ingest_run_id, updated_at) VALUES (:id, 'kb', :d, :n, 'h', '{}', 1, '2026-01-01')"
                ),
                {"id": doc, "d": str(path), "n": n},
            )
            conn.execute(
                text(
                    "INSERT INTO chunks (id, document_id, ordinal, sha256, text, token_count) VALUES "
                    "(:c, :d, 0, :s, :t, 5)"
                ),
                {"c": chunk, "d": doc, "s": "s" * 64, "t": path.read_text()},
            )
            conn.execute(
                text(
                    "INSERT INTO collection_chunks (collection_id, chunk_id, ingest_run_id, norm) VALUES "
                    "(1, :c, 1, 1.0)"
                ),
                {"c": chunk},
            )
    engine.dispose()
    store = ClientStore.local_path(tmp_path / "local") if engine == "local" else EdgeStore(settings.store_path)
    store.create_collection(physical, CollectionParams(dim=identity_embedder.dim))
    store.upsert(
        physical,
        old_chunks,
        vectors,
        [{"doc_id": str(f), "text": f.read_text(), "norm": 1.0, "source": str(f)} for f in files],
    )

    upgrade(settings.db_url)  # 0006: catalog re-keyed, points listed for re-keying
    with Workspace(settings, store=store) as ws:  # opening the store re-keys the points
        with ws.catalog.session() as session:
            assert sorted(session.scalars(select(Document.doc_id))) == ["guides/ml.txt", "parking.md"]
            assert sorted(session.scalars(select(Source.uri))) == ["guides/ml.txt", "parking.md"]
            new_chunks = {c.document.doc_id: c.id for c in session.scalars(select(Chunk))}
        points = {str(r.id): r for r in ws.store.scroll(physical, with_vectors=True)}
        assert set(points) == set(new_chunks.values())
        assert points[new_chunks["parking.md"]].payload["doc_id"] == "parking.md"
        np.testing.assert_allclose(points[new_chunks["parking.md"]].vector, vectors[0], rtol=1e-6)
        assert delete_document(ws, "kb", "guides/ml.txt").chunks_deleted == 1
