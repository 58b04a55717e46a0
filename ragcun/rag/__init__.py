"""Retrieval-augmented generation over Gaussian retrieval: retriever, generator, pipeline."""

from ragcun.rag.config import RAGConfig
from ragcun.rag.generator import DEFAULT_PROMPT_TEMPLATE, NO_CONTEXT_ANSWER, Generator
from ragcun.rag.pipeline import Citation, RAGPipeline, RAGResult
from ragcun.rag.retriever import RetrievedDoc, Retriever

__all__ = [
    "DEFAULT_PROMPT_TEMPLATE",
    "NO_CONTEXT_ANSWER",
    "Citation",
    "Generator",
    "RAGConfig",
    "RAGPipeline",
    "RAGResult",
    "RetrievedDoc",
    "Retriever",
]
