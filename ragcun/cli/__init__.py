"""The ``ragcun`` admin command line: a thin layer over library functions that return data.

Each module is one command group or top-level command family, named after it, and registers its
commands on ``cli`` when imported here.
"""

from ragcun.cli import (  # noqa: F401  (registers commands)
    adapt,
    ask,
    check,
    collections,
    db,
    demo,
    docs,
    eval,
    home,
    ingest,
    models,
    reindex,
    runs,
    search,
    serve,
)
from ragcun.cli.main import cli

__all__ = ["cli"]
