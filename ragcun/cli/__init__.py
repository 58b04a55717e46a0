"""The ``ragcun`` admin command line: a thin layer over library functions that return data.

Each command group lives in its own module and registers itself on ``cli`` when imported here; ``train``
comes from the ``ragcun.commands`` entry point (ragcun/plugins.py).
"""

from ragcun.cli import corpus, demo, manage, versions  # noqa: F401  (registers commands)
from ragcun.cli import ask  # noqa: F401
from ragcun.cli import evaluate  # noqa: F401
from ragcun.cli.main import cli

__all__ = ["cli"]
