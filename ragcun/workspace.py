"""A ragcun home opened for work: settings, catalog, vector store and loaded models together."""

from __future__ import annotations

import logging
from pathlib import Path

from ragcun.catalog import Catalog, upgrade
from ragcun.catalog.db import make_engine, readable_revision
from ragcun.catalog.models import Collection, ModelVersion
from ragcun.errors import CatalogError, CatalogNotInitialisedError, ModelMismatchError
from ragcun.settings import Settings
from ragcun.store import VectorStore, open_store

logger = logging.getLogger(__name__)

# Seconds an `init` waits for another one running on the same home.
INIT_WAIT = 60.0


def stored_collections(settings: Settings) -> list[str]:
    """The physical collections the embedded store of ``settings``' home holds (a server is not asked)."""
    if settings.qdrant_url:
        return []
    folder = settings.store_path / "collections"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def catalog_revision(url: str) -> str | None:
    """The schema revision of the catalog at ``url`` (``None``: empty), without creating a missing SQLite file."""
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None
    engine = make_engine(url)
    try:
        return readable_revision(engine, url)
    finally:
        engine.dispose()


def init_home(settings: Settings, force: bool = False) -> None:
    """Create the home folder and bring the catalog schema to head (idempotent, and safe against a concurrent init).

    Args:
        force: Create a new, empty catalog even beside an embedded store that already holds collections
            (whose documents it will not know): without it, that is refused, since the likelier story is a
            lost or misplaced catalog that should be restored.

    Raises:
        CatalogError: the catalog is unreadable, or would be created beside existing store data.
    """
    from filelock import FileLock, Timeout

    settings.home.mkdir(parents=True, exist_ok=True)
    try:
        # Two inits at once would both create the tables: the second waits for the first, then finds them.
        with FileLock(settings.home / ".init.lock", timeout=INIT_WAIT):
            current = catalog_revision(settings.db_url)
            existing = stored_collections(settings) if current is None and not force else []
            if existing:
                raise CatalogError(
                    f"{settings.store_path} already holds {len(existing)} collections but the catalog "
                    f"{settings.db_url} is empty or missing: restore the catalog from a backup, or run "
                    "`ragcun init --force` to start an empty catalog beside them"
                )
            upgrade(settings.db_url)
    except Timeout:
        raise CatalogError(
            f"another `ragcun init` has held {settings.home} for {INIT_WAIT:.0f}s: wait for it, then run init again"
        ) from None


class Workspace:
    """Everything a command needs, opened lazily so a catalog-only command never locks the store.

    Args:
        settings: Where things live.
        store: An already opened store to use instead of the configured one (tests pass
            qdrant-client local mode here).
    """

    def __init__(self, settings: Settings, store: VectorStore | None = None):
        self.settings = settings
        try:
            self.catalog = Catalog(settings.db_url)
        except CatalogNotInitialisedError:
            existing = stored_collections(settings)
            if not existing:
                raise
            # `ragcun init` here would create an empty catalog beside collections it knows nothing of.
            raise CatalogNotInitialisedError(
                f"catalog {settings.db_url} is empty or missing, but {settings.store_path} holds "
                f"{len(existing)} collections: restore the catalog from a backup "
                "(`ragcun init --force` would start an empty one beside them)"
            ) from None
        self._store = store
        self._models: dict[str, object] = {}
        if store is not None:
            self._rekey()

    @property
    def models_dir(self) -> Path:
        return self.settings.home / "models"

    @property
    def store(self) -> VectorStore:
        if self._store is None:
            self._store = open_store(self.settings)
            self._rekey()
        return self._store

    def open_store(self) -> VectorStore:
        """The store, opened now: write paths call this before reading the catalog, so that what a killed
        command left unfinished is settled first (:mod:`ragcun.collections.journal`)."""
        return self.store

    def _rekey(self) -> None:
        """Finish what a catalog migration left for the store (points whose ids it changed), then every
        store write a killed command left unfinished (:mod:`ragcun.collections.journal`)."""
        from ragcun.collections.journal import settle
        from ragcun.collections.rekey import apply_rekeys

        apply_rekeys(self)
        settle(self)

    def embedder_for(self, collection: Collection):
        """The model that built ``collection``, loaded once per workspace."""
        return self.embedder_of(collection.model_version, f"collection {collection.name!r}")

    def embedder_of(self, version: ModelVersion, used_by: str = "this model version"):
        """A registered model version, loaded once per workspace (one copy however many collections use it)."""
        from ragcun.model import GaussianEmbedder

        if version.fingerprint not in self._models:
            embedder = GaussianEmbedder.load(version.path)
            if embedder.fingerprint != version.fingerprint:
                raise ModelMismatchError(
                    f"{version.path} holds model {embedder.fingerprint[:12]}, but the catalog "
                    f"records {version.fingerprint[:12]} for {used_by}"
                )
            self._models[version.fingerprint] = embedder
        return self._models[version.fingerprint]

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        self.catalog.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
