"""The OpenAI-compatible generator against a real chat-completions server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ragcun.errors import GenerationError
from ragcun.rag import NO_CONTEXT_ANSWER, Generator, RAGConfig, RAGPipeline, Retriever

from .conftest import THREE_DOCS

RAG_VARIABLES = [
    "EMBEDDING_MODEL",
    "MODEL_NAME",
    "TOP_K",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_TIMEOUT",
    "OPENAI_MAX_RETRIES",
    "PROMPT_TEMPLATE_FILE",
    "MAX_TOKENS",
    "TEMPERATURE",
]
QUESTION = "Where is the Eiffel Tower?"


def completion(content) -> dict:
    return {
        "id": "c1",
        "object": "chat.completion",
        "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
    }


def sse(*deltas: str, done: bool = True) -> list[str]:
    """The event lines a streaming server sends: a role event, one event per delta, a stop, [DONE]."""
    events = [{"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}]
    events += [{"choices": [{"index": 0, "delta": {"content": d}, "finish_reason": None}]} for d in deltas]
    lines = [f"data: {json.dumps(e)}" for e in events]
    if done:
        lines += [
            f"data: {json.dumps({'choices': [{'index': 0, 'delta': {}, 'finish_reason': 'stop'}]})}",
            "data: [DONE]",
        ]
    return lines


class ChatServer:
    """A chat-completions server that plays a script: one planned reply per request, in order.

    A reply is ``("json", status, body[, headers])`` (a dict is sent as JSON, a str as is), ``("sse", lines)``,
    ``("raw", bytes)`` or ``("sleep", seconds)`` (answer nothing for that long). Requests are recorded in ``requests``.
    """

    def __init__(self):
        self.script: list[tuple] = []
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                # the headers as received: case-insensitive, as HTTP names are (the SDK sends lower-case ones)
                server.requests.append(
                    {"path": self.path, "headers": self.headers, "body": json.loads(self.rfile.read(length))}
                )
                kind, *args = server.script.pop(0) if server.script else ("json", 500, {"error": "no reply planned"})
                try:
                    if kind == "sleep":
                        time.sleep(args[0])
                        return
                    if kind == "raw":  # bytes as they are, then the connection closes
                        self.wfile.write(args[0])
                        return
                    if kind == "sse":
                        self.send_response(200)
                        self.send_header("Content-Type", "text/event-stream")
                        self.end_headers()
                        for line in args[0]:
                            self.wfile.write(f"{line}\n\n".encode())
                            self.wfile.flush()
                        return
                    status, body, *headers = args
                    payload = (json.dumps(body) if isinstance(body, dict) else body).encode()
                    self.send_response(status)
                    for name, value in (headers[0] if headers else {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up first (the timeout tests)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        # serve_forever checks for shutdown() every poll_interval: its default 0.5 s would be each test's close
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = ChatServer()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    """No RAG setting leaks in from the developer's shell or a ./.env."""
    for name in RAG_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def openai(server: ChatServer, **options) -> Generator:
    options = {"api_key": "sk-test", "timeout": 2.0, "max_retries": 0, **options}
    return Generator("openai:test-model", base_url=server.base_url, **options)


def test_request_body_and_answer(server):
    server.script = [("json", 200, completion("It is in Paris [3]."))]
    assert openai(server).generate(QUESTION, THREE_DOCS) == "It is in Paris [3]."
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test"
    body = request["body"]
    assert (body["model"], body["stream"]) == ("test-model", False)
    assert "temperature" not in body and "max_tokens" not in body
    (message,) = body["messages"]
    assert message["role"] == "user"
    prompt = message["content"]
    for n, doc in enumerate(THREE_DOCS, 1):
        assert f"[{n}] {doc}" in prompt
    assert f"Question: {QUESTION}" in prompt and "only the numbered context" in prompt and "[1]" in prompt


