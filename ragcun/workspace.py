"""A ragcun home opened for work: settings, catalog, vector store and loaded models together."""

from __future__ import annotations

import logging
from pathlib import Path

from ragcun.catalog import Catalog, upgrade
from ragcun.catalog.models import Collection, ModelVersion
from ragcun.errors import ModelMismatchError
from ragcun.settings import Settings
from ragcun.store import VectorStore, open_store

logger = logging.getLogger(__name__)


def init_home(settings: Settings) -> None:
    """Create the home folder and bring the catalog schema to head (idempotent)."""
    settings.home.mkdir(parents=True, exist_ok=True)
    upgrade(settings.db_url)


class Workspace:
    """Everything a command needs, opened lazily so a catalog-only command never locks the store.

    Args:
        settings: Where things live.
        store: An already opened store to use instead of the configured one (tests pass
            qdrant-client local mode here).
    """

    def __init__(self, settings: Settings, store: VectorStore | None = None):
        self.settings = settings
        self.catalog = Catalog(settings.db_url)
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

    def _rekey(self) -> None:
        """Finish what a catalog migration left for the store (points whose ids it changed)."""
        from ragcun.collections.rekey import apply_rekeys

        apply_rekeys(self)

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
