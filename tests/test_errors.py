"""The CLI shows a RagcunError as one line and anything else as a bug; plugins resolve by entry point."""

import click
import pytest
from click.testing import CliRunner

from ragcun.cli import cli
from ragcun.cli.main import AppContext, RagcunGroup
from ragcun.errors import CollectionNotFound, InvalidInputError, NotFoundError
from ragcun.plugins import command_names, load_command, load_recipe
from ragcun.settings import Settings


def group_raising(exc: Exception) -> click.Group:
    @click.group(cls=RagcunGroup)
    @click.option("--debug", is_flag=True)
    @click.pass_context
    def group(ctx, debug):
        ctx.obj = AppContext(settings=Settings.from_env(environ={}), debug=debug)

    @group.command()
    def fail():
        raise exc

    return group


@pytest.mark.parametrize(
    "exc", [InvalidInputError("top_k must be positive\nsecond line"), CollectionNotFound("top_k must be positive")]
)
def test_a_ragcun_error_is_one_line(exc):
    result = CliRunner().invoke(group_raising(exc), ["fail"])
    assert (result.exit_code, result.output) == (1, "Error: top_k must be positive\n")


@pytest.mark.parametrize("exc", [ValueError("bad value"), KeyError("key"), OSError(5, "I/O error")])
def test_anything_else_is_shown_as_a_bug(exc):
    result = CliRunner().invoke(group_raising(exc), ["fail"])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: unexpected {type(exc).__name__}: ")
    assert result.output.endswith("(a bug: rerun with --debug for the traceback and report it)\n")
    debug = CliRunner().invoke(group_raising(exc), ["--debug", "fail"])
    assert debug.exit_code == 1 and debug.exception is exc  # --debug lets the traceback through


def test_click_usage_errors_keep_their_exit_code():
    result = CliRunner().invoke(group_raising(ValueError()), ["fail", "--no-such-option"])
    assert result.exit_code == 2 and "No such option" in result.output


def test_train_is_a_plugin_command():
    assert "train" in command_names() and load_command("train").name == "train"
    assert load_command("no-such-command") is None
    assert "train" in CliRunner().invoke(cli, ["--help"]).output


def test_an_unknown_recipe_is_a_not_found_error():
    with pytest.raises(NotFoundError, match="no recipe 'no-such-recipe' is installed"):
        load_recipe("no-such-recipe")
