"""The Gaussian embedding model and its on-disk format."""

from ragcun.model.default import default_model_path
from ragcun.model.embedder import DEFAULT_BASE_MODEL, GaussianEmbedder, load_base_encoder, resolve_base_model
from ragcun.model.head import HeadSpec, build_head

__all__ = [
    "DEFAULT_BASE_MODEL",
    "GaussianEmbedder",
    "HeadSpec",
    "build_head",
    "default_model_path",
    "load_base_encoder",
    "resolve_base_model",
]
