"""Opening the catalog database and migrating it with Alembic."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session, sessionmaker

from ragcun.errors import CatalogError, CatalogNotInitialisedError, CatalogUnreadableError

MIGRATIONS_PACKAGE = "ragcun.migrations"


def migrations_dir() -> Path:
    """The folder of the Alembic scripts, installed as ``ragcun.migrations`` (the repository's ``migrations/``).

    Located through the import system without importing it: the library never imports its migrations,
    Alembic only reads them as files.
    """
    spec = importlib.util.find_spec(MIGRATIONS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CatalogError(f"the catalog migrations ({MIGRATIONS_PACKAGE}) are not installed: reinstall ragcun")
    return Path(next(iter(spec.submodule_search_locations)))


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            # WAL lets readers (ragcun status, docs show) run while an ingest writes.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

    return engine


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    engine = make_engine(url)
    try:
        readable_revision(engine, url)  # a file that is not SQLite: one line, not Alembic's traceback
    finally:
        engine.dispose()
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def readable_revision(engine: Engine, url: str) -> str | None:
    """:func:`current_revision`, or a one-line :class:`CatalogUnreadableError` for a file that is not SQLite.

    A truncated or overwritten catalog holds what no store can rebuild (documents, runs, lineage), so the
    advice is to restore it, never to start a new one over it.
    """
    try:
        return current_revision(engine)
    except DatabaseError as exc:
        engine.dispose()
        reason = str(exc.orig or exc).strip().splitlines()[0]
        raise CatalogUnreadableError(
            f"catalog {url} is not a readable SQLite database ({reason}): restore it from a backup "
            "(ragcun init would not recover it)"
        ) from None


class Catalog:
    """A migrated catalog database and a session factory for it."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        current, head = readable_revision(self.engine, url), head_revision(url)
        if current is None:
            self.engine.dispose()
            raise CatalogNotInitialisedError(f"catalog {url} is not initialised: run `ragcun init`")
        if current != head:
            self.engine.dispose()
            raise CatalogError(f"catalog {url} is at revision {current}, not {head}: run `ragcun db upgrade`")
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> Session:
        return self.sessions()

    def close(self) -> None:
        self.engine.dispose()
