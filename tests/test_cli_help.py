"""Every option of every command (the `train` plugin included) has help text, and global options go anywhere."""

import click
from click.testing import CliRunner

from ragcun.cli import cli


def walk(command: click.Command, ctx: click.Context, path: tuple[str, ...] = ()):
    yield path, command
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            yield from walk(sub, click.Context(sub, parent=ctx, info_name=name), (*path, name))


def test_every_option_of_every_command_has_help():
    root = click.Context(cli, info_name="ragcun")
    commands = dict(walk(cli, root))
    assert ("train",) in commands and ("eval", "list") in commands and ("collections", "show") in commands
    missing = [
        f"{' '.join(path) or 'ragcun'} {param.opts[0]}"
        for path, command in commands.items()
        for param in command.params
        if isinstance(param, click.Option) and not param.help
    ]
    assert missing == []
    undocumented = [" ".join(path) for path, command in commands.items() if path and not command.help]
    assert undocumented == []


def test_global_options_after_the_subcommand(tmp_path):
    home = tmp_path / "home"
    runner = CliRunner()
    result = runner.invoke(cli, ["init", "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert (home / "catalog.sqlite").is_file()
    result = runner.invoke(cli, ["collections", "list", "--json", "--home", str(home), "--debug"])
    assert (result.exit_code, result.output.strip()) == (0, "[]")


def test_chunk_size_default_is_the_same_in_help_and_readme():
    from pathlib import Path

    text = CliRunner().invoke(cli, ["ingest", "--help"], terminal_width=200).output
    assert "model's max length - 2" in " ".join(text.split())
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert "default the model's max length − 2" in readme
