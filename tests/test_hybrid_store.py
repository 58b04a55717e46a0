"""Hybrid search, filters and MMR inside every engine (qdrant-edge, qdrant-client local, in memory): one test each."""

import uuid

import numpy as np
import pytest
import qdrant_edge as qe
from qdrant_client import models

from ragcun.retrieve.base import search_vector
from ragcun.store import ClientStore, CollectionParams, EdgeStore
from tests.test_store import OPENERS

DIM = 8


@pytest.fixture(params=list(OPENERS))
def store(request, tmp_path):
    opened = OPENERS[request.param](tmp_path)
    yield opened
    opened.close()


TEXTS = [
    "the kernel panicked with error code XQZ417 after the upgrade",  # 0: the rare code word, far away
    "how to bake sourdough bread at home",  # 1: the nearest vector, no shared term
    "a walk along the river in autumn",
    "football results of the weekend",
    "tax forms are due in april",
    "the history of the printing press",
]


def ids(n):
    return [str(uuid.UUID(int=i + 1)) for i in range(n)]


def corpus(store):
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(len(TEXTS), DIM)).astype(np.float32) * 3
    query = rng.normal(size=DIM).astype(np.float32)
    vectors[1] = query + 0.05  # semantically closest
    vectors[0] = -query * 4  # lexically the only match, and the farthest vector
    payloads = [
        {
            "doc_id": f"d{i}",
            "text": t,
            "norm": float(np.linalg.norm(v)),
            "source": f"docs/{i}.md",
            "metadata": {"team": "infra" if i % 2 else "ops", "year": 2020 + i},
        }
        for i, (t, v) in enumerate(zip(TEXTS, vectors, strict=True))
    ]
    store.create_collection("c", CollectionParams(dim=DIM))
    store.upsert("c", ids(len(TEXTS)), vectors, payloads)
    return vectors, query


def doc_ids(hits):
    return [h.doc_id for h in hits]


def test_new_collections_are_hybrid(store):
    corpus(store)
    assert store.shape("c").hybrid


def test_bm25_finds_the_rare_code_word_and_dense_misses_it(store):
    vectors, query = corpus(store)
    bm25 = search_vector(store, "c", query, 3, text="error XQZ417", mode="bm25")
    assert doc_ids(bm25) == ["d0"]  # the only document sharing a term
    assert bm25[0].score > 0 and bm25[0].distance == pytest.approx(float(np.linalg.norm(vectors[0] - query)), rel=1e-4)
    assert "d0" not in doc_ids(search_vector(store, "c", query, 3, text="error XQZ417"))


@pytest.mark.parametrize("fusion", ["rrf", "dbsf"])
def test_hybrid_finds_the_lexical_and_the_semantic_match(store, fusion):
    _, query = corpus(store)
    hits = search_vector(store, "c", query, 2, text="error XQZ417", mode="hybrid", fusion=fusion)
    assert set(doc_ids(hits)) == {"d0", "d1"}
    assert hits[0].score >= hits[1].score


def test_dbsf_ranks_the_nearest_vector_first_among_the_dense_only_hits(store):
    # Qdrant's own DBSF would rank L2 distances backwards (larger is better); ours scores −d²/2.
    _, query = corpus(store)
    hits = search_vector(store, "c", query, 6, text="no shared words here", mode="hybrid", fusion="dbsf")
    distances = [h.distance for h in hits]
    assert distances == sorted(distances)


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
@pytest.mark.parametrize(
    "where, expected",
    [
        ("metadata.team=infra", {"d1", "d3", "d5"}),
        ("metadata.team!=infra", {"d0", "d2", "d4"}),
        ("metadata.year>=2023", {"d3", "d4", "d5"}),
        ("metadata.year=2021|2022 & source!=docs/2.md", {"d1"}),
        (
            models.Filter(must=[models.FieldCondition(key="doc_id", match=models.MatchAny(any=["d0", "d5"]))]),
            {"d0", "d5"},
        ),
    ],
)
def test_a_filter_returns_only_matching_points(store, mode, where, expected):
    _, query = corpus(store)
    text = " ".join(TEXTS)  # every document shares a term, so bm25 can return all of them
    hits = search_vector(store, "c", query, 10, text=text, mode=mode, filter=where)
    assert set(doc_ids(hits)) == expected


def test_mmr_prefers_a_diverse_second_hit(store):
    rng = np.random.default_rng(0)
    query = rng.normal(size=DIM).astype(np.float32)
    vectors = np.stack([query + 0.1, query + 0.1001, query - 0.3, query + 5]).astype(np.float32)
    payloads = [{"doc_id": f"d{i}", "text": f"t {i}", "norm": 1.0} for i in range(4)]
    store.create_collection("c", CollectionParams(dim=DIM))
    store.upsert("c", ids(4), vectors, payloads)
    assert doc_ids(search_vector(store, "c", query, 2))[1] == "d1"  # the near-duplicate
    diverse = search_vector(store, "c", query, 2, diversity=0.5)
    assert doc_ids(diverse) == ["d0", "d2"]
    assert diverse[1].distance == pytest.approx(float(np.linalg.norm(vectors[2] - query)), rel=1e-4)


LEGACY = {
    "edge": lambda s, name: s._shards.__setitem__(
        name,
        qe.EdgeShard.create(
            str(s._path(name)), qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Euclid))
        ),
    ),
    "local": lambda s, name: s.client.create_collection(
        name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.EUCLID)
    ),
}


@pytest.mark.parametrize("engine", list(LEGACY))
def test_a_legacy_collection_answers_every_mode_dense_only(tmp_path, engine):
    legacy = OPENERS[engine](tmp_path)
    try:
        LEGACY[engine](legacy, "old")
        rng = np.random.default_rng(1)
        vectors = rng.normal(size=(5, DIM)).astype(np.float32)
        legacy.upsert("old", ids(5), vectors, [{"doc_id": f"d{i}", "text": TEXTS[i], "norm": 1.0} for i in range(5)])
        assert not legacy.shape("old").hybrid
        dense = search_vector(legacy, "old", vectors[2], 3)
        assert doc_ids(search_vector(legacy, "old", vectors[2], 3, text="XQZ417", mode="hybrid")) == doc_ids(dense)
        assert legacy.retrieve("old", ids(1), with_vectors=True)[0].vector == pytest.approx(vectors[0].tolist())
    finally:
        legacy.close()


def test_engines_agree_on_bm25_scores(tmp_path):
    stores = [EdgeStore(tmp_path / "e"), ClientStore.local_path(tmp_path / "l"), OPENERS["memory"](tmp_path)]
    try:
        scores = []
        for s in stores:
            _, query = corpus(s)
            scores.append(
                [
                    (h.doc_id, round(h.score, 4))
                    for h in search_vector(s, "c", query, 6, text="the kernel error in april", mode="bm25")
                ]
            )
        assert scores[0] == scores[1] == scores[2]
    finally:
        for s in stores:
            s.close()
