"""The collections package's own contract: typed errors for what does not exist, checked before anything is written."""

import pytest

from ragcun.collections import chunk_lineage, delete_document, drop_collection, gc, show_collection, show_run
from ragcun.collections.versions import find_model_version
from ragcun.errors import (
    ChunkNotFound,
    CollectionNotFound,
    DocumentNotFound,
    InvalidInputError,
    ModelVersionNotFound,
    RunNotFound,
)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda ws: show_run(ws, 42), RunNotFound, "no ingest run 42"),
        (lambda ws: chunk_lineage(ws, "nope"), ChunkNotFound, "no chunk nope in the catalog"),
        (lambda ws: delete_document(ws, "kb", "d1"), DocumentNotFound, "no document 'd1' in collection 'kb'"),
        (lambda ws: drop_collection(ws, "kb"), CollectionNotFound, "no collection named 'kb'"),
        (lambda ws: show_collection(ws, "kb"), CollectionNotFound, "no collection named 'kb'"),
        (lambda ws: gc(ws), InvalidInputError, "say what to collect"),
    ],
)
def test_missing_things_raise_typed_errors(workspace, call, error, message):
    with pytest.raises(error, match=message):
        call(workspace)


def test_model_version_references(workspace):
    with workspace.catalog.session() as session:
        with pytest.raises(InvalidInputError, match="too short"):
            find_model_version(session, "abc")
        with pytest.raises(ModelVersionNotFound, match="no registered model version matches 'abcdef'"):
            find_model_version(session, "abcdef")
