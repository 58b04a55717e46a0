"""The RAG pipeline on the real ADI corpus with the real encoder: retriever, extractive generator,
settings, bad input, persistent collections and the hf: backend."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from ragcun.beir import SAMPLE_DIR, read_corpus, read_qrels, read_queries
from ragcun.errors import CollectionNotFound, GenerationError, InvalidInputError, RagcunError
from ragcun.rag import (
    DEFAULT_PROMPT_TEMPLATE,
    NO_CONTEXT_ANSWER,
    Generator,
    RAGConfig,
    RAGPipeline,
    Retriever,
)
from ragcun.retrieve import GaussianRetriever, Hit, gaussian_probabilities, search

from .conftest import THREE_DOCS
from .test_rag_openai import clean_environment  # noqa: F401  (autouse: no RAG setting leaks in)

ADI = {doc.doc_id: doc for doc in read_corpus(SAMPLE_DIR)}
QUERIES = read_queries(SAMPLE_DIR)
QRELS = read_qrels(SAMPLE_DIR / "qrels" / "test.tsv")
DEFINITION_QUERY = QUERIES["3"]  # "What is information science? Give definitions where possible."
# "[n]" after a sentence: the extractive answer is "sentence [n] sentence [m] …".
CITED_SENTENCE = re.compile(r"\s*(.+?) \[(\d+)\]")


def squash(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def adi_retriever(identity_embedder):
    retriever = Retriever(embedder=identity_embedder)
    retriever.add_documents(
        [d.content for d in ADI.values()], ids=list(ADI), sources=[f"adi/{doc_id}" for doc_id in ADI]
    )
    return retriever


@pytest.fixture
def pipeline(adi_retriever):
    return RAGPipeline(adi_retriever, Generator("extractive", config=RAGConfig()), config=RAGConfig())


# ---- retriever ------------------------------------------------------------------------------------


def test_in_memory_hits_carry_distance_norm_probability_source(adi_retriever, identity_embedder):
    hits = adi_retriever.retrieve(DEFINITION_QUERY, top_k=5)
    query = identity_embedder.encode([DEFINITION_QUERY])[0].astype(np.float64)
    vectors = identity_embedder.encode([h.text for h in hits]).astype(np.float64)
    for hit, vector in zip(hits, vectors, strict=True):
        assert hit.text == ADI[hit.doc_id].content and hit.source == f"adi/{hit.doc_id}"
        assert hit.chunk_id == str(list(ADI).index(hit.doc_id))  # in memory, a point's id is its position
        assert hit.norm == pytest.approx(float(np.linalg.norm(vector)), rel=1e-5)
        assert hit.distance == pytest.approx(float(np.linalg.norm(vector - query)), rel=1e-5)
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)
    probabilities = [h.probability for h in hits]
    assert probabilities == pytest.approx(list(gaussian_probabilities([h.distance for h in hits], 1.0)))
    assert sum(probabilities) == pytest.approx(1.0) and probabilities == sorted(probabilities, reverse=True)
    assert set(hits[0].to_dict()) >= {"doc_id", "distance", "norm", "probability", "source", "text"}


def test_every_retriever_returns_the_one_hit_type(adi_retriever, identity_embedder):
    from ragcun.demo import run_demo
    from ragcun.rag import RetrievedDoc

    assert RetrievedDoc is Hit
    plain = GaussianRetriever(embedder=identity_embedder)
    plain.add_documents(THREE_DOCS)
    demo = run_demo(DEFINITION_QUERY, 3)  # loads the shipped model and embeds all of ADI: once
    for hits in (adi_retriever.retrieve(DEFINITION_QUERY, 3), plain.search(DEFINITION_QUERY, 3), demo):
        assert len(hits) == 3 and all(type(hit) is Hit for hit in hits)
    assert demo[0].title == ADI[demo[0].doc_id].title and demo[0].text == ADI[demo[0].doc_id].content


def test_default_ids_and_sigma(identity_embedder):
    retriever = Retriever(embedder=identity_embedder, sigma=10.0)
    retriever.add_documents(THREE_DOCS[:2])
    retriever.add_documents(THREE_DOCS[2:])
    hits = retriever.retrieve("the Eiffel Tower in Paris", top_k=3)
    assert hits[0].doc_id == "2" and {h.doc_id for h in hits} == {"0", "1", "2"} and hits[0].source is None
    plain = GaussianRetriever(embedder=identity_embedder)
    plain.add_documents(THREE_DOCS)
    assert [(h.text, h.distance) for h in hits] == plain.retrieve("the Eiffel Tower in Paris", top_k=3)
    sharp = Retriever(embedder=identity_embedder, sigma=0.1)
    sharp.add_documents(THREE_DOCS)
    assert sharp.retrieve("the Eiffel Tower in Paris", 3)[0].probability > hits[0].probability
    with pytest.raises(ValueError, match="2 documents but 1 ids"):
        retriever.add_documents(THREE_DOCS[:2], ids=["x"])
    with pytest.raises(ValueError, match="sigma must be positive"):
        Retriever(embedder=identity_embedder, sigma=-1)


# ---- extractive generator -------------------------------------------------------------------------


def test_extractive_answer_quotes_and_cites_the_relevant_document(pipeline):
    result = pipeline.query(DEFINITION_QUERY, top_k=5)
    relevant = set(QRELS["3"])
    first, n = CITED_SENTENCE.match(result.answer).groups()
    cited = result.contexts[int(n) - 1]
    assert cited.doc_id in relevant
    assert first in squash(ADI[cited.doc_id].content)
    assert result.citations[0].doc_id == cited.doc_id and result.citations[0].source == f"adi/{cited.doc_id}"
    assert result.citations[0].distance == cited.distance
    assert len(result.contexts) == 5 and result.generator == "extractive"
    json.dumps(result.to_dict())  # plain data all the way down


@pytest.mark.parametrize("query_id", ["1", "7", "15"])
def test_extractive_sentences_are_quoted_from_the_context_they_cite(pipeline, query_id):
    result = pipeline.query(QUERIES[query_id], top_k=4)
    pairs = CITED_SENTENCE.findall(result.answer)
    assert len(pairs) == 3 and "".join(f"{s} [{n}]" for s, n in pairs).replace(" ", "") == result.answer.replace(
        " ", ""
    )
    for sentence, n in pairs:
        assert sentence in squash(result.contexts[int(n) - 1].text)
    cited = {int(n) for _, n in pairs}
    assert sorted(c.n for c in result.citations) == sorted(cited)


def test_extractive_generator_standalone(identity_embedder):
    generator = Generator(embedder=identity_embedder, config=RAGConfig())
    answer = generator.generate(
        "Where is the Eiffel Tower?",
        [
            "Python is a programming language. It was created by Guido van Rossum.",
            "The Eiffel Tower is a wrought-iron landmark in Paris. It was finished in 1889.",
        ],
    )
    assert answer.startswith("The Eiffel Tower is a wrought-iron landmark in Paris. [2]")
    assert list(generator.stream("Where is the Eiffel Tower?", THREE_DOCS)) == [
        generator.generate("Where is the Eiffel Tower?", THREE_DOCS)
    ]
    assert not generator.streams


def test_extractive_answer_keeps_to_the_question(identity_embedder):
    # The README example: three documents, three sentences allowed, but only one is about the question.
    generator = Generator(embedder=identity_embedder, config=RAGConfig())
    answer = generator.generate("What is machine learning?", THREE_DOCS)
    assert answer == f"{THREE_DOCS[1]} [2]"


def test_extractive_sentences_know_abbreviations_and_markdown():
    from ragcun.rag.generator import split_sentences

    text = (
        "# Keys\n\nRotate keys with the vault CLI, e.g. every 90 days. Dr. Smith owns the schedule.\n\n"
        "| Key | Rotation period |\n| --- | --- |\n| Service key | 90 days |\n| Personal token | 30 days |\n\n"
        "- revoke the old key at once\n- open an incident ticket"
    )
    assert split_sentences(text) == [
        "Rotate keys with the vault CLI, e.g. every 90 days.",
        "Dr. Smith owns the schedule.",
        "Key | Rotation period",
        "Service key | 90 days",
        "Personal token | 30 days",
        "revoke the old key at once",
        "open an incident ticket",
    ]


def test_citations_parse_grouped_forms_and_drop_invented_numbers():
    from ragcun.rag import RetrievedDoc
    from ragcun.rag.pipeline import cite

    contexts = [
        RetrievedDoc(text=f"passage {i}", doc_id=f"d{i}", distance=float(i), norm=1.0, probability=0.25)
        for i in range(1, 5)
    ]
    citations = cite("One [1, 3]. Two [3][2]. Invented [9] and [0].", contexts)
    assert [(c.n, c.doc_id, c.distance) for c in citations] == [(1, "d1", 1.0), (3, "d3", 3.0), (2, "d2", 2.0)]


# ---- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("question", ["", "   \n", None, 3])
def test_empty_question(pipeline, question):
    with pytest.raises(ValueError, match="question must be a non-empty string"):
        pipeline.query(question)


@pytest.mark.parametrize("top_k", [0, -1, True, 2.5, "5"])
def test_bad_top_k(pipeline, top_k):
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        pipeline.query(DEFINITION_QUERY, top_k=top_k)
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        RAGPipeline(pipeline.retriever, pipeline.generator, top_k=top_k, config=RAGConfig())


def test_top_k_beyond_corpus_and_empty_retriever(identity_embedder):
    pipeline = RAGPipeline(Retriever(embedder=identity_embedder), Generator(config=RAGConfig()), config=RAGConfig())
    tokens = []
    result = pipeline.query("anything at all?", on_token=tokens.append)
    assert (result.answer, result.citations, result.contexts) == (NO_CONTEXT_ANSWER, [], [])
    assert tokens == [NO_CONTEXT_ANSWER]
    pipeline.add_documents(THREE_DOCS)
    assert len(pipeline.query("What is Python?", top_k=50).contexts) == 3


def test_generator_input_errors(identity_embedder):
    generator = Generator(embedder=identity_embedder, config=RAGConfig())
    assert generator.generate("a question?", []) == NO_CONTEXT_ANSWER
    with pytest.raises(ValueError, match="query must be a non-empty string"):
        generator.generate(" ", THREE_DOCS)
    with pytest.raises(TypeError, match="context must be a list of strings, not a single string"):
        generator.generate("a question?", "one string")
    with pytest.raises(ValueError, match=r"context\[1\] is empty"):
        generator.generate("a question?", ["a passage.", " "])
    for name in ["gpt-4", "openai:", "hf:  ", "", "llama:x"]:
        with pytest.raises(ValueError, match="generator"):
            Generator(name, config=RAGConfig())
    with pytest.raises(ValueError, match=r"lacks \{question\}"):
        Generator(prompt_template="only {context}", config=RAGConfig())


# ---- settings -------------------------------------------------------------------------------------


def test_env_file_parsing_is_python_dotenvs(tmp_path):
    """What python-dotenv accepts is accepted: comments, export, quotes, and lines that are no assignment."""
    env = tmp_path / "x.env"
    env.write_text(
        '# comment\n\nexport MODEL_NAME="openai:llama3"\nTOP_K=3  # three\n'
        "OPENAI_BASE_URL=http://localhost:11434/v1#frag\nOPENAI_API_KEY='sk #1'\nEMPTY=\n"
        "this is not an assignment\n"
    )
    config = RAGConfig.from_env(env, environ={})
    assert (config.model_name, config.top_k, config.openai_base_url, config.openai_api_key) == (
        "openai:llama3",
        3,
        "http://localhost:11434/v1#frag",
        "sk #1",
    )


def test_precedence_arguments_then_environment_then_env_file(tmp_path):
    env = tmp_path / ".env"
    env.write_text("TOP_K=3\nMODEL_NAME=openai:from-file\nOPENAI_TIMEOUT=7\nEMBEDDING_MODEL=/models/m\n")
    config = RAGConfig.from_env(env, environ={"MODEL_NAME": "hf:/from/env"})
    assert (config.top_k, config.model_name, config.openai_timeout, config.embedding_model) == (
        3,
        "hf:/from/env",
        7.0,
        "/models/m",
    )
    config = RAGConfig.from_env(env, environ={"MODEL_NAME": "hf:/from/env"}, top_k=9, model_name="extractive")
    assert (config.top_k, config.model_name) == (9, "extractive")
    assert RAGConfig.from_env(tmp_path / "missing.env", environ={}) == RAGConfig()
    with pytest.raises(InvalidInputError, match="TOP_K must be an integer, got 'five'"):
        RAGConfig.from_env(None, environ={"TOP_K": "five"})
    with pytest.raises(ValueError, match="top_k must be a positive integer, got 0"):
        RAGConfig.from_env(None, environ={"TOP_K": "0"})


def test_example_env_file_documents_the_defaults():
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "config" / "config.example.env"
    assert RAGConfig.from_env(example, environ={}) == RAGConfig()


def test_a_dot_env_configures_the_pipeline_only_when_asked_for(tmp_path, adi_retriever):
    (tmp_path / "prompt.txt").write_text("Context:\n{context}\nQ: {question}")
    (tmp_path / ".env").write_text(f"TOP_K=2\nMODEL_NAME=extractive\nPROMPT_TEMPLATE_FILE={tmp_path / 'prompt.txt'}\n")
    # the working directory holds the .env, but the library never reads one on its own
    assert RAGPipeline(adi_retriever).top_k == 5 and RAGConfig.from_env() == RAGConfig()
    pipeline = RAGPipeline(adi_retriever, config=RAGConfig.from_env(".env"))
    assert pipeline.top_k == 2 and pipeline.generator.model_name == "extractive"
    assert pipeline.generator.prompt_template.startswith("Context:")
    assert len(pipeline.query(DEFINITION_QUERY).contexts) == 2
    assert Generator(config=RAGConfig()).prompt_template == DEFAULT_PROMPT_TEMPLATE


# ---- persistent collections -----------------------------------------------------------------------


def write_corpus(folder, doc_ids):
    folder.mkdir()
    with (folder / "corpus.jsonl").open("w") as out:
        for doc_id in doc_ids:
            doc = ADI[doc_id]
            out.write(json.dumps({"_id": doc.doc_id, "title": doc.title, "text": doc.text}) + "\n")
    # A BEIR folder (its corpus read with BEIR's field names; its queries are not documents).
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "3", "text": DEFINITION_QUERY}) + "\n")
    return folder


# The store itself is tested on both engines elsewhere; the embedded one is enough here.
@pytest.mark.parametrize("workspace", ["edge"], indirect=True)
def test_collection_retriever_and_pipeline(workspace, identity_embedder, tmp_path):
    from ragcun.ingest import ingest

    relevant = sorted(QRELS["3"])
    others = ["1", "2", "4", "5", "17", "33"]
    folder = write_corpus(tmp_path / "adi", relevant + others)
    assert ingest(workspace, [folder], "adi", identity_embedder).failed == 0
    retriever = Retriever(collection="adi", workspace=workspace)
    assert len(retriever) == len(relevant) + len(others)
    hits = retriever.retrieve(DEFINITION_QUERY, top_k=4)
    assert len(hits) == 4 and hits[0].distance <= hits[-1].distance and all(type(h) is Hit for h in hits)
    assert all(h.chunk_id and h.source == "corpus.jsonl" for h in hits)  # named relative to the ingested folder
    distances = [h.distance for h in hits]
    assert [h.probability for h in hits] == pytest.approx(list(gaussian_probabilities(distances, 1.0)))
    assert retriever.embedder.fingerprint == identity_embedder.fingerprint
    # σ: the collection's calibrated one by default, or the one the retriever is given.
    from ragcun.evaluation import set_sigma

    set_sigma(workspace, "adi", 2.5)
    assert [h.probability for h in retriever.retrieve(DEFINITION_QUERY, top_k=4)] == pytest.approx(
        list(gaussian_probabilities(distances, 2.5))
    )
    given = Retriever(collection="adi", workspace=workspace, sigma=0.5).retrieve(DEFINITION_QUERY, top_k=4)
    assert [h.probability for h in given] == pytest.approx(list(gaussian_probabilities(distances, 0.5)))

    # Query arithmetic on the persistent retriever: a vector in, the same hits as its text.
    query = retriever.embed(DEFINITION_QUERY)
    by_vector = retriever.retrieve(query, top_k=4)
    assert [h.chunk_id for h in by_vector] == [h.chunk_id for h in hits]
    assert [h.distance for h in by_vector] == pytest.approx(distances)
    toward = retriever.retrieve(query + retriever.embed("computers"), top_k=4)
    by_terms = retriever.retrieve(DEFINITION_QUERY, 4, plus=["computers"])
    assert [h.chunk_id for h in toward] == [h.chunk_id for h in by_terms]
    assert [h.distance for h in toward] == pytest.approx([h.distance for h in by_terms])
    assert [h.chunk_id for h in search(workspace, "adi", query, top_k=4)] == [h.chunk_id for h in hits]
    with pytest.raises(ValueError, match="vector has dim 2"):
        retriever.retrieve(np.ones(2))

    result = RAGPipeline(retriever, Generator(config=RAGConfig()), config=RAGConfig()).query(DEFINITION_QUERY, 4)
    first, n = CITED_SENTENCE.match(result.answer).groups()
    cited = result.contexts[int(n) - 1]
    assert cited.doc_id in relevant and first in squash(cited.text)
    assert result.citations[0].chunk_id == cited.chunk_id

    with pytest.raises(RagcunError, match="ragcun ingest PATH -c adi"):
        retriever.add_documents(["more"])


@pytest.mark.parametrize("workspace", ["edge"], indirect=True)
def test_empty_and_missing_collections(workspace, identity_embedder, tmp_path):
    from ragcun.ingest import ingest

    (tmp_path / "nothing").mkdir()
    ingest(workspace, [tmp_path / "nothing"], "empty", identity_embedder)
    pipeline = RAGPipeline(
        Retriever(collection="empty", workspace=workspace), Generator(config=RAGConfig()), config=RAGConfig()
    )
    result = pipeline.query("What is information science?")
    assert (result.answer, result.citations, result.contexts) == (NO_CONTEXT_ANSWER, [], [])
    with pytest.raises(CollectionNotFound, match="no collection named 'nope'"):
        Retriever(collection="nope", workspace=workspace).retrieve("anything?")


# ---- hf: backend ----------------------------------------------------------------------------------


def test_hf_bad_path_is_one_clear_line(tmp_path):
    generator = Generator(f"hf:{tmp_path / 'no-model'}", config=RAGConfig())  # nothing loads yet
    with pytest.raises(GenerationError) as info:
        generator.generate("a question?", THREE_DOCS)
    assert "not a Hugging Face model folder" in str(info.value) and "\n" not in str(info.value)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(GenerationError, match="cannot load a causal LM"):
        Generator(f"hf:{tmp_path / 'broken'}", config=RAGConfig()).generate("a question?", THREE_DOCS)


def test_hf_tiny_local_model_generates_and_streams(tmp_path, base_encoder):
    """A randomly initialised two-layer GPT-2 with MiniLM's tokenizer, built here: real loading and
    decoding code, gibberish text (no trained LLM can be fetched in tests)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    tokenizer = base_encoder.tokenizer
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=512, n_embd=32, n_layer=2, n_head=2))
    model.save_pretrained(tmp_path / "tiny")
    tokenizer.save_pretrained(tmp_path / "tiny")
    generator = Generator(f"hf:{tmp_path / 'tiny'}", max_tokens=6, config=RAGConfig())
    answer = generator.generate("Where is the Eiffel Tower?", THREE_DOCS)
    assert isinstance(answer, str) and answer.strip()
    assert generator.streams
    assert "".join(generator.stream("Where is the Eiffel Tower?", THREE_DOCS)).strip() == answer
