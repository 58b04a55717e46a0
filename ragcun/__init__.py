"""ragcun: retrieval with isotropic Gaussian embeddings and Euclidean distance."""

from ragcun.errors import ModelLoadError, RagcunError

__version__ = "0.1.0"

# The model classes pull in torch and sentence-transformers; import them on first use so that
# light modules (settings, store, catalog) and the CLI start fast.
_LAZY = {
    "GaussianEmbedder": "ragcun.model",
    "HeadSpec": "ragcun.model",
    "GaussianRetriever": "ragcun.retrieve",
    "RAGPipeline": "ragcun.rag",
    "Retriever": "ragcun.rag",
    "Generator": "ragcun.rag",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ragcun' has no attribute {name!r}")


__all__ = [
    "GaussianEmbedder", "GaussianRetriever", "Generator", "HeadSpec", "ModelLoadError", "RAGPipeline", "RagcunError",
    "Retriever", "__version__",
]
