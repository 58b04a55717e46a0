"""Alembic owns the schema: upgrade from empty to head, downgrade to base, and agree with the models."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner

from ragcun.catalog import Base, current_revision, downgrade, head_revision, make_engine, upgrade
from ragcun.cli import cli


def test_upgrade_to_head_then_downgrade_to_base(tmp_path):
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    assert current_revision(engine) == head_revision(url)
    tables = set(sa.inspect(engine).get_table_names())
    assert {
        "sources",
        "documents",
        "chunks",
        "ingest_runs",
        "model_versions",
        "collections",
        "collection_chunks",
    } <= tables
    with engine.connect() as connection:
        # The migrated schema is exactly what the ORM models describe.
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    downgrade(url)
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    assert current_revision(engine) is None
    engine.dispose()


def test_db_commands_and_uninitialised_catalog_error(tmp_path):
    home = str(tmp_path / "home")
    runner = CliRunner()
    result = runner.invoke(cli, ["--home", home, "status"])
    assert result.exit_code == 1
    assert "is not initialised: run `ragcun init`" in result.output
    assert runner.invoke(cli, ["--home", home, "db", "current"]).output.startswith("current (empty); head 0007")
    assert runner.invoke(cli, ["--home", home, "db", "upgrade"]).exit_code == 0
    assert runner.invoke(cli, ["--home", home, "db", "current"]).output.startswith("current 0007; head 0007")
    status = runner.invoke(cli, ["--home", home, "status", "--json"])
    assert status.exit_code == 0, status.output


def test_ragcun_db_env_selects_the_catalog(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGCUN_DB", f"sqlite:///{tmp_path / 'elsewhere.sqlite'}")
    result = CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), "init"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "elsewhere.sqlite").exists()
    assert not (tmp_path / "home" / "catalog.sqlite").exists()
