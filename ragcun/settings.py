"""Every setting ragcun reads, in one object read once: the environment, then a ``.env`` file, then defaults.

Only the command line asks for a ``.env`` (the one in the folder it runs from); library code reads the
environment alone unless given a file, so importing ragcun never depends on the working directory.

==========================  ================================================================================
``RAGCUN_HOME``             folder of the embedded store, the default catalog and caches (``~/.ragcun``)
``RAGCUN_DB``               any SQLAlchemy URL for the catalog (``sqlite:///$RAGCUN_HOME/catalog.sqlite``)
``RAGCUN_CACHE``            the base-embedding cache (``$RAGCUN_HOME/cache``)
``RAGCUN_WAIT``             seconds a command waits for the embedded store another process holds (5)
``QDRANT_URL``              a Qdrant server or cluster; unset means the embedded engine
``QDRANT_API_KEY``          API key for that server
``QDRANT_GRPC``             ``1`` to talk gRPC (port 6334) instead of REST
``EMBEDDING_MODEL``         ragcun model directory of the in-memory RAG retriever (default model)
``MODEL_NAME``              RAG generator: ``extractive``, ``openai:MODEL`` or ``hf:PATH``
``TOP_K``                   contexts retrieved per question (5)
``CHANCE_THRESHOLD``        ``ask`` abstains unless a hit's p-value (adapted collections) is below it (0.05)
``OPENAI_BASE_URL``         OpenAI-compatible API root, ending in ``/v1``
``OPENAI_API_KEY``          its key (unset sends none)
``OPENAI_TIMEOUT``          seconds to wait for each network read (60)
``OPENAI_MAX_RETRIES``      retries on 429, 5xx, timeouts and refused connections (2)
``PROMPT_TEMPLATE_FILE``    a prompt template with ``{context}`` and ``{question}``
``MAX_TOKENS``              most tokens an LLM may generate (OpenAI: the server's default; hf: 512)
``TEMPERATURE``             sampling temperature for LLM backends (the backend's default)
``RAGCUN_API_KEY``          ``ragcun serve``: the bearer token every route but the health checks requires
``RAGCUN_MAX_BODY_BYTES``   ``ragcun serve``: larger request bodies are refused with 413 (10 MiB)
``RAGCUN_BATCH_WINDOW_MS``  ``ragcun serve``: how long a query waits for others to embed with (2 ms)
==========================  ================================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ragcun.errors import InvalidInputError

# HNSW defaults for new collections, wider than Qdrant's (m=16, ef_construct=100) for a margin on
# data harder than ours: benchmarks/search.py measured recall@10 1.000 at ef 256 on 100,000 and
# 1,000,000 vectors drawn like the default model's, and 0.990 at 100,000 on a harder-than-real
# diagonal mixture. Near-isotropic data (N(0, I)) wants a larger ef (`ragcun search --hnsw-ef`).
HNSW_M = 32
HNSW_EF_CONSTRUCT = 256
HNSW_EF = 256

# Long enough for a short command holding the embedded store (a search, a small ingest) to finish.
DEFAULT_WAIT = 5.0
DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
# A hit of an adapted collection is "closer than chance" when its p-value is below this (ragcun.retrieve.chance).
DEFAULT_CHANCE_THRESHOLD = 0.05


def _env(name: str, default: Any = None) -> Any:
    return Field(default, validation_alias=name)


class Settings(BaseSettings):
    """ragcun's settings; build it with :meth:`from_env`. Field names are the variables', lower-cased."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_ignore_empty=True)

    home: Path = Field(default_factory=lambda: Path.home() / ".ragcun", validation_alias="RAGCUN_HOME")
    db: str | None = _env("RAGCUN_DB")
    cache: Path | None = _env("RAGCUN_CACHE")
    # Seconds to wait for the embedded store's lock (another ragcun process) before failing: ``--wait``.
    wait: float = Field(DEFAULT_WAIT, ge=0, validation_alias="RAGCUN_WAIT")
    qdrant_url: str | None = _env("QDRANT_URL")
    qdrant_api_key: str | None = _env("QDRANT_API_KEY")
    qdrant_grpc: bool = _env("QDRANT_GRPC", False)
    embedding_model: str | None = _env("EMBEDDING_MODEL")
    model_name: str = _env("MODEL_NAME", "extractive")
    top_k: int = _env("TOP_K", 5)
    chance_threshold: float = _env("CHANCE_THRESHOLD", DEFAULT_CHANCE_THRESHOLD)
    openai_base_url: str = _env("OPENAI_BASE_URL", DEFAULT_OPENAI_BASE_URL)
    openai_api_key: str | None = _env("OPENAI_API_KEY")
    openai_timeout: float = _env("OPENAI_TIMEOUT", 60.0)
    openai_max_retries: int = _env("OPENAI_MAX_RETRIES", 2)
    prompt_template_file: str | None = _env("PROMPT_TEMPLATE_FILE")
    max_tokens: int | None = _env("MAX_TOKENS")
    temperature: float | None = _env("TEMPERATURE")
    # A secret: its repr is masked, so no log line or traceback of the settings shows it.
    api_key: SecretStr | None = _env("RAGCUN_API_KEY")
    max_body_bytes: int = _env("RAGCUN_MAX_BODY_BYTES", 10 * 2**20)
    batch_window_ms: float = _env("RAGCUN_BATCH_WINDOW_MS", 2.0)

    @classmethod
    def from_env(
        cls,
        home: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
        env_file: str | Path | None = None,
    ) -> Settings:
        """Read the settings once.

        Args:
            home: Overrides ``RAGCUN_HOME`` (the CLI's ``--home``).
            environ: The environment to read; ``None`` is ``os.environ``. Tests pass ``{}`` to read none.
            env_file: A ``.env`` file read under the environment (python-dotenv syntax); a missing file
                is skipped, ``None`` reads none.

        Raises:
            InvalidInputError: naming the variable whose value does not parse.
        """
        env_file = env_file if env_file is not None and Path(env_file).is_file() else None
        try:
            if environ is None:
                settings = cls(_env_file=env_file)
            else:
                from dotenv import dotenv_values

                values: dict[str, Any] = {k: v for k, v in (dotenv_values(env_file) if env_file else {}).items() if v}
                values.update({k: v for k, v in environ.items() if v and v.strip()})
                settings = cls.model_construct(**dict(_Given(**values)))
        except ValidationError as exc:
            error = exc.errors()[0]
            raise InvalidInputError(
                f"{_variable(error['loc'])} must be {_kind(error)}, got {error.get('input')!r}"
            ) from None
        home_path = Path(home or settings.home).expanduser().resolve()
        return settings.model_copy(update={"home": home_path})

    @property
    def db_url(self) -> str:
        return self.db or f"sqlite:///{self.home / 'catalog.sqlite'}"

    @property
    def cache_dir(self) -> Path:
        """The base-embedding cache: ``RAGCUN_CACHE``, else ``cache/`` under the home."""
        return Path(self.cache).expanduser() if self.cache else self.home / "cache"

    @property
    def engine(self) -> str:
        """``server`` when a Qdrant URL is configured, else ``edge`` (the embedded engine)."""
        return "server" if self.qdrant_url else "edge"

    @property
    def store_path(self) -> Path:
        return self.home / "qdrant"


class _Given(Settings):
    """Settings from the values passed in alone: the process environment is not read."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def _variable(loc: tuple) -> str:
    name = str(loc[0]) if loc else "setting"
    return name.upper() if name.lower() in Settings.model_fields else name


def _kind(error: ErrorDetails) -> str:
    kinds = {"int_parsing": "an integer", "float_parsing": "a number", "bool_parsing": "true or false (1 or 0)"}
    return kinds.get(error["type"], error["msg"].removeprefix("Input should be ").rstrip("."))
