"""Reading, chunking and loading documents into a collection."""

from ragcun.ingest.chunking import Chunker, ChunkText, StructureChunker, make_chunker
from ragcun.ingest.pipeline import IngestOptions, IngestResult, ingest
from ragcun.ingest.readers import InputProblem, JsonlFields, SourceDocument, discover, read_source

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
    "ingest",
    "make_chunker",
    "read_source",
]
