"""Where ragcun keeps its state, read from the environment in one place.

==================  ====================================================================
``RAGCUN_HOME``     folder of the embedded store and the default catalog (``~/.ragcun``)
``RAGCUN_DB``       any SQLAlchemy URL for the catalog (``sqlite:///$RAGCUN_HOME/catalog.sqlite``)
``QDRANT_URL``      a Qdrant server or cluster; unset means the embedded engine
``QDRANT_API_KEY``  API key for that server
``QDRANT_GRPC``     ``1`` to talk gRPC (port 6334) instead of REST
==================  ====================================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# HNSW defaults for new collections, wider than Qdrant's (m=16, ef_construct=100) for a margin on
# data harder than ours: benchmarks/search.py measured recall@10 1.000 at ef 256 on 100,000 and
# 1,000,000 vectors drawn like the default model's, and 0.990 at 100,000 on a harder-than-real
# diagonal mixture. Near-isotropic data (N(0, I)) wants a larger ef (`ragcun search --hnsw-ef`).
HNSW_M = 32
HNSW_EF_CONSTRUCT = 256
HNSW_EF = 256


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    qdrant_grpc: bool = False

    @property
    def engine(self) -> str:
        """``server`` when a Qdrant URL is configured, else ``edge`` (the embedded engine)."""
        return "server" if self.qdrant_url else "edge"

    @property
    def store_path(self) -> Path:
        return self.home / "qdrant"

    @classmethod
    def from_env(cls, home: str | Path | None = None, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home_path = Path(home or env.get("RAGCUN_HOME") or Path.home() / ".ragcun").expanduser().resolve()
        return cls(
            home=home_path,
            db_url=env.get("RAGCUN_DB") or f"sqlite:///{home_path / 'catalog.sqlite'}",
            qdrant_url=env.get("QDRANT_URL") or None,
            qdrant_api_key=env.get("QDRANT_API_KEY") or None,
            qdrant_grpc=env.get("QDRANT_GRPC", "").lower() in {"1", "true", "yes"},
        )
