"""``ragcun serve``: one warm process that owns a ragcun home and answers search, ask, embed and document
writes over HTTP (FastAPI on uvicorn; the OpenAPI page at ``/docs`` documents the API)."""

from ragcun.serve.app import create_app
from ragcun.serve.service import SearchQuery, Service

__all__ = ["SearchQuery", "Service", "create_app"]
