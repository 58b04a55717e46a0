"""``ragcun serve`` against real uvicorn servers, each a process of its own (forked: see ``start_cli``), on free
ports, over a tiny home built with the identity model.

One server per configuration (module-scoped) keeps the file fast: the API-keyed server answers every
route test; the kill -9 test runs its own two processes on its own home.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from ragcun.cli import cli
from tests.conftest import THREE_DOCS, init_root, open_home, start_cli

API_KEY = "test-key-7f3a"
BODY_LIMIT = 64 * 1024
DOCS = [
    {"id": f"d{i}", "text": text, "team": "infra" if i % 2 else "web"}
    for i, text in enumerate(
        [
            *THREE_DOCS,
            "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen in plant leaves.",
            "The Pacific is the largest and deepest of the Earth's oceans.",
        ]
    )
]
LISTENING = re.compile(r"Uvicorn running on http://[\d.]+:(\d+)")


@dataclass
class Server:
    process: BaseProcess
    url: str
    log: Path

    def client(self, key: str | None = API_KEY) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()  # SIGTERM, graceful: the home's lock is released
            self.process.join(60)


def start_server(home: Path, log: Path, env: dict[str, str] | None = None, *args: str) -> Server:
    """``ragcun serve --port 0`` on ``home``; waits until it listens and answers /healthz."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("RAGCUN_", "QDRANT_"))}
    environ.update(env or {})
    process = start_cli(["--home", str(home), "serve", "--port", "0", *args], environ, log)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        found = LISTENING.search(log.read_text(errors="replace"))
        if found:
            server = Server(process, f"http://127.0.0.1:{found.group(1)}", log)
            if httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200:
                return server
        if not process.is_alive():
            break
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"ragcun serve did not start:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory, identity_embedder) -> Path:
    """A home with collection ``kb``: five short documents (metadata ``team``), identity model, edge engine."""
    from ragcun.ingest import ingest

    root = init_root(tmp_path_factory.mktemp("serve"))
    corpus = root / "docs.jsonl"
    corpus.write_text("".join(json.dumps(doc) + "\n" for doc in DOCS))
    with open_home(root, "edge") as ws:
        ingest(ws, [corpus], "kb", identity_embedder)
    return root


@dataclass
class Crash:
    """What a server killed (kill -9, by its own fault point) in the middle of a ``POST /documents`` left."""

    request: dict
    error: BaseException | None
    returncode: int | None


CRASH_REQUEST = {
    "documents": [{"id": f"n{i}", "text": f"Note {i} about shipping container number {i}."} for i in range(6)]
}


@pytest.fixture(scope="module")
def crash(tiny_root) -> Crash:
    """The tiny home after a server SIGKILLed itself after its 2nd upsert (one chunk per batch) of CRASH_REQUEST."""
    env = {"RAGCUN_FAULT": "ingest.after_upsert@2"}
    doomed = start_server(tiny_root / "home", tiny_root / "doomed.log", env, "--batch-size", "1")
    error = None
    try:
        with doomed.client(key=None) as client:
            client.post("/collections/kb/documents", json=CRASH_REQUEST)
    except httpx.TransportError as exc:
        error = exc
    doomed.process.join(60)
    return Crash(CRASH_REQUEST, error, doomed.process.exitcode)


@pytest.fixture(scope="module")
def server(tiny_root, crash) -> Iterator[Server]:
    """The server restarted (with an API key and a small body limit) on the home the crash left.

    When the module is done, it is stopped and ``ragcun check`` must find the home clean: after the crash,
    the repeated request and every write the tests made.
    """
    env = {"RAGCUN_API_KEY": API_KEY, "RAGCUN_MAX_BODY_BYTES": str(BODY_LIMIT)}
    server = start_server(tiny_root / "home", tiny_root / "serve.log", env, "--batch-size", "1")
    yield server
    server.stop()
    assert API_KEY not in server.log.read_text(errors="replace")  # never logged
    checked = CliRunner().invoke(cli, ["--home", str(tiny_root / "home"), "check"], env={"RAGCUN_HOME": ""})
    assert checked.exit_code == 0, checked.output


