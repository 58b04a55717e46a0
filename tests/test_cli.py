import json

from click.testing import CliRunner

from ragcun.cli import cli


def test_demo_answers_from_the_sample_corpus():
    result = CliRunner().invoke(cli, ["demo", "--json", "-k", "3"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert len(hits) == 3
    # ADI document 60 is "toward a definition of information science", judged relevant to this query.
    assert hits[0]["doc_id"] == "60"
    distances = [hit["distance"] for hit in hits]
    assert distances == sorted(distances)


def test_demo_with_a_missing_model_dir_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli, ["demo", "--model", str(tmp_path / "absent")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_demo_with_a_broken_model_dir_is_one_line(tmp_path):
    (tmp_path / "m").mkdir()
    result = CliRunner().invoke(cli, ["demo", "--model", str(tmp_path / "m")])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "config.json: missing" in result.output
    assert "Traceback" not in result.output


def test_every_command_has_help():
    for name, command in cli.commands.items():
        assert command.help, f"ragcun {name} has no help text"
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0
