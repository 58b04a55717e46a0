"""ragcun: retrieval with isotropic Gaussian embeddings and Euclidean distance."""

from typing import TYPE_CHECKING

from ragcun.errors import ModelLoadError, RagcunError
from ragcun.lazy import lazy_attributes

if TYPE_CHECKING:  # what __getattr__ below imports on first use, named for type checkers
    from ragcun.model import GaussianEmbedder, HeadSpec
    from ragcun.rag import Generator, RAGPipeline, Retriever
    from ragcun.retrieve import GaussianRetriever

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