def test_custom_template_and_no_key(server):
    server.script = [("json", 200, completion("ok"))]
    template = 'Q: {question}\nUse {"json": "braces"} and:\n{context}'
    generator = Generator(
        "openai:m", base_url=server.base_url, prompt_template=template, temperature=0.0, config=RAGConfig()
    )
    generator.generate(QUESTION, THREE_DOCS[:1])
    body = server.requests[0]["body"]
    assert body["messages"][0]["content"] == f'Q: {QUESTION}\nUse {{"json": "braces"}} and:\n[1] {THREE_DOCS[0]}'
    assert body["temperature"] == 0.0 and "Authorization" not in server.requests[0]["headers"]


def test_streaming(server):
    server.script = [("sse", sse("It is ", "in Paris", " [3]."))]
    pieces = list(openai(server).stream(QUESTION, THREE_DOCS))
    assert pieces == ["It is ", "in Paris", " [3]."]
    request = server.requests[0]
    assert request["body"]["stream"] is True and request["headers"]["Accept"] == "text/event-stream"


def test_pipeline_streams_tokens_and_cites(server, identity_embedder):
    server.script = [("sse", sse("The tower is in ", "Paris [1].")), ("json", 200, completion("Paris [1] [7]"))]
    retriever = Retriever(embedder=identity_embedder)
    retriever.add_documents(THREE_DOCS, ids=["py", "ml", "eiffel"], sources=["a.txt", "b.txt", "c.txt"])
    pipeline = RAGPipeline(retriever, openai(server), config=RAGConfig())
    tokens = []
    result = pipeline.query(QUESTION, top_k=2, on_token=tokens.append)
    assert tokens == ["The tower is in ", "Paris [1]."] and result.answer == "The tower is in Paris [1]."
    assert result.contexts[0].doc_id == "eiffel" and len(result.contexts) == 2
    (citation,) = result.citations
    assert (citation.n, citation.doc_id, citation.source) == (1, "eiffel", "c.txt")
    assert citation.distance == result.contexts[0].distance
    # Without on_token the same pipeline does not stream; an invented [7] is dropped from the citations.
    result = pipeline.query(QUESTION, top_k=2)
    assert [c.doc_id for c in result.citations] == ["eiffel"]
    assert server.requests[1]["body"]["stream"] is False


def test_empty_context_calls_no_model(server):
    assert openai(server).generate(QUESTION, []) == NO_CONTEXT_ANSWER
    assert list(openai(server).stream(QUESTION, [])) == [NO_CONTEXT_ANSWER]
    assert server.requests == []


def one_line_error(call) -> str:
    with pytest.raises(GenerationError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    return message


def test_401_is_not_retried(server):
    server.script = [("json", 401, {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}})]
    message = one_line_error(lambda: openai(server, max_retries=3).generate(QUESTION, THREE_DOCS))
    assert "HTTP 401" in message and "Incorrect API key provided" in message and "OPENAI_API_KEY" in message
    assert len(server.requests) == 1


def test_404_names_url_and_model(server):
    server.script = [("json", 404, "404 page not found")]
    message = one_line_error(lambda: openai(server, max_retries=3).generate(QUESTION, THREE_DOCS))
    assert "HTTP 404" in message and "OPENAI_BASE_URL" in message and "'test-model'" in message
    assert "/v1/chat/completions" in message and len(server.requests) == 1


def test_5xx_is_retried_with_backoff(server):
    # retry-after-ms (the SDK's own header) shortens the first two backoffs; the last case keeps the SDK's backoff
    soon = {"retry-after-ms": "10"}
    server.script = [
        ("json", 502, "bad gateway", soon),
        ("json", 503, {"error": {"message": "overloaded"}}, soon),
        ("json", 200, completion("fine [1]")),
    ]
    assert openai(server, max_retries=2).generate(QUESTION, THREE_DOCS) == "fine [1]"
    assert len(server.requests) == 3
    server.requests.clear()
    server.script = [("json", 500, {"error": {"message": "boom"}})] * 2
    message = one_line_error(lambda: openai(server, max_retries=1).generate(QUESTION, THREE_DOCS))
    assert "server error HTTP 500 (boom)" in message and "after 2 attempts" in message


