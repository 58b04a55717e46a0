"""Shared fixtures. The encoder is the real packaged all-MiniLM-L6-v2, loaded once per test run."""

from __future__ import annotations

import pytest

from ragcun.model import DEFAULT_BASE_MODEL, GaussianEmbedder, load_base_encoder

THREE_DOCS = [
    "Python is a popular programming language for writing software.",
    "Machine learning is a field of artificial intelligence in which computers learn patterns from data.",
    "The Eiffel Tower is a wrought-iron landmark in Paris, France.",
]


@pytest.fixture(scope="session")
def base_encoder():
    return load_base_encoder(DEFAULT_BASE_MODEL, device="cpu")


@pytest.fixture(scope="session")
def identity_embedder(base_encoder):
    return GaussianEmbedder(head="identity", base_encoder=base_encoder)


@pytest.fixture(scope="session")
def mlp_embedder(base_encoder):
    return GaussianEmbedder(head="mlp", out_dim=64, hidden_dim=128, seed=7, base_encoder=base_encoder)
