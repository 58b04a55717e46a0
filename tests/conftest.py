"""Shared fixtures. The encoder is the real packaged all-MiniLM-L6-v2, loaded once per test process, and the
bundled ADI corpus is ingested once per engine and test run: tests that only need an ADI collection get a copy.

``make test`` runs the suite on pytest-xdist workers (one process each). Session fixtures run once per
worker; what is costly to build and only read afterwards goes through :func:`built_once`, which builds it
once per run for all workers, under a file lock. Tests must not depend on order, must write only under
``tmp_path`` and must bind port 0.
"""

from __future__ import annotations

import atexit
import collections
import functools
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from filelock import FileLock


def threads_per_worker() -> int:
    """The cores this machine gives each pytest-xdist worker (all of them without workers)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


# Workers share the cores: torch's OpenMP threads (and the tokenizers') beyond a worker's share wait
# spinning, which costs CPU time and gains nothing. Set before torch is imported; subprocesses inherit it.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", str(threads_per_worker()))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ADI = os.path.join(os.path.dirname(__file__), "..", "ragcun", "data", "adi", "corpus.jsonl")
ENGINES = ("edge", "local")

# Children to kill at a fault point, forked from a server that imported torch, sentence-transformers and
# ragcun and loaded the base encoder on one torch thread (so no OpenMP pool exists to break in a fork; see
# tests/forkserver_base.py): a child costs a fork, not an interpreter start and a model load.
KILLABLE = multiprocessing.get_context("forkserver")
KILLABLE.set_forkserver_preload(
    [
        "torch",
        "sentence_transformers",
        "ragcun.model",
        "ragcun.model.embedder",
        "ragcun.collections",
        "ragcun.ingest",
        "ragcun.cli",
        "ragcun.serve",
        "tests.conftest",
        "tests.forkserver_base",
    ]
)

# Test modules that fork children from KILLABLE, found by these names in their source.
FORKS_CHILDREN = ("KILLABLE", "start_cli", "run_cli_until_fault")
FORKING_UNIT = "modules forking from KILLABLE"
# Key in pytest's cache (.pytest_cache): each test module's seconds in the last run, for the scheduler.
MODULE_SECONDS = "ragcun/module-seconds"


def pytest_xdist_make_scheduler(config, log):
    """``--dist loadscope`` with two changes. The modules that fork from :data:`KILLABLE` are one unit of work,
    handed out first, so one worker pays for the forkserver's imports (about 9 CPU-seconds) and the others never
    do. The other modules go longest first, by their time in the last run (unknown ones first, by test count):
    a long module handed out last would keep one worker busy while the other waits."""
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    cache = getattr(config, "cache", None)  # absent with -p no:cacheprovider
    last_run = cache.get(MODULE_SECONDS, {}) if cache is not None else {}

    class LongestFirst(LoadScopeScheduling):
        ordered = False

        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return FORKING_UNIT if forks_children(Path(config.rootpath, module)) else module

        def _assign_work_unit(self, node) -> None:
            if not self.ordered:  # the first hand-out: the queue is whole

                def seconds(unit: str) -> float:
                    return math.inf if unit == FORKING_UNIT else last_run.get(unit, 1e9)

                for unit in sorted(self.workqueue, key=seconds, reverse=True):  # stable: ties keep xdist's order
                    self.workqueue.move_to_end(unit)
                self.ordered = True
            super()._assign_work_unit(node)

    return LongestFirst(config, log)


_module_seconds: collections.Counter[str] = collections.Counter()


def pytest_runtest_logreport(report) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # in the controlling process, every worker's reports arrive
        _module_seconds[report.nodeid.split("::", 1)[0]] += report.duration


def pytest_sessionfinish(session) -> None:
    cache = getattr(session.config, "cache", None)  # absent with -p no:cacheprovider
    if not os.environ.get("PYTEST_XDIST_WORKER") and cache is not None and _module_seconds:
        cache.set(MODULE_SECONDS, {**cache.get(MODULE_SECONDS, {}), **_module_seconds})


def pytest_unconfigure(config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        atexit.register(end_worker)


def end_worker() -> None:
    """The last thing a pytest-xdist worker does. Its results are with the controlling process by now, but the
    interpreter's own teardown would free torch, the encoders and every other object one by one (2-3 s of the
    run's wall time, at its end): stop its children and its temporary home, then leave without it. Nothing else
    here writes at exit; a plugin that did (coverage saving its data from atexit) would need this hook off."""
    for child in multiprocessing.active_children():
        child.terminate()
    if _EMPTY_HOME is not None:
        shutil.rmtree(_EMPTY_HOME.parent, ignore_errors=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@functools.cache
def forks_children(module: Path) -> bool:
    return module.suffix == ".py" and any(name in module.read_text(encoding="utf-8") for name in FORKS_CHILDREN)


THREE_DOCS = [
    "Python is a popular programming language for writing software.",
    "Machine learning is a field of artificial intelligence in which computers learn patterns from data.",
    "The Eiffel Tower is a wrought-iron landmark in Paris, France.",
]


@pytest.fixture(scope="session")
def base_encoder():
    # imported here, not at the top: xdist's controlling process loads this file and runs no test
    from ragcun.model import DEFAULT_BASE_MODEL, load_base_encoder

    return load_base_encoder(DEFAULT_BASE_MODEL, device="cpu")


@pytest.fixture(scope="session")
def identity_embedder(base_encoder):
    from ragcun.model import GaussianEmbedder

    return GaussianEmbedder(head="identity", base_encoder=base_encoder)


@pytest.fixture(scope="session")
def mlp_embedder(base_encoder):
    from ragcun.model import GaussianEmbedder

    return GaussianEmbedder(head="mlp", out_dim=64, hidden_dim=128, seed=7, base_encoder=base_encoder)


@pytest.fixture(params=ENGINES)
def workspace(request, tmp_path):
    """A fresh, migrated ragcun home on a real engine: qdrant-edge, or qdrant-client local mode."""
    with open_home(init_root(tmp_path), request.param) as ws:
        yield ws


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]) -> Path:
    """The folder ``name`` that ``build(folder)`` fills once per test run and every worker then reads.

    Under pytest-xdist each worker is a process with its own session fixtures, and its own temporary
    folder under the run's: the first worker to ask builds the folder there, under a lock, the others
    wait and get the same path. Without workers it is built in the session's temporary folder. ``build``
    must make the same thing in any worker (the fixtures it uses are deterministic), and callers must treat
    the folder as read-only (copy it to ``tmp_path`` to change it).
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's folder, shared by its workers (the xdist documentation's recipe)
    folder = base / "built-once" / name
    done = folder.with_name(name + ".done")
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed half-way is not reused
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def identity_model_dir(tmp_path_factory, identity_embedder):
    """The untrained identity model saved as a model directory (for subprocesses and --model)."""
    return (
        built_once(tmp_path_factory, "models", lambda folder: identity_embedder.save(folder / "identity")) / "identity"
    )


