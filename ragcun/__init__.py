"""ragcun: retrieval with isotropic Gaussian embeddings and Euclidean distance."""

from ragcun.errors import ModelLoadError, RagcunError
from ragcun.model import GaussianEmbedder, HeadSpec
from ragcun.retrieve import GaussianRetriever

__version__ = "0.1.0"

__all__ = ["GaussianEmbedder", "GaussianRetriever", "HeadSpec", "ModelLoadError", "RagcunError", "__version__"]
