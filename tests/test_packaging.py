"""Imports run one way (training and migrations use ragcun, never the reverse) and install inside ``ragcun``."""

import ast
import json
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
import tomllib

from tests.conftest import KILLABLE

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = ("training", "migrations", "ragcun.training", "ragcun.migrations")


def outside(name: str) -> bool:
    return any(name == top or name.startswith(top + ".") for top in OUTSIDE)


def import_every_module(report: str) -> None:
    """Import every module of ragcun (in a child: see the test below); write ``sorted(sys.modules)`` to ``report``."""
    import importlib
    import pkgutil

    import ragcun

    for info in pkgutil.walk_packages(ragcun.__path__, "ragcun."):
        # __main__ runs a command line; training and migrations are what the plugins load on demand
        on_demand = info.name.startswith(("ragcun.training", "ragcun.migrations"))
        if info.name.rsplit(".", 1)[-1] != "__main__" and not on_demand:
            importlib.import_module(info.name)
    Path(report).write_text(json.dumps(sorted(sys.modules)))


def test_importing_ragcun_imports_neither_training_nor_migrations(tmp_path):
    # `import ragcun` in a fresh interpreter, from another folder: the repository root on sys.path would make a
    # stray `import training` work.
    run = subprocess.run(
        [sys.executable, "-c", "import json, sys, ragcun; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    after_ragcun = json.loads(run.stdout)
    assert "ragcun" in after_ragcun and [n for n in after_ragcun if outside(n)] == []
    # Every module of the library, imported in a forked child of a process that imported torch,
    # sentence-transformers and the CLI, but never training or migrations.
    child = KILLABLE.Process(target=import_every_module, args=(str(tmp_path / "modules.json"),))
    child.start()
    child.join(600)
    assert child.exitcode == 0
    after_all = json.loads((tmp_path / "modules.json").read_text())
    assert "ragcun.cli.main" in after_all and "ragcun.evaluation.stats" in after_all
    assert [n for n in after_all if outside(n)] == []


def imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def test_no_library_module_imports_training_or_migrations():
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / "ragcun").rglob("*.py"))
        for name in imported_modules(path)
        if outside(name)
    ]
    assert offenders == []


def test_the_import_direction_check_sees_imports(tmp_path):
    (tmp_path / "bad.py").write_text(
        "import os\ndef f():\n    from ragcun.training.train import train\nfrom migrations import env\n"
    )
    assert sorted(n for n in imported_modules(tmp_path / "bad.py") if outside(n)) == [
        "migrations",
        "migrations.env",
        "ragcun.training.train",
        "ragcun.training.train.train",
    ]


def package_folders() -> set[str]:
    """Every package folder of the repository, named as it installs."""
    names = set()
    for top, installed in (("ragcun", "ragcun"), ("training", "ragcun.training"), ("migrations", "ragcun.migrations")):
        for init in (ROOT / top).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / top).parts
            names.add(".".join((installed, *parts)))
    return names


def test_every_package_folder_is_listed_in_pyproject():
    configured = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(configured["packages"]) == package_folders()
    assert configured["package-dir"] == {"ragcun.training": "training", "ragcun.migrations": "migrations"}


@pytest.mark.slow
def test_the_wheel_installs_training_and_migrations_inside_ragcun(tmp_path):
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("ragcun-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"ragcun", next(t for t in tops if t.endswith(".dist-info"))}
    for needed in (
        "ragcun/training/__init__.py",
        "ragcun/training/cli.py",
        "ragcun/training/__main__.py",
        "ragcun/migrations/env.py",
        "ragcun/migrations/script.py.mako",
        "ragcun/migrations/versions/0001_initial_catalog_schema.py",
        "ragcun/data/adi/corpus.jsonl",
        "ragcun/data/default-model/head.safetensors",
        "ragcun/py.typed",
    ):
        assert needed in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "[ragcun.commands]\ntrain = ragcun.training.cli:train" in entry_points

    # Installed from the wheel alone (the checkout's editable finder out of reach, the venv's
    # dependencies on the path), the catalog finds its migrations and the training command imports.
    env = tmp_path / "env"
    venv.create(env, with_pip=False)
    site = Path(
        subprocess.run(
            [env / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    zipfile.ZipFile(wheel).extractall(site)
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    check = f"""
import importlib.util, sys
import ragcun
from ragcun.catalog.db import Catalog, migrations_dir, upgrade
assert migrations_dir().is_relative_to({str(site)!r}), migrations_dir()
assert ragcun.__file__.startswith({str(site)!r}), ragcun.__file__
upgrade("sqlite:///{tmp_path}/catalog.sqlite")
Catalog("sqlite:///{tmp_path}/catalog.sqlite").close()
assert importlib.util.find_spec("training") is None and importlib.util.find_spec("migrations") is None
assert not any(n.startswith(("ragcun.migrations", "migrations", "training")) for n in sys.modules)
from ragcun.training.cli import train
print("ok", train.name)
"""
    run = subprocess.run(
        [env / "bin" / "python", "-c", check], capture_output=True, text=True, cwd=tmp_path, timeout=600
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "ok train"
