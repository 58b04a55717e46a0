"""ragcun: retrieval with isotropic Gaussian embeddings and Euclidean distance."""

from ragcun.errors import ModelLoadError, RagcunError
from ragcun.lazy import lazy_attributes

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


__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = [
    "GaussianEmbedder",
    "GaussianRetriever",
    "Generator",
    "HeadSpec",
    "ModelLoadError",
    "RAGPipeline",
    "RagcunError",
    "Retriever",
    "__version__",
]