def test_429_is_retried_after_what_retry_after_asks(server):
    server.script = [
        ("json", 429, {"error": {"message": "slow down"}}, {"Retry-After": "1"}),
        ("json", 200, completion("patient [1]")),
    ]
    started = time.perf_counter()
    assert openai(server, max_retries=1).generate(QUESTION, THREE_DOCS) == "patient [1]"
    assert time.perf_counter() - started >= 0.95  # the SDK's own first backoff is at most 0.5 s
    assert len(server.requests) == 2
    server.requests.clear()
    server.script = [("json", 429, {"error": {"message": "slow down"}}, {"Retry-After": "0.1"})] * 2
    message = one_line_error(lambda: openai(server, max_retries=1).generate(QUESTION, THREE_DOCS))
    assert "HTTP 429" in message and "(slow down)" in message and "gave up after 2 attempts" in message


def test_timeout(server):
    server.script = [("sleep", 1.5), ("sleep", 1.5)]
    started = time.perf_counter()
    message = one_line_error(lambda: openai(server, timeout=0.2, max_retries=1).generate(QUESTION, THREE_DOCS))
    assert time.perf_counter() - started < 1.4
    assert "no response within 0.2s" in message and "after 2 attempts" in message
    assert len(server.requests) == 2


def test_stream_timeout(server):
    server.script = [("sleep", 1.5)]
    message = one_line_error(lambda: list(openai(server, timeout=0.2).stream(QUESTION, THREE_DOCS)))
    assert "no response within 0.2s" in message


def test_response_cut_off_is_retried(server):
    cut = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"choices": ['
    server.script = [("raw", cut), ("json", 200, completion("whole [1]")), ("raw", cut), ("raw", cut)]
    assert openai(server, max_retries=1).generate(QUESTION, THREE_DOCS) == "whole [1]"
    message = one_line_error(lambda: openai(server, max_retries=1).generate(QUESTION, THREE_DOCS))
    assert "connection failed (" in message and "gave up after 2 attempts" in message


def test_connection_refused():
    import socket

    with socket.socket() as probe:  # a port that nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    generator = Generator("openai:m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=1, config=RAGConfig())
    message = one_line_error(lambda: generator.generate(QUESTION, THREE_DOCS))
    assert "cannot connect" in message and "after 2 attempts" in message


@pytest.mark.parametrize(
    "body, expected",
    [
        ("<html>not json</html>", "not JSON"),
        ({"choices": []}, "no choices[0].message.content"),
        ({"object": "list", "data": []}, "no choices[0].message.content"),
        (completion(None), "content is NoneType"),
    ],
)
def test_malformed_response(server, body, expected):
    server.script = [("json", 200, body)]
    message = one_line_error(lambda: openai(server, max_retries=2).generate(QUESTION, THREE_DOCS))
    assert "malformed chat-completions response" in message and expected in message
    assert len(server.requests) == 1  # a malformed answer is not retried


@pytest.mark.parametrize(
    "lines, expected",
    [
        (["data: {not json"], "not a JSON object"),
        (['data: {"id": "x"}'], "without choices"),
        (sse("half an answer", done=False), "ended before `data: [DONE]`"),
        (['data: {"error": {"message": "model crashed"}}'], "error in stream (model crashed)"),
    ],
)
def test_malformed_stream(server, lines, expected):
    server.script = [("sse", lines)]
    message = one_line_error(lambda: list(openai(server).stream(QUESTION, THREE_DOCS)))
    assert expected in message


def test_stream_request_answered_without_streaming(server):
    server.script = [("json", 200, completion("whole answer [2]"))]
    assert list(openai(server).stream(QUESTION, THREE_DOCS)) == ["whole answer [2]"]


def test_usage_event_and_keepalives_are_skipped(server):
    lines = [": keep-alive", *sse("a", "b")[:-1], 'data: {"choices": [], "usage": {"total_tokens": 9}}', "data: [DONE]"]
    server.script = [("sse", lines)]
    assert list(openai(server).stream(QUESTION, THREE_DOCS)) == ["a", "b"]
