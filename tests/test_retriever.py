import numpy as np
import pytest

from ragcun import GaussianRetriever
from ragcun.errors import ModelLoadError

from .conftest import THREE_DOCS


@pytest.fixture
def retriever(identity_embedder):
    r = GaussianRetriever(embedder=identity_embedder)
    r.add_documents(THREE_DOCS)
    return r


def test_machine_learning_question_finds_the_machine_learning_sentence(retriever):
    hits = retriever.retrieve("What is machine learning?", top_k=3)
    assert hits[0][0] == THREE_DOCS[1]
    assert [doc for doc, _ in hits].count(THREE_DOCS[1]) == 1


def test_distances_are_true_l2_and_ascending(retriever, identity_embedder):
    query = "What is machine learning?"
    hits = retriever.retrieve(query, top_k=3)
    q = identity_embedder.encode([query])[0]
    d = identity_embedder.encode(THREE_DOCS)
    expected = {doc: float(np.linalg.norm(d[i] - q)) for i, doc in enumerate(THREE_DOCS)}
    for doc, distance in hits:
        assert distance == pytest.approx(expected[doc], abs=1e-4)
    distances = [distance for _, distance in hits]
    assert distances == sorted(distances)


def test_top_k_larger_than_corpus_returns_everything(retriever):
    hits = retriever.retrieve("towers", top_k=50)
    assert sorted(doc for doc, _ in hits) == sorted(THREE_DOCS)


@pytest.mark.parametrize("top_k", [0, -1, 1.5, True])
def test_bad_top_k_is_refused(retriever, top_k):
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        retriever.retrieve("query", top_k=top_k)


@pytest.mark.parametrize("query", ["", "   ", None])
def test_empty_query_is_refused(retriever, query):
    with pytest.raises(ValueError, match="query must be a non-empty string"):
        retriever.retrieve(query)


def test_bad_documents_are_refused(identity_embedder):
    r = GaussianRetriever(embedder=identity_embedder)
    with pytest.raises(TypeError, match="not a single string"):
        r.add_documents("one document")
    with pytest.raises(ValueError, match=r"documents\[1\] is empty"):
        r.add_documents(["ok", " "])
    with pytest.raises(TypeError, match=r"documents\[0\] is NoneType"):
        r.add_documents([None])
    assert len(r) == 0 and r.retrieve("anything") == []


def test_documents_accumulate_across_calls(identity_embedder):
    r = GaussianRetriever(embedder=identity_embedder)
    r.add_documents(THREE_DOCS[:1])
    r.add_documents(THREE_DOCS[1:])
    assert len(r) == 3
    assert r.retrieve("What is machine learning?", top_k=1)[0][0] == THREE_DOCS[1]


def test_save_and_load_give_the_same_results(tmp_path, retriever):
    retriever.save(tmp_path / "r")
    loaded = GaussianRetriever.load(tmp_path / "r")
    query = "Which city has the famous iron tower?"
    assert loaded.retrieve(query, top_k=3) == retriever.retrieve(query, top_k=3)


def test_load_refuses_vectors_from_another_model(tmp_path, retriever, base_encoder):
    from ragcun.model import GaussianEmbedder

    retriever.save(tmp_path / "r")
    GaussianEmbedder(head="linear", base_encoder=base_encoder, seed=5).save(tmp_path / "r" / "model")
    with pytest.raises(ModelLoadError, match="vectors were built by model"):
        GaussianRetriever.load(tmp_path / "r")


def test_default_and_explicit_model_paths(tmp_path, mlp_embedder):
    default = GaussianRetriever()
    default.add_documents(THREE_DOCS)
    assert default.retrieve("What is machine learning?", top_k=1)[0][0] == THREE_DOCS[1]

    mlp_embedder.save(tmp_path / "m")
    explicit = GaussianRetriever(model_path=tmp_path / "m")
    assert explicit.embedder.fingerprint == mlp_embedder.fingerprint
    assert explicit.embedder.dim == 64
