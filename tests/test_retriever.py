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


def test_search_returns_hits_that_retrieve_and_nearest_summarise(retriever):
    from ragcun.retrieve import Hit

    query = "What is machine learning?"
    hits = retriever.search(query, top_k=3)
    assert all(isinstance(hit, Hit) for hit in hits)
    assert [(hit.text, hit.distance) for hit in hits] == retriever.retrieve(query, top_k=3)
    assert [hit.doc_id for hit in hits] == [hit.chunk_id for hit in hits]  # default ids: positions
    positions, distances = retriever.nearest(retriever.embed(query), top_k=3)
    assert [retriever.documents[p] for p in positions] == [hit.text for hit in hits]
    assert list(distances) == pytest.approx([hit.distance for hit in hits])
    assert sum(hit.probability for hit in hits) == pytest.approx(1.0)
    assert hits[0].query_norm == pytest.approx(float(np.linalg.norm(retriever.embed(query))))


def test_ids_sources_and_titles_travel_with_each_hit(identity_embedder):
    r = GaussianRetriever(embedder=identity_embedder)
    r.add_documents(THREE_DOCS, ids=["py", "ml", "eiffel"], sources=["a", "b", "c"], titles=["P", "M", "E"])
    (hit,) = r.search("the Eiffel Tower in Paris", top_k=1)
    assert (hit.doc_id, hit.source, hit.title, hit.chunk_id, hit.text) == ("eiffel", "c", "E", "2", THREE_DOCS[2])
    with pytest.raises(ValueError, match="3 documents but 2 ids"):
        r.add_documents(THREE_DOCS, ids=["x", "y"])


def test_query_arithmetic_text_vector_plus_minus_agree(retriever):
    query, topic = "What is machine learning?", "landmarks in France"
    composed = retriever.embed(query) + retriever.embed(topic) - retriever.embed("programming")
    by_vector = retriever.search(composed, top_k=3)
    by_terms = retriever.search(query, top_k=3, plus=[topic], minus=["programming"])
    assert [h.text for h in by_vector] == [h.text for h in by_terms]
    assert [h.distance for h in by_vector] == pytest.approx([h.distance for h in by_terms], rel=1e-5)
    assert retriever.retrieve_vector(composed, 3) == [(h.text, h.distance) for h in by_vector]
    only_plus = retriever.search("", top_k=1, plus=[topic])
    assert only_plus[0].text == THREE_DOCS[2]
    with pytest.raises(ValueError, match="vector has dim 3, the model's is"):
        retriever.search(np.zeros(3), top_k=1)
    with pytest.raises(ValueError, match="each plus or minus term must be a non-empty string"):
        retriever.search(query, plus=[" "])


def test_bad_input_is_an_invalid_input_error(retriever):
    from ragcun.errors import InvalidInputError, InvalidTypeError

    with pytest.raises(InvalidInputError):
        retriever.retrieve("query", top_k=0)
    with pytest.raises(InvalidInputError):
        retriever.retrieve("")
    with pytest.raises(InvalidTypeError):
        retriever.add_documents("one document")
    with pytest.raises(InvalidInputError, match="sigma must be positive"):
        retriever.search("query", sigma=0)


def test_format_1_directories_still_load_and_save_as_format_2(tmp_path, retriever, identity_embedder):
    import json

    old = tmp_path / "old"
    identity_embedder.save(old / "model")
    np.save(old / "vectors.npy", identity_embedder.encode(THREE_DOCS), allow_pickle=False)
    (old / "retriever.json").write_text(
        json.dumps({"model_version": identity_embedder.fingerprint, "count": 3, "documents": THREE_DOCS})
    )
    loaded = GaussianRetriever.load(old)
    query = "Which city has the famous iron tower?"
    assert [doc for doc, _ in loaded.retrieve(query, 3)] == [doc for doc, _ in retriever.retrieve(query, 3)]
    assert [d for _, d in loaded.retrieve(query, 3)] == pytest.approx([d for _, d in retriever.retrieve(query, 3)])
    loaded.save(tmp_path / "new")
    assert json.loads((tmp_path / "new" / "retriever.json").read_text())["format"] == 2
    assert GaussianRetriever.load(tmp_path / "new").retrieve(query, 3) == loaded.retrieve(query, 3)
