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


@pytest.fixture(params=["edge", "local"])
def workspace(request, tmp_path):
    """A fresh, migrated ragcun home on a real engine: qdrant-edge, or qdrant-client local mode."""
    from ragcun.settings import Settings
    from ragcun.store import ClientStore
    from ragcun.workspace import Workspace, init_home

    settings = Settings.from_env(home=tmp_path / "home", environ={})
    init_home(settings)
    store = ClientStore.local_path(tmp_path / "local-qdrant") if request.param == "local" else None
    ws = Workspace(settings, store=store)
    yield ws
    ws.close()


@pytest.fixture(scope="session")
def identity_model_dir(tmp_path_factory, identity_embedder):
    """The untrained identity model saved as a model directory (for subprocesses and --model)."""
    path = tmp_path_factory.mktemp("models") / "identity"
    identity_embedder.save(path)
    return path
