"""Shared fixtures. The encoder is the real packaged all-MiniLM-L6-v2, loaded once per test run, and the
bundled ADI corpus is ingested once per engine: tests that only need an ADI collection get a copy."""

from __future__ import annotations

import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ragcun.model import DEFAULT_BASE_MODEL, GaussianEmbedder, load_base_encoder

ADI = os.path.join(os.path.dirname(__file__), "..", "ragcun", "data", "adi", "corpus.jsonl")
ENGINES = ("edge", "local")

# Children to kill at a fault point, forked from a server that imported torch, sentence-transformers and
# ragcun but never ran a torch op (so a fork is OpenMP-safe): a child costs a fork, not an interpreter start.
KILLABLE = multiprocessing.get_context("forkserver")
KILLABLE.set_forkserver_preload(
    [
        "torch",
        "sentence_transformers",
        "ragcun.model",
        "ragcun.collections",
        "ragcun.ingest",
        "ragcun.cli",
        "tests.conftest",
    ]
)

THREE_DOCS = [
    "Python is a popular programming language for writing software.",
    "Machine learning is a field of artificial intelligence in which computers learn patterns from data.",
    "The Eiffel Tower is a wrought-iron landmark in Paris, France.",
]


@pytest.fixture(scope="session")
def base_encoder():
    return load_base_encoder(DEFAULT_BASE_MODEL, device="cpu")


@pytest.fixture(scope="session")
def identity_embedder(base_encoder):
    return GaussianEmbedder(head="identity", base_encoder=base_encoder)


@pytest.fixture(scope="session")
def mlp_embedder(base_encoder):
    return GaussianEmbedder(head="mlp", out_dim=64, hidden_dim=128, seed=7, base_encoder=base_encoder)


@pytest.fixture(params=ENGINES)
def workspace(request, tmp_path):
    """A fresh, migrated ragcun home on a real engine: qdrant-edge, or qdrant-client local mode."""
    with open_home(init_root(tmp_path), request.param) as ws:
        yield ws


@pytest.fixture(scope="session")
def identity_model_dir(tmp_path_factory, identity_embedder):
    """The untrained identity model saved as a model directory (for subprocesses and --model)."""
    path = tmp_path_factory.mktemp("models") / "identity"
    identity_embedder.save(path)
    return path


@pytest.fixture(scope="session")
def model_b(base_encoder):
    """A second model version: a random linear head to 64 dims, so its neighbours differ from the base's."""
    return GaussianEmbedder(head="linear", out_dim=64, seed=3, base_encoder=base_encoder)


@pytest.fixture(scope="session")
def model_b_dir(tmp_path_factory, model_b):
    path = tmp_path_factory.mktemp("models") / "b"
    model_b.save(path)
    return path


def _cli_until_fault(argv: list[str], fault: str) -> None:
    import torch

    from ragcun.cli import cli
    from ragcun.faults import FAULT_ENV

    torch.set_num_threads(1)
    os.environ[FAULT_ENV] = fault
    cli.main(args=argv, prog_name="ragcun")


def run_cli_until_fault(argv: list[str], fault: str) -> int | None:
    """Run ``ragcun ARGV`` in a child with ``RAGCUN_FAULT=fault``; its exit code (``-SIGKILL`` when killed there)."""
    child = KILLABLE.Process(target=_cli_until_fault, args=(argv, fault))
    child.start()
    child.join(300)
    return child.exitcode


def init_root(root: Path) -> Path:
    """Create a migrated, empty home at ``root/home``; return ``root``."""
    from ragcun.settings import Settings
    from ragcun.workspace import init_home

    init_home(Settings.from_env(home=root / "home", environ={}))
    return root


def open_home(root: Path, engine: str):
    """The ragcun home under ``root`` (``root/home``) on ``engine``: the embedded edge engine inside the
    home, or qdrant-client local mode in ``root/local-qdrant``."""
    from ragcun.settings import Settings
    from ragcun.store import ClientStore
    from ragcun.workspace import Workspace

    store = ClientStore.local_path(root / "local-qdrant") if engine == "local" else None
    return Workspace(Settings.from_env(home=root / "home", environ={}), store=store)


@pytest.fixture(scope="session")
def adi_template(tmp_path_factory, identity_embedder) -> Callable[[str], Path]:
    """``template(engine)``: a root holding a home where ADI was ingested as collection ``adi`` with the
    identity model (what ``ragcun ingest ADI -c adi --model <identity_model_dir>`` builds), built once per
    engine on first use. Never open it: tests work on copies (:func:`copy_adi_home`)."""
    from ragcun.ingest import ingest

    built: dict[str, Path] = {}

    def template(engine: str) -> Path:
        if engine not in built:
            root = init_root(tmp_path_factory.mktemp(f"adi-{engine}"))
            with open_home(root, engine) as ws:
                ingest(ws, [ADI], "adi", identity_embedder)
            built[engine] = root
        return built[engine]

    return template


def copy_adi_home(template: Callable[[str], Path], engine: str, root: Path) -> Path:
    """Copy the ADI template of ``engine`` to ``root`` (real files), and return ``root``."""
    from sqlalchemy import func, select, update

    from ragcun.catalog.db import Catalog
    from ragcun.catalog.models import ModelVersion
    from ragcun.settings import Settings

    source = template(engine)
    shutil.copytree(source, root)
    # The catalog records each model copy by absolute path: point the copy's rows at its own models folder.
    catalog = Catalog(Settings.from_env(home=root / "home", environ={}).db_url)
    with catalog.session() as session:
        session.execute(
            update(ModelVersion).values(path=func.replace(ModelVersion.path, str(source / "home"), str(root / "home")))
        )
        session.commit()
        paths = session.scalars(select(ModelVersion.path)).all()
    catalog.close()
    assert paths and all(Path(p).is_relative_to(root) for p in paths)
    return root


@pytest.fixture(params=ENGINES)
def adi_workspace(request, tmp_path, adi_template) -> Iterator:
    """A workspace on a copy of the ADI home, on each engine."""
    with open_home(copy_adi_home(adi_template, request.param, tmp_path / "adi"), request.param) as ws:
        yield ws


@pytest.fixture
def adi_home(tmp_path, adi_template) -> str:
    """The ``--home`` of a copy of the ADI home on the default (edge) engine, for CLI tests."""
    return str(copy_adi_home(adi_template, "edge", tmp_path / "adi") / "home")