@pytest.fixture(scope="module")
def http(server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def search(http: httpx.Client, **body) -> httpx.Response:
    return http.post("/collections/kb/search", json=body)


def test_search_returns_the_nearest_chunks_with_distances_and_metadata(http):
    response = search(http, query="Which programming language is popular for software?", k=3)
    assert response.status_code == 200, response.text
    hits = response.json()["hits"]
    assert hits[0]["doc_id"] == "d0"
    assert len(hits) == 3
    assert [h["distance"] for h in hits] == sorted(h["distance"] for h in hits)
    first = hits[0]
    assert first["text"] == DOCS[0]["text"] and first["metadata"] == {"team": "web"} and first["norm"] > 0
    assert first["probability"] is None  # σ was never calibrated on kb: no probability is claimed

    filtered = search(http, query="programming language", k=5, filter="metadata.team=infra").json()["hits"]
    assert filtered and {h["metadata"]["team"] for h in filtered} == {"infra"}
    keywords = search(http, query="Eiffel Tower Paris", k=1, mode="hybrid").json()["hits"]
    assert keywords[0]["doc_id"] == "d2" and keywords[0]["score"] is not None


def test_embed_equals_gaussian_embedder_encode_bit_for_bit(http, identity_embedder):
    texts = ["an embedding made by the server", "and another, longer one about Qdrant and Euclidean distance"]
    response = http.post("/embed", json={"texts": texts, "collection": "kb"})
    assert response.status_code == 200, response.text
    body = response.json()
    served = np.asarray(body["vectors"], dtype=np.float32)
    assert body["model_version"] == identity_embedder.fingerprint
    assert np.array_equal(served, identity_embedder.encode(texts))
    by_version = http.post("/embed", json={"texts": texts, "model_version": body["model_version"][:12]})
    assert np.array_equal(np.asarray(by_version.json()["vectors"], dtype=np.float32), served)
    # The default is the query vector (encode_queries, which search uses); "document" is the stored one.
    # This model has no query map, so the two agree; an adapted one maps queries on their own.
    assert body["input_type"] == "query" and np.array_equal(served, identity_embedder.encode_queries(texts))
    stored = http.post("/embed", json={"texts": texts, "collection": "kb", "input_type": "document"}).json()
    assert np.array_equal(np.asarray(stored["vectors"], dtype=np.float32), identity_embedder.encode(texts))

    # The vector a client got from /embed searches like the text.
    by_vector = search(http, vector=body["vectors"][0], k=2).json()["hits"]
    by_text = search(http, query=texts[0], k=2).json()["hits"]
    assert [h["chunk_id"] for h in by_vector] == [h["chunk_id"] for h in by_text]


def test_ask_streams_tokens_then_the_result_as_server_sent_events(http):
    body = {"question": "Where is the Eiffel Tower?", "k": 2, "stream": True}
    with http.stream("POST", "/collections/kb/ask", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [
            (block.split("\n")[0].removeprefix("event: "), json.loads(block.split("\n")[1].removeprefix("data: ")))
            for block in response.read().decode().strip().split("\n\n")
        ]
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "done" and set(kinds[:-1]) == {"token"} and len(kinds) >= 2
    result = events[-1][1]
    assert "".join(data["text"] for kind, data in events if kind == "token") == result["answer"]
    assert "Eiffel" in result["answer"] and result["citations"][0]["doc_id"] == "d2"

    whole = http.post("/collections/kb/ask", json={**body, "stream": False}).json()
    assert whole["answer"] == result["answer"]


def test_documents_posted_are_found_by_search_and_deleted(http):
    new = {"id": "zebra", "text": "Zebras graze on the grass of the Serengeti savanna.", "team": "zoo"}
    added = http.post("/collections/kb/documents", json={"documents": [new]})
    assert added.status_code == 200, added.text
    assert (added.json()["added"], added.json()["chunks_written"]) == (1, 1)
    again = http.post("/collections/kb/documents", json={"documents": [new]}).json()
    assert (again["added"], again["unchanged"], again["chunks_written"]) == (0, 1, 0)  # idempotent
    hits = search(http, query="zebras on the savanna", k=1).json()["hits"]
    assert hits[0]["doc_id"] == "zebra" and hits[0]["metadata"] == {"team": "zoo"} and hits[0]["source"] == "api"

    assert http.delete("/collections/kb/documents/zebra").json()["chunks_deleted"] == 1
    assert "zebra" not in [h["doc_id"] for h in search(http, query="zebras on the savanna", k=10).json()["hits"]]
    gone = http.delete("/collections/kb/documents/zebra")
    assert (gone.status_code, gone.json()["detail"]) == (404, "no document 'zebra' in collection 'kb'")


def test_collections_are_listed_and_shown(http, identity_embedder):
    (kb,) = http.get("/collections").json()
    assert (kb["name"], kb["model_version"], kb["dim"]) == ("kb", identity_embedder.fingerprint, identity_embedder.dim)
    shown = http.get("/collections/kb").json()
    assert shown["name"] == "kb" and shown["physical"][0]["distance"] == "Euclid"


def test_every_route_but_the_health_checks_needs_the_api_key(server):
    with server.client(key=None) as anonymous, server.client(key="wrong") as wrong:
        assert anonymous.get("/healthz").status_code == 200
        ready = anonymous.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        for client in (anonymous, wrong):
            refused = client.post("/collections/kb/search", json={"query": "python"})
            assert refused.status_code == 401
            assert refused.json()["detail"].startswith("missing or wrong API key")
            assert client.get("/metrics").status_code == 401
            assert client.post("/embed", json={"texts": ["x"], "collection": "kb"}).status_code == 401


@pytest.mark.parametrize(
    ("path", "body", "status", "detail"),
    [
        ("/collections/nope/search", {"query": "python"}, 404, "no collection named 'nope'; collections: kb"),
        ("/collections/kb/search", {"query": "  "}, 422, "query must be a non-empty string"),
        ("/collections/kb/search", {"query": "python", "k": 0}, 422, "top_k must be a positive integer, got 0"),
        ("/collections/kb/search", {"query": "python", "k": -3}, 422, "top_k must be a positive integer, got -3"),
        ("/collections/kb/search", {"vector": [0.5, 1.0]}, 422, "vector has dim 2, the model's is 384"),
        ("/collections/kb/search", {"query": "x", "k": "many"}, 422, "k: Input should be a valid integer"),
        ("/collections/kb/search", {"query": "x", "mode": "fuzzy"}, 422, "mode must be one of dense, bm25, hybrid"),
        ("/collections/kb/search", {"query": "x", "hnsw_ef": -5}, 422, "hnsw_ef must be an integer from 1 to"),
        ("/collections/kb/ask", {"question": ""}, 422, "query must be a non-empty string"),
        ("/embed", {"texts": ["x"]}, 422, "give collection (its model embeds) or model_version"),
        ("/collections/kb/documents", {"documents": [{"text": "no id"}]}, 422, "documents[0]: missing id field 'id'"),
        (
            "/collections/kb/documents",
            {"documents": [{"id": "a", "text": "x" * BODY_LIMIT}]},
            413,
            f"request body over the {BODY_LIMIT}-byte limit (RAGCUN_MAX_BODY_BYTES)",
        ),
    ],
)
def test_each_bad_input_gets_its_status_and_a_one_line_message(http, path, body, status, detail):
    response = http.post(path, json=body)
    assert response.status_code == status, response.text
    message = response.json()["detail"]
    assert message.startswith(detail) and "\n" not in message


def test_a_body_without_content_length_is_refused_once_it_passes_the_limit(http):
    def chunked():  # a generator body: sent with Transfer-Encoding: chunked, no Content-Length
        yield b'{"documents": [{"id": "big", "text": "'
        yield b"x" * BODY_LIMIT
        yield b'"}]}'

    response = http.post("/collections/kb/documents", content=chunked(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {
        "detail": f"request body over the {BODY_LIMIT}-byte limit (RAGCUN_MAX_BODY_BYTES)",
        "error": "TooLarge",
    }


def test_metrics_count_the_requests_made(http):
    def searches() -> float:
        text = http.get("/metrics").text
        pattern = r'ragcun_requests_total\{method="POST",route="/collections/\{name\}/search",status="200"\} (\S+)'
        found = re.search(pattern, text)
        return float(found.group(1)) if found else 0.0

    before = searches()
    for query in ("python", "paris", "oceans"):
        assert search(http, query=query, k=1).status_code == 200
    assert searches() == before + 3
    text = http.get("/metrics").text
    assert 'ragcun_request_seconds_bucket{le="0.001",method="POST",route="/collections/{name}/search"}' in text
    assert "ragcun_embed_batch_size_count" in text


def test_a_public_host_is_refused_without_an_api_key():
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0"], env={"RAGCUN_API_KEY": ""})
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0 without RAGCUN_API_KEY" in result.output


def test_docker_compose_runs_ragcun_next_to_qdrant():
    compose = yaml.safe_load((Path(__file__).parent.parent / "docker-compose.yml").read_text())
    ragcun = compose["services"]["ragcun"]
    assert ragcun["environment"]["QDRANT_URL"] == "http://qdrant:6333"
    assert "/readyz" in " ".join(ragcun["healthcheck"]["test"])
    assert ragcun["depends_on"]["qdrant"]["condition"] == "service_healthy"


def test_a_server_killed_mid_post_finishes_the_ingest_when_the_request_is_repeated(crash, http):
    assert isinstance(crash.error, httpx.TransportError) and crash.returncode == -signal.SIGKILL
    done = http.post("/collections/kb/documents", json=crash.request).json()
    # The first batch was recorded before the kill; the second was upserted but not recorded, so it is redone
    # (over the same point id), with the four the killed run never reached.
    assert (done["added"], done["unchanged"], done["chunks_written"]) == (5, 1, 5)
    for doc in crash.request["documents"]:
        hits = search(http, query=doc["text"], k=10, filter=f"doc_id={doc['id']}").json()["hits"]
        assert [h["doc_id"] for h in hits] == [doc["id"]]  # exactly one point each: no duplicates
    (physical,) = http.get("/collections/kb").json()["physical"]
    assert physical["engine_points"] == physical["chunks"]
    # `ragcun check` on this home runs when the server stops (the `server` fixture).


class CountingEncoder:
    """A stand-in model for the batcher (the thing under test): each text's vector is its length, and every
    encoder call's texts are recorded."""

    fingerprint = "counting"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode_queries(self, texts, batch_size=32, show_progress_bar=None):
        self.calls.append(list(texts))
        return np.asarray([[float(len(t))] for t in texts], dtype=np.float32)


def test_concurrent_queries_are_embedded_in_one_batch_and_answered_in_order():
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from ragcun.serve.batching import EmbeddingBatcher

    encoder, sizes = CountingEncoder(), []

    async def scenario() -> list:
        with ThreadPoolExecutor(1) as pool:
            batcher = EmbeddingBatcher(pool, window_s=0.05, on_batch=sizes.append)
            texts = ["a" * n for n in range(1, 9)]
            gone = asyncio.ensure_future(batcher.embed(encoder, "cancelled"))
            answers = asyncio.gather(*(batcher.embed(encoder, t) for t in texts))
            await asyncio.sleep(0)
            gone.cancel()  # its client went away before the batch ran: it costs no encoder time
            vectors = await answers
            await batcher.close()
            return vectors

    vectors = asyncio.run(scenario())
    assert [float(v[0]) for v in vectors] == [float(n) for n in range(1, 9)]
    assert encoder.calls == [["a" * n for n in range(1, 9)]] and sizes == [8]
