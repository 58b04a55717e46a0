"""The lifecycle of a collection: every write to a collection's points or records goes through this package.

=================  ==============================================================================
module             what it does
=================  ==============================================================================
``create``         create a physical collection (store and catalog together); ingest's get-or-create
``write``          the one point write path: embed chunk text, upsert points, record norms
``documents``      ingest's write step (documents, chunks, memberships); deleting documents
``reindex``        rebuild with another model version and switch with no downtime; rollback
``base_vectors``   each chunk text's base-encoder embedding (float16), so a new head never re-encodes
``adapt``          fit the collection's own model version (no labels), gate it, activate it by reindex
``drop``           drop one physical version, or a whole logical collection
``gc``             drop retired versions by age or count
``check``          compare catalog and store; repair the store from the catalog
``versions``       register (copy into the home), find, list and remove model versions
``runs``           start, finish and list the runs that write into collections
``lineage``        where a chunk came from
``info``           list and show collections; the home's status
=================  ==============================================================================

The catalog (:mod:`ragcun.catalog`) only persists; the ingest package (:mod:`ragcun.ingest`) reads,
chunks and plans, and hands its writes to :func:`write_documents`.
"""

from ragcun.collections.adapt import AdaptResult, IngestAdaptResult, adapt_collection, ingest_and_adapt
from ragcun.collections.check import CollectionReport, check
from ragcun.collections.create import create_collection, ensure_collection
from ragcun.collections.documents import DocumentDeleted, delete_document
from ragcun.collections.drop import CollectionDropped, drop_collection
from ragcun.collections.gc import RetiredCollection, gc
from ragcun.collections.info import (
    CollectionDetail,
    CollectionInfo,
    HomeStatus,
    list_collections,
    show_collection,
    status,
)
from ragcun.collections.lineage import ChunkLineage, chunk_lineage
from ragcun.collections.reindex import ReindexResult, reindex, rollback
from ragcun.collections.runs import RunInfo, list_runs, show_run
from ragcun.collections.versions import (
    ModelVersionInfo,
    list_models,
    load_model_ref,
    register_model,
    remove_model,
    show_model,
)

__all__ = [
    "AdaptResult",
    "ChunkLineage",
    "CollectionDetail",
    "CollectionDropped",
    "CollectionInfo",
    "CollectionReport",
    "DocumentDeleted",
    "HomeStatus",
    "IngestAdaptResult",
    "ModelVersionInfo",
    "ReindexResult",
    "RetiredCollection",
    "RunInfo",
    "adapt_collection",
    "check",
    "chunk_lineage",
    "create_collection",
    "delete_document",
    "drop_collection",
    "ensure_collection",
    "gc",
    "ingest_and_adapt",
    "list_collections",
    "list_models",
    "list_runs",
    "load_model_ref",
    "register_model",
    "reindex",
    "remove_model",
    "rollback",
    "show_collection",
    "show_model",
    "show_run",
    "status",
]
