"""The RAG pipeline's settings: a validated view of :class:`ragcun.settings.Settings` (which documents them).

``EMBEDDING_MODEL``, ``MODEL_NAME``, ``TOP_K``, ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``OPENAI_TIMEOUT``,
``OPENAI_MAX_RETRIES``, ``PROMPT_TEMPLATE_FILE``, ``MAX_TOKENS`` and ``TEMPERATURE``: explicit arguments
win over the environment, which wins over a ``.env`` file when one is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

from ragcun.errors import InvalidInputError
from ragcun.settings import DEFAULT_CHANCE_THRESHOLD, DEFAULT_OPENAI_BASE_URL, Settings


@dataclass(frozen=True)
class RAGConfig:
    """Everything the RAG pipeline reads from its environment. See the module docstring."""

    embedding_model: str | None = None
    model_name: str = "extractive"
    top_k: int = 5
    chance_threshold: float = DEFAULT_CHANCE_THRESHOLD
    openai_base_url: str = DEFAULT_OPENAI_BASE_URL
    openai_api_key: str | None = None
    openai_timeout: float = 60.0
    openai_max_retries: int = 2
    prompt_template_file: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None

    @classmethod
    def from_env(
        cls, env_file: str | Path | None = None, environ: Mapping[str, str] | None = None, **overrides
    ) -> RAGConfig:
        """Settings from ``overrides`` (``None`` values ignored), else ``environ``, else ``env_file``.

        Args:
            env_file: A ``.env`` file; a missing file is skipped, ``None`` (the default) reads none.
            environ: The environment (default ``os.environ``).
            overrides: Field values given explicitly, e.g. ``top_k=3``.
        """
        return cls.from_settings(Settings.from_env(environ=environ, env_file=env_file), **overrides)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides) -> RAGConfig:
        """The RAG fields of ``settings``, with ``overrides`` (``None`` values ignored) applied and checked."""
        names = {f.name for f in fields(cls)}
        unknown = set(overrides) - names
        if unknown:
            raise TypeError(f"unknown RAG setting(s): {', '.join(sorted(unknown))}")
        config = cls(**{name: getattr(settings, name) for name in names})
        config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
        config.validate()
        return config

    def validate(self) -> None:
        """Raise :class:`InvalidInputError` on settings no backend could use."""
        _positive_int("top_k", self.top_k)
        if not 0.0 < self.chance_threshold <= 1.0:
            raise InvalidInputError(f"CHANCE_THRESHOLD must be in (0, 1], got {self.chance_threshold!r}")
        if self.max_tokens is not None:
            _positive_int("max_tokens", self.max_tokens)
        if (
            isinstance(self.openai_max_retries, bool)
            or not isinstance(self.openai_max_retries, int)
            or self.openai_max_retries < 0
        ):
            raise InvalidInputError(f"OPENAI_MAX_RETRIES must be an integer >= 0, got {self.openai_max_retries!r}")
        if not self.openai_timeout > 0:
            raise InvalidInputError(f"OPENAI_TIMEOUT must be a positive number of seconds, got {self.openai_timeout!r}")


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
