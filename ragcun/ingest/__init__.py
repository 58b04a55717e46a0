"""Reading, chunking and loading documents into a collection."""

from ragcun.ingest.chunking import Chunker, ChunkText, StructureChunker, make_chunker
from ragcun.ingest.pipeline import IngestOptions, IngestResult, ingest, ingest_documents
from ragcun.ingest.readers import InputProblem, JsonlFields, SourceDocument, discover, document_of_row, read_source

__all__ = [
    "ChunkText",
    "Chunker",
    "IngestOptions",
    "IngestResult",
    "InputProblem",
    "JsonlFields",
    "SourceDocument",
    "StructureChunker",
    "discover",
    "document_of_row",
    "ingest",
    "ingest_documents",
    "make_chunker",
    "read_source",
]