@pytest.fixture(scope="session")
def model_b(base_encoder):
    """A second model version: a random linear head to 64 dims, so its neighbours differ from the base's."""
    from ragcun.model import GaussianEmbedder

    return GaussianEmbedder(head="linear", out_dim=64, seed=3, base_encoder=base_encoder)


@pytest.fixture(scope="session")
def model_b_dir(tmp_path_factory, model_b):
    path = tmp_path_factory.mktemp("models") / "b"
    model_b.save(path)
    return path


def _cli_child(argv: list[str], environ: dict[str, str] | None, log: str | None) -> None:
    import torch

    from ragcun.cli import cli

    torch.set_num_threads(1)
    if environ is not None:
        os.environ.clear()
        os.environ.update(environ)
    if log is not None:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    cli.main(args=argv, prog_name="ragcun")


def start_cli(argv: list[str], environ: dict[str, str] | None = None, log: Path | None = None):
    """``ragcun ARGV`` in a :data:`KILLABLE` child, started: a process of its own, as a subprocess would be,
    for the cost of a fork. ``environ`` replaces the child's environment; ``log`` takes its stdout and stderr.
    Its exit code is the child's ``exitcode`` once joined (``-SIGKILL`` when it was killed)."""
    if log is not None:
        log.write_bytes(b"")  # there, and empty, before the child starts
    child = KILLABLE.Process(target=_cli_child, args=(argv, environ, None if log is None else str(log)), daemon=True)
    child.start()
    return child


def run_cli_until_fault(argv: list[str], fault: str) -> int | None:
    """Run ``ragcun ARGV`` in a child with ``RAGCUN_FAULT=fault``; its exit code (``-SIGKILL`` when killed there)."""
    from ragcun.faults import FAULT_ENV

    child = start_cli(argv, {**os.environ, FAULT_ENV: fault})
    child.join(300)
    return child.exitcode


def init_root(root: Path) -> Path:
    """Create a migrated, empty home at ``root/home``; return ``root``.

    The home is a copy of one this process initialised once: bringing an empty catalog to head through
    Alembic costs 60 ms, a hundred times over in a run.
    """
    global _EMPTY_HOME
    if _EMPTY_HOME is None:
        from ragcun.settings import Settings
        from ragcun.workspace import init_home

        folder = Path(tempfile.mkdtemp(prefix="ragcun-empty-home-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        init_home(Settings.from_env(home=folder / "home", environ={}))
        _EMPTY_HOME = folder / "home"
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(_EMPTY_HOME, root / "home")
    return root


_EMPTY_HOME: Path | None = None


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
    engine and test run on first use (:func:`built_once`). Never open it: tests work on copies
    (:func:`copy_adi_home`)."""
    from ragcun.ingest import ingest

    def build(root: Path, engine: str) -> None:
        with open_home(init_root(root), engine) as ws:
            ingest(ws, [ADI], "adi", identity_embedder)

    def template(engine: str) -> Path:
        return built_once(tmp_path_factory, f"adi-{engine}", lambda root: build(root, engine))

    return template


def copy_tree(source: Path, root: Path) -> None:
    """Copy the folder ``source`` to ``root``. ``cp -a`` keeps the embedded store's sparse files sparse, where
    ``shutil.copytree`` writes out their holes (186 MB per home)."""
    subprocess.run(["cp", "-a", str(source), str(root)], check=True)


def copy_adi_home(template: Callable[[str], Path], engine: str, root: Path) -> Path:
    """Copy the ADI template of ``engine`` to ``root`` (real files), and return ``root``."""
    from sqlalchemy import func, select, update

    from ragcun.catalog.db import Catalog
    from ragcun.catalog.models import ModelVersion
    from ragcun.settings import Settings

    source = template(engine)
    copy_tree(source, root)
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
