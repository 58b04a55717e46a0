"""The Gaussian embedding model and its on-disk format."""

from typing import TYPE_CHECKING

from ragcun.lazy import lazy_attributes
from ragcun.model.default import default_model_path
from ragcun.model.head import HeadSpec, build_head

if TYPE_CHECKING:  # what __getattr__ below imports on first use, named for type checkers
    from ragcun.model.embedder import DEFAULT_BASE_MODEL, GaussianEmbedder, load_base_encoder, resolve_base_model

# The embedder pulls in sentence-transformers (seconds of imports): import it on first use, so that the
# modules that need torch alone (sigreg, head; DDP workers, `python -m ragcun.training --help`) start fast.
__getattr__ = lazy_attributes(
    __name__,
    {
        name: "ragcun.model.embedder"
        for name in ("DEFAULT_BASE_MODEL", "GaussianEmbedder", "load_base_encoder", "resolve_base_model")
    },
)

__all__ = [
    "DEFAULT_BASE_MODEL",
    "GaussianEmbedder",
    "HeadSpec",
    "build_head",
    "default_model_path",
    "load_base_encoder",
    "resolve_base_model",
]
