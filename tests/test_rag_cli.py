"""``ragcun ask`` end to end through CliRunner: a real home, real ADI documents, the embedded engine."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ragcun.cli import cli
from ragcun.rag import NO_CONTEXT_ANSWER

from .test_rag import ADI, DEFINITION_QUERY, QRELS, squash, write_corpus
from .test_rag_openai import ChatServer, clean_environment, sse  # noqa: F401  (autouse fixture)

RELEVANT = sorted(QRELS["3"])


@pytest.fixture(scope="module")
def home(tmp_path_factory, identity_model_dir):
    root = tmp_path_factory.mktemp("ask")
    home = str(root / "home")
    runner = CliRunner()
    assert runner.invoke(cli, ["--home", home, "init"]).exit_code == 0
    folder = write_corpus(root / "adi", [*RELEVANT, "1", "2", "4", "5", "17"])
    result = runner.invoke(
        cli, ["--home", home, "ingest", str(folder), "-c", "adi", "--model", str(identity_model_dir), "--json"]
    )
    assert result.exit_code == 0 and json.loads(result.stdout)["added"] == len(RELEVANT) + 5, result.output
    (root / "nothing").mkdir()
    result = runner.invoke(
        cli, ["--home", home, "ingest", str(root / "nothing"), "-c", "empty", "--model", str(identity_model_dir)]
    )
    assert result.exit_code == 0, result.output
    return home


def ask(home, *argv, env=None):
    return CliRunner().invoke(cli, ["--home", home, "ask", *argv], env=env)


def test_ask_json_offline(home):
    result = ask(home, DEFINITION_QUERY, "-c", "adi", "-k", "3", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["generator"] == "extractive" and len(data["contexts"]) == 3
    first = data["citations"][0]
    assert first["doc_id"] in RELEVANT and first["source"].endswith("corpus.jsonl")
    quoted = data["answer"].split(f" [{first['n']}]")[0]
    assert quoted and quoted in squash(ADI[first["doc_id"]].content)
    context = data["contexts"][first["n"] - 1]
    assert context["doc_id"] == first["doc_id"] and context["distance"] == first["distance"]
    assert set(context) >= {"distance", "norm", "probability", "source", "chunk_id", "text"}


def test_ask_text(home):
    result = ask(home, DEFINITION_QUERY, "-c", "adi")
    assert result.exit_code == 0, result.output
    answer_line = result.output.strip().splitlines()[0]
    assert "[1]" in answer_line
    cited = [line for line in result.output.splitlines() if line.startswith("[1] ")]
    assert cited and cited[0].split()[1] in RELEVANT and "distance" in cited[0]


def test_ask_settings_from_dot_env(home, tmp_path):
    (tmp_path / ".env").write_text("TOP_K=2\n")
    data = json.loads(ask(home, DEFINITION_QUERY, "-c", "adi", "--json").stdout)
    assert len(data["contexts"]) == 2
    data = json.loads(ask(home, DEFINITION_QUERY, "-c", "adi", "-k", "4", "--json").stdout)
    assert len(data["contexts"]) == 4


def test_ask_empty_collection(home):
    result = ask(home, DEFINITION_QUERY, "-c", "empty", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["answer"], data["citations"], data["contexts"]) == (NO_CONTEXT_ANSWER, [], [])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["", "-c", "adi"], "Error: question must be a non-empty string\n"),
        (["  ", "-c", "adi"], "Error: question must be a non-empty string\n"),
        ([DEFINITION_QUERY, "-c", "adi", "-k", "0"], "Error: top_k must be a positive integer, got 0\n"),
        ([DEFINITION_QUERY, "-c", "nope"], "Error: no collection named 'nope'; collections: adi, empty\n"),
        (
            [DEFINITION_QUERY, "-c", "adi", "--generator", "gpt"],
            "Error: unknown generator 'gpt': use extractive, openai:MODEL or hf:PATH\n",
        ),
    ],
)
def test_ask_bad_input(home, argv, message):
    result = ask(home, *argv)
    assert result.exit_code == 1 and result.stderr == message


def test_ask_openai_generator_streams(home, tmp_path):
    server = ChatServer()
    try:
        server.script = [
            ("sse", sse("Information science is ", "defined in [1].")),
            ("json", 401, {"error": {"message": "bad key"}}),
        ]
        env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-local", "OPENAI_MAX_RETRIES": "0"}
        result = ask(home, DEFINITION_QUERY, "-c", "adi", "-k", "2", "--generator", "openai:local", env=env)
        assert result.exit_code == 0, result.output
        assert "Information science is defined in [1]." in result.output
        assert result.output.splitlines()[-1].startswith("[1] ")
        prompt = server.requests[0]["body"]["messages"][0]["content"]
        assert "[1] " in prompt and "[2] " in prompt and "[3] " not in prompt
        assert server.requests[0]["body"]["model"] == "local"
        (tmp_path / "prompt.txt").write_text("Passages:\n{context}\nAsked: {question}")
        result = ask(
            home,
            DEFINITION_QUERY,
            "-c",
            "adi",
            "-k",
            "1",
            "--generator",
            "openai:local",
            "--json",
            "--prompt-template",
            str(tmp_path / "prompt.txt"),
            env=env,
        )
        assert server.requests[1]["body"]["messages"][0]["content"].startswith("Passages:\n[1] ")
        assert server.requests[1]["body"]["messages"][0]["content"].endswith(f"Asked: {DEFINITION_QUERY}")
        assert result.exit_code == 1
        assert (
            result.stderr.startswith("Error: http://127.0.0.1:") and "HTTP 401 Unauthorized (bad key)" in result.stderr
        )
    finally:
        server.close()
