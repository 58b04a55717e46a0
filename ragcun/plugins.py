"""Commands and recipes that other packages (``ragcun.training``) register through entry points.

The library reaches them only through these two groups, never by importing them, so imports run one way:
``ragcun.training`` imports ``ragcun``, never the reverse.

=====================  ===========================================================================
``ragcun.commands``    Click commands added to the ``ragcun`` CLI (``train``)
``ragcun.recipes``     callables the library runs by name (:func:`load_recipe`)
=====================  ===========================================================================
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from ragcun.errors import NotFoundError

COMMANDS = "ragcun.commands"
RECIPES = "ragcun.recipes"


def _entry_points(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def command_names() -> list[str]:
    """Names of the registered commands, without loading them."""
    return sorted(_entry_points(COMMANDS))


def load_command(name: str) -> Any | None:
    """The Click command registered as ``name``, loaded now; ``None`` when none is."""
    ep = _entry_points(COMMANDS).get(name)
    return ep.load() if ep is not None else None


def load_recipe(name: str) -> Any:
    """The callable registered as recipe ``name`` in ``ragcun.recipes``, loaded now.

    Raises:
        NotFoundError: when no installed package registers that recipe.
    """
    ep = _entry_points(RECIPES).get(name)
    if ep is None:
        known = ", ".join(sorted(_entry_points(RECIPES))) or "none"
        raise NotFoundError(
            f"no recipe {name!r} is installed (known: {known}); reinstall ragcun with its training "
            "package (pip install -e .)"
        )
    return ep.load()
