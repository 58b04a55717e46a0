"""One settings object: the environment, then a .env file, then defaults; only the CLI reads ./.env."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from ragcun.cli import cli
from ragcun.errors import InvalidInputError
from ragcun.model.cache import default_cache_dir
from ragcun.settings import Settings

VARIABLES = [
    "RAGCUN_HOME",
    "RAGCUN_DB",
    "RAGCUN_CACHE",
    "QDRANT_URL",
    "QDRANT_API_KEY",
    "QDRANT_GRPC",
    "TOP_K",
    "MODEL_NAME",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_TIMEOUT",
    "OPENAI_MAX_RETRIES",
]


@pytest.fixture(autouse=True)
def clean(monkeypatch, tmp_path):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_environment_then_env_file_then_defaults(tmp_path):
    env = tmp_path / "x.env"
    env.write_text("RAGCUN_HOME=~/from-file\nQDRANT_URL=http://file:6333\nQDRANT_GRPC=1\nTOP_K=3\nOPENAI_TIMEOUT=7\n")
    settings = Settings.from_env(environ={"QDRANT_URL": "http://env:6333", "TOP_K": ""}, env_file=env)
    assert settings.home == (Path.home() / "from-file").resolve()
    assert (settings.qdrant_url, settings.qdrant_grpc, settings.engine) == ("http://env:6333", True, "server")
    assert (settings.top_k, settings.openai_timeout) == (3, 7.0)  # an empty variable does not hide the file
    assert Settings.from_env(home=tmp_path / "h", environ={}, env_file=env).home == tmp_path / "h"
    defaults = Settings.from_env(environ={})
    assert (defaults.home, defaults.engine, defaults.top_k) == ((Path.home() / ".ragcun").resolve(), "edge", 5)
    assert defaults.db_url == f"sqlite:///{defaults.home / 'catalog.sqlite'}"
    with pytest.raises(InvalidInputError, match="OPENAI_TIMEOUT must be a number, got 'soon'"):
        Settings.from_env(environ={"OPENAI_TIMEOUT": "soon"})


def test_the_process_environment_is_read_through_the_same_object(monkeypatch, tmp_path):
    monkeypatch.setenv("RAGCUN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RAGCUN_DB", "sqlite:////elsewhere/catalog.sqlite")
    monkeypatch.setenv("QDRANT_API_KEY", "k")
    settings = Settings.from_env()
    assert (settings.home, settings.db_url, settings.qdrant_api_key) == (
        tmp_path / "home",
        "sqlite:////elsewhere/catalog.sqlite",
        "k",
    )


def test_caches_live_under_the_home_unless_ragcun_cache_says_otherwise(monkeypatch, tmp_path):
    monkeypatch.setenv("RAGCUN_HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / "cache"
    monkeypatch.setenv("RAGCUN_CACHE", str(tmp_path / "cache"))
    assert default_cache_dir() == tmp_path / "cache"


def test_library_code_never_reads_the_working_directorys_env(tmp_path):
    (tmp_path / ".env").write_text("RAGCUN_HOME=/from/dot-env\nTOP_K=2\n")
    settings = Settings.from_env()
    assert settings.home != Path("/from/dot-env") and settings.top_k == 5


def test_the_cli_reads_dot_env_for_every_setting(tmp_path):
    """Not only `ask`'s: the catalog URL (and so QDRANT_URL, read the same way) comes from ./.env too."""
    (tmp_path / ".env").write_text(f"RAGCUN_HOME={tmp_path / 'home'}\nRAGCUN_DB=sqlite:///{tmp_path / 'db.sqlite'}\n")
    result = CliRunner().invoke(cli, ["init"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "db.sqlite").is_file() and (tmp_path / "home").is_dir()
    (tmp_path / ".env").write_text("TOP_K=zero\n")
    bad = CliRunner().invoke(cli, ["init"])
    assert (bad.exit_code, bad.output) == (1, "Error: TOP_K must be an integer, got 'zero'\n")
