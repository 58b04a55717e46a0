"""The HTTP API of ``ragcun serve``: routes, auth, error mapping and the body-size limit.

Errors are JSON ``{"detail": "<one line>", "error": "<type>"}``: an unknown collection, document or
model version 404, a bad input 422, a body over ``RAGCUN_MAX_BODY_BYTES`` 413, a missing or wrong
``Authorization: Bearer`` 401; any other :class:`~ragcun.errors.RagcunError` 500 with its message.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragcun import __version__
from ragcun.errors import InvalidInputError, NotFoundError, RagcunError
from ragcun.serve.metrics import MetricsMiddleware
from ragcun.serve.service import SearchQuery, Service

logger = logging.getLogger(__name__)

HEALTH_ROUTES = ("/healthz", "/readyz")


# ---- request bodies --------------------------------------------------------------------------
# Types are loose on purpose where ragcun's own checks give the better one-line message (k ≤ 0,
# an empty query, a vector of the wrong dimension): the same checks as the library and the CLI.


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchBody(_Body):
    query: str | None = Field(None, description="The query text (or give `vector`).")
    vector: list[float] | None = Field(None, description="A query vector of the collection's model.")
    k: int = Field(10, description="Number of hits.")
    mode: str = Field("dense", description="dense (L2 distance), bm25 (keywords) or hybrid (both, fused).")
    fusion: str = Field("dbsf", description="How hybrid fuses: rrf or dbsf.")
    filter: str | None = Field(None, description="Payload filter, e.g. 'metadata.team=infra & chunk>=1'.")
    exact: bool = Field(False, description="Exact search instead of HNSW.")
    hnsw_ef: int | None = Field(None, description="HNSW search width (default: the collection's).")

    def checked(self) -> SearchQuery:
        return SearchQuery.checked(
            self.query, self.vector, self.k, self.mode, self.fusion, self.filter, self.exact, self.hnsw_ef
        )


class AskBody(_Body):
    question: str
    k: int | None = Field(None, description="Passages to retrieve (default: TOP_K).")
    mode: str = "dense"
    fusion: str = "dbsf"
    filter: str | None = None
    stream: bool = Field(False, description="Stream the answer as server-sent events (token, then done).")


class EmbedBody(_Body):
    texts: list[str]
    collection: str | None = Field(None, description="Embed with this collection's model version.")
    model_version: str | None = Field(None, description="Or with this registered model version (fingerprint prefix).")
    input_type: Literal["query", "document"] = Field(
        "query",
        description="query: the vector to search with (an adapted collection maps queries differently); "
        "document: the vector a passage is stored as.",
    )


class DocumentsBody(_Body):
    documents: list[dict[str, Any]] = Field(
        description="Rows as in a JSONL file: id, text, title; every other field is metadata."
    )


# ---- middleware and auth ---------------------------------------------------------------------


class BodyLimitMiddleware:
    """413 for a body over ``limit`` bytes: by its Content-Length, or as it streams in without one."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._refuse(send)
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:  # a body without Content-Length: refused once it passes the limit
                    raise HTTPException(413, self.message)
            return message

        await self.app(scope, counted, send)

    @property
    def message(self) -> str:
        return f"request body over the {self.limit}-byte limit (RAGCUN_MAX_BODY_BYTES)"

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": self.message, "error": "TooLarge"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


class AuthError(RagcunError):
    """A request without the right bearer token."""


def bearer_auth(api_key: str | None):
    """The dependency every route but the health checks has: nothing without a key, else a constant-time match."""
    expected = api_key.encode() if api_key else None

    async def require(request: Request) -> None:
        if expected is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        # compare_digest: the time taken says nothing about how much of the token was right.
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
            raise AuthError("missing or wrong API key: send the header 'Authorization: Bearer $RAGCUN_API_KEY'")

    return require


# ---- errors ----------------------------------------------------------------------------------


def _error(
    status: int, exc: BaseException | str, kind: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return JSONResponse({"detail": line, "error": kind or type(exc).__name__}, status_code=status, headers=headers)


def status_of(exc: RagcunError) -> int:
    if isinstance(exc, AuthError):
        return 401
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, InvalidInputError):
        return 422
    return 500


def _validation_message(exc: RequestValidationError) -> str:
    """Pydantic's first complaint as one line: ``k: Input should be a valid integer``."""
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    if first.get("type") == "json_invalid":
        return "request body is not valid JSON"
    return f"{where or 'body'}: {first.get('msg', 'invalid')}"


# ---- the app ---------------------------------------------------------------------------------


