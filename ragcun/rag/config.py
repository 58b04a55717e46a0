"""RAG settings, read from explicit arguments, then the environment, then a ``.env`` file.

=========================  ==================================================================
``EMBEDDING_MODEL``        ragcun model directory of the in-memory retriever (default model)
``MODEL_NAME``             generator: ``extractive``, ``openai:MODEL`` or ``hf:PATH``
``TOP_K``                  contexts retrieved per question (5)
``OPENAI_BASE_URL``        OpenAI-compatible API root, ending in ``/v1``
``OPENAI_API_KEY``         its key (sent as ``Authorization: Bearer``; unset sends none)
``OPENAI_TIMEOUT``         seconds to wait for each network read (60)
``OPENAI_MAX_RETRIES``     retries on 5xx, timeouts and refused connections (2)
``PROMPT_TEMPLATE_FILE``   a prompt template with ``{context}`` and ``{question}``
``MAX_TOKENS``             most tokens an LLM may generate (OpenAI: the server's default; hf: 512)
``TEMPERATURE``            sampling temperature for LLM backends (the backend's default)
=========================  ==================================================================
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def read_env_file(path: str | Path) -> dict[str, str]:
    """Parse a ``.env`` file: ``KEY=value`` lines, ``#`` comments, optional ``export`` and quotes.

    Raises:
        ValueError: on a line that is not an assignment, naming the file and line.
    """
    path = Path(path)
    values: dict[str, str] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ValueError(f"{path}:{line_no}: expected KEY=value, got {line.strip()[:60]!r}")
        key, raw = match.groups()
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
            value = raw[1:-1]
            if raw[0] == '"':
                value = value.replace("\\n", "\n").replace('\\"', '"')
        else:
            # An unquoted value ends at " #", so "TOP_K=5  # five" is 5; a bare '#' in a URL stays.
            value = re.split(r"\s+#", raw, maxsplit=1)[0].strip()
        values[key] = value
    return values


@dataclass(frozen=True)
class RAGConfig:
    """Everything the RAG pipeline reads from its environment. See the module docstring."""

    embedding_model: str | None = None
    model_name: str = "extractive"
    top_k: int = 5
    openai_base_url: str = DEFAULT_OPENAI_BASE_URL
    openai_api_key: str | None = None
    openai_timeout: float = 60.0
    openai_max_retries: int = 2
    prompt_template_file: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None

    @classmethod
    def from_env(cls, env_file: str | Path | None = ".env", environ: Mapping[str, str] | None = None,
                 **overrides) -> RAGConfig:
        """Settings from ``overrides`` (``None`` values ignored), else ``environ``, else ``env_file``.

        Args:
            env_file: A ``.env`` file; a missing file is skipped, ``None`` reads none.
            environ: The environment (default ``os.environ``).
            overrides: Field values given explicitly, e.g. ``top_k=3``.
        """
        merged = dict(read_env_file(env_file)) if env_file is not None and Path(env_file).is_file() else {}
        merged.update(os.environ if environ is None else environ)
        parsed = {}
        for f in fields(cls):
            raw = merged.get(f.name.upper())
            if raw is not None and raw.strip() != "":
                parsed[f.name] = _parse(f.name, raw.strip())
        config = replace(cls(), **parsed)
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown RAG setting(s): {', '.join(sorted(unknown))}")
        config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
        config.validate()
        return config

    def validate(self) -> None:
        """Raise ``ValueError`` on settings no backend could use."""
        _positive_int("top_k", self.top_k)
        if self.max_tokens is not None:
            _positive_int("max_tokens", self.max_tokens)
        if isinstance(self.openai_max_retries, bool) or not isinstance(self.openai_max_retries, int) \
                or self.openai_max_retries < 0:
            raise ValueError(f"OPENAI_MAX_RETRIES must be an integer >= 0, got {self.openai_max_retries!r}")
        if not self.openai_timeout > 0:
            raise ValueError(f"OPENAI_TIMEOUT must be a positive number of seconds, got {self.openai_timeout!r}")


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _parse(name: str, raw: str):
    """Convert one environment string to the field's type, naming the variable on failure."""
    try:
        if name in {"top_k", "openai_max_retries", "max_tokens"}:
            return int(raw)
        if name in {"openai_timeout", "temperature"}:
            return float(raw)
    except ValueError:
        kind = "an integer" if name in {"top_k", "openai_max_retries", "max_tokens"} else "a number"
        raise ValueError(f"{name.upper()} must be {kind}, got {raw!r}") from None
    return raw