def create_app(service: Service, *, close_service: bool = True) -> FastAPI:
    """The ASGI app serving ``service``'s home (closed with the app unless ``close_service`` is false)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await service.batcher.close()
        if close_service:
            service.close()

    app = FastAPI(
        title="ragcun",
        version=__version__,
        description="Search, ask and embed over a ragcun home: Gaussian embeddings searched by Euclidean distance.",
        lifespan=lifespan,
    )
    api_key = service.settings.api_key.get_secret_value() if service.settings.api_key else None
    api = APIRouter(dependencies=[Depends(bearer_auth(api_key))])

    @app.exception_handler(RagcunError)
    async def ragcun_error(request: Request, exc: RagcunError) -> JSONResponse:
        status = status_of(exc)
        if status == 500:
            logger.error("%s %s: %s", request.method, request.url.path, exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return _error(status, exc, headers=headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        kinds = {404: "NotFound", 405: "MethodNotAllowed", 413: "TooLarge"}
        return _error(exc.status_code, str(exc.detail), kinds.get(exc.status_code, "HTTPError"), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(exc), "InvalidInputError")

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> Response:
        """Readiness: the catalog answers and the store is open."""
        try:
            return JSONResponse(await service.ready())
        except Exception as exc:
            return _error(503, exc, "NotReady")

    @api.get("/metrics", tags=["health"])
    async def metrics() -> Response:
        """Request counts and latency histograms per route, and embedding batch sizes (Prometheus text)."""
        return Response(service.metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @api.get("/collections", tags=["collections"])
    async def collections() -> list[dict]:
        """The active collections: model version, dimension, document and chunk counts."""
        return await service.list_collections()

    @api.get("/collections/{name}", tags=["collections"])
    async def collection(name: str) -> dict:
        """One collection: every physical version, its settings and what the engine reports."""
        return await service.show_collection(name)

    @api.post("/collections/{name}/search", tags=["search"])
    async def search(name: str, body: SearchBody) -> dict:
        """The k best chunks for a query text or vector: L2 distance (dense), BM25 or hybrid, with a filter."""
        return await service.search(name, body.checked())

    @api.post("/collections/{name}/ask", tags=["search"])
    async def ask(name: str, body: AskBody) -> Response:
        """An answer citing its passages as [n]; with ``"stream": true`` server-sent events: ``token`` events
        (``{"text": …}``), then one ``done`` event with the whole result (or an ``error`` event)."""
        k = body.k if body.k is not None else service.settings.top_k
        q = SearchQuery.checked(body.question, None, k, body.mode, body.fusion, body.filter)
        if not body.stream:
            return JSONResponse(await service.ask(name, body.question, q))
        events = service.ask_stream(name, body.question, q)
        # The first event is awaited here, so a 404 or 422 is a plain JSON error, not a broken stream.
        first = await anext(events)
        return StreamingResponse(
            _sse(first, events), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    @api.post("/embed", tags=["embed"])
    async def embed(body: EmbedBody) -> dict:
        """The vectors a collection's model (or a registered model version) makes for ``texts``, so any
        Qdrant client can query the collection's alias on a Qdrant server with the right vectors."""
        return await service.embed(body.texts, body.collection, body.model_version, body.input_type)

    @api.post("/collections/{name}/documents", tags=["documents"])
    async def add_documents(name: str, body: DocumentsBody) -> dict:
        """Ingest documents through the idempotent pipeline: a repeat changes nothing, and repeating a
        request the server died in the middle of finishes it."""
        return await service.add_documents(name, body.documents)

    @api.delete("/collections/{name}/documents/{doc_id:path}", tags=["documents"])
    async def delete_document(name: str, doc_id: str) -> dict:
        """Delete one document and its chunks from every version of the collection."""
        return await service.delete_document(name, doc_id)

    app.include_router(api)
    app.add_middleware(BodyLimitMiddleware, limit=service.settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)
    return app


async def _sse(first: tuple[str, Any], rest: AsyncGenerator[tuple[str, Any], None]) -> AsyncIterator[bytes]:
    async def events() -> AsyncIterator[tuple[str, Any]]:
        yield first
        async for event in rest:
            yield event

    try:
        async for kind, value in events():
            if kind == "token":
                data: Any = {"text": value}
            elif kind == "done":
                data = value
            else:
                status = status_of(value) if isinstance(value, RagcunError) else 500
                data = {"detail": str(value).strip().split("\n")[0], "error": type(value).__name__, "status": status}
                kind = "error"
            yield f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n".encode()
    finally:
        await rest.aclose()  # stops the generator thread at its next piece


def app_from_env() -> FastAPI:
    """An app over the home the environment names: the factory each of ``--workers N`` processes calls."""
    import os

    from ragcun.settings import Settings

    batch = int(os.environ.get("RAGCUN_SERVE_INGEST_BATCH", "128"))
    return create_app(Service(Settings.from_env(), ingest_batch_size=batch))
