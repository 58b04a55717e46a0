"""Label-free adaptation (training/adapt.py), its ``unit-linear`` head, and the N(0, I) law it licenses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import kstest
from sentence_transformers import SentenceTransformer

from ragcun.beir import SAMPLE_DIR, read_corpus
from ragcun.model import GaussianEmbedder, HeadSpec
from ragcun.model.gaussian_law import best_of_n_p_value, chance_p_values, norm_tail_p_value, out_of_domain
from ragcun.training.adapt import AdaptConfig, acceptance_gate, apply_head, fit, spectral_map, unit

TEXTS = ["Gaussian embeddings keep the norm.", "A library catalogue lists books.", "Wings in a slipstream."]


# ---- the χ² null ----------------------------------------------------------------------------------


@pytest.mark.parametrize("conditional", [False, True])
def test_chance_p_values_are_uniform_under_the_null(conditional):
    rng = np.random.default_rng(0)
    k, n = 32, 4000
    q, d = rng.standard_normal((n, k)), rng.standard_normal((n, k))
    sq = ((q - d) ** 2).sum(1)
    p = chance_p_values(sq, k, (q**2).sum(1) if conditional else None)
    assert kstest(p, "uniform").pvalue > 0.01
    # a document that is a noisy copy of its query is far closer than chance
    near = ((q - (q + 0.3 * rng.standard_normal((n, k)))) ** 2).sum(1)
    assert np.median(chance_p_values(near, k, (q**2).sum(1) if conditional else None)) < 1e-6


def test_best_of_n_p_value_is_uniform_for_the_nearest_of_n_unrelated():
    rng = np.random.default_rng(1)
    k, n, trials = 16, 50, 2000
    q = rng.standard_normal((trials, 1, k))
    d = rng.standard_normal((trials, n, k))
    nearest = ((q - d) ** 2).sum(-1).min(1)
    p = best_of_n_p_value(chance_p_values(nearest, k, (q[:, 0] ** 2).sum(1)), n)
    assert kstest(p, "uniform").pvalue > 0.01


def test_out_of_domain_flags_the_tails_of_chi2_only():
    rng = np.random.default_rng(2)
    k = 64
    inside = rng.standard_normal((5000, k))
    assert abs(out_of_domain(inside, alpha=0.05).mean() - 0.05) < 0.015
    assert out_of_domain(3.0 * inside[:100]).all()  # too far from the centre
    assert out_of_domain(0.3 * inside[:100]).all()  # too close to it: off the Gaussian's typical shell
    assert norm_tail_p_value(np.array([float(k)]), k)[0] > 0.9


# ---- the unit-linear head -----------------------------------------------------------------------

UNIT_KINDS = ["unit-linear", "unit-linear-unit", "unit-linear-unit-query"]
SPHERE_KINDS = ("unit-linear-unit", "unit-linear-unit-query")


def unit_model(base_encoder, kind: str) -> GaussianEmbedder:
    return GaussianEmbedder(head=HeadSpec(kind, 384, 48), base_encoder=base_encoder, seed=5)


@pytest.mark.parametrize("kind", UNIT_KINDS)
def test_unit_heads_ignore_the_input_norm(base_encoder, kind):
    head = unit_model(base_encoder, kind).head
    x = torch.randn(4, 384)
    np.testing.assert_allclose(head(x).detach(), head(7.0 * x).detach(), atol=1e-5)
    if kind in SPHERE_KINDS:  # on the sphere where N(0, I_48) concentrates
        np.testing.assert_allclose(head(x).detach().norm(dim=1), np.sqrt(48), rtol=1e-5)


@pytest.mark.parametrize("kind", UNIT_KINDS)
def test_unit_heads_save_load_round_trip(tmp_path, base_encoder, kind):
    model = unit_model(base_encoder, kind)
    fingerprint = model.save(tmp_path / "m")
    loaded = GaussianEmbedder.load(tmp_path / "m", base_encoder=base_encoder)
    assert loaded.fingerprint == fingerprint and loaded.head_spec.kind == kind
    np.testing.assert_array_equal(loaded.encode(TEXTS), model.encode(TEXTS))
    np.testing.assert_array_equal(loaded.encode_queries(TEXTS), model.encode_queries(TEXTS))


@pytest.mark.parametrize("kind", UNIT_KINDS)
def test_unit_heads_export_reproduces_embeddings(tmp_path, base_encoder, kind):
    model = unit_model(base_encoder, kind)
    model.export_sentence_transformers(tmp_path / "st")
    plain = SentenceTransformer(str(tmp_path / "st"), device="cpu")
    names = [type(m).__name__ for m in plain][-4:]
    # normalised before the head's Linear (and, on the sphere, after it, then scaled), never elsewhere
    expected = ["Normalize", "Dense", "Normalize", "Dense"] if kind in SPHERE_KINDS else ["Normalize", "Dense"]
    assert names[-len(expected) :] == expected
    np.testing.assert_allclose(plain.encode(TEXTS), model.encode(TEXTS), atol=1e-5)


# ---- the recipe -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def adi_base(identity_embedder):
    docs = read_corpus(SAMPLE_DIR)
    return identity_embedder.encode([d.content for d in docs])


def test_spectral_map_whitens_at_gamma_one():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2000, 16)) * np.linspace(0.2, 3.0, 16) + 5.0
    u = unit(torch.as_tensor(x))
    weight, bias, chosen = spectral_map(u, 8, 1.0)
    assert chosen == {"out_dim": 8, "gamma": 1.0}
    z = (u @ weight.T + bias).numpy()
    np.testing.assert_allclose(np.cov(z.T), np.eye(8), atol=1e-6)
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-9)


def test_adapt_on_adi_is_more_isotropic_and_keeps_neighbours(adi_base):
    config = AdaptConfig(
        out_dim=32, gamma=0.5, steps=30, batch_size=64, neighbours=8, random_candidates=16, sphere=False
    )
    spec, head, metrics = fit(adi_base, config)
    assert spec.kind == "unit-linear" and spec.out_dim == 32
    z = apply_head(head, adi_base)
    assert z.shape == (len(adi_base), 32) and np.isfinite(z).all()
    assert {"distill", "sigreg_random", "sigreg_principal"} <= set(metrics["log"][-1])
    # the squared norm is about the width: the scale of N(0, I_k)
    assert 0.7 < metrics["chunks_isotropy"]["sq_norm_per_dim"] < 1.3
    plain = fit(adi_base, AdaptConfig(out_dim=32, gamma=0.0, sphere=False))[2]
    assert metrics["chunks_isotropy"]["effective_rank"] > plain["chunks_isotropy"]["effective_rank"]


def test_fitted_query_map_survives_save_load_and_is_what_encode_queries_uses(tmp_path, base_encoder, adi_base):
    spec, head, _ = fit(adi_base, AdaptConfig(out_dim=16))
    model = GaussianEmbedder(head=spec, base_encoder=base_encoder)
    model.head.load_state_dict(head.state_dict(), strict=True)
    model.save(tmp_path / "m")
    loaded = GaussianEmbedder.load(tmp_path / "m", base_encoder=base_encoder)
    base = loaded.encode_with_base(TEXTS)[1]
    queries = loaded.encode_queries(TEXTS)
    np.testing.assert_allclose(queries, loaded.apply_query_head(base), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(queries, axis=1), 4.0, rtol=1e-5)  # the same √16 sphere
    assert np.abs(queries - loaded.encode(TEXTS)).max() > 0.1  # not the documents' map
    # an unadapted model embeds queries exactly as documents
    np.testing.assert_array_equal(
        unit_model(base_encoder, "unit-linear").encode_queries(TEXTS),
        unit_model(base_encoder, "unit-linear").encode(TEXTS),
    )


def test_query_map_keeps_the_base_ranking_better_than_the_documents_map(adi_base):
    """Why queries get their own map: whitening both sides rescales every query–document cosine twice."""
    rng = np.random.default_rng(6)
    span_chunk = rng.integers(len(adi_base), size=200)
    spans = adi_base[span_chunk] + 0.5 * rng.standard_normal((200, 384)).astype(np.float32) * adi_base.std()
    _, head, _ = fit(adi_base, AdaptConfig(out_dim=32, target_effective_rank=0.95), spans, span_chunk)
    base_order = np.argsort(-(unit(torch.as_tensor(spans)) @ unit(torch.as_tensor(adi_base)).T).numpy(), axis=1)[:, :10]
    docs = apply_head(head, adi_base)

    def agreement(queries: np.ndarray) -> float:
        order = np.argsort(((queries[:, None] - docs[None]) ** 2).sum(-1), axis=1)[:, :10]
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(base_order, order, strict=True)])

    assert agreement(apply_head(head.queries, spans)) > agreement(apply_head(head, spans))


def test_default_recipe_reaches_its_isotropy_target_on_adi(adi_base):
    spec, _head, metrics = fit(adi_base)
    assert spec.kind == "unit-linear-unit-query" and 2 <= spec.out_dim < 82
    assert 0 < metrics["gamma"] < 1
    assert metrics["chunks_isotropy"]["effective_rank"] > 0.85  # 0.91 before the sphere, by construction


def test_gate_refuses_a_broken_candidate_and_accepts_a_sane_one(adi_base):
    _, head, _ = fit(adi_base, AdaptConfig(out_dim=32, gamma=0.5))
    rng = np.random.default_rng(4)
    span_chunk = rng.integers(len(adi_base), size=40)  # stand-ins for spans: their chunks, slightly moved
    spans = adi_base[span_chunk] + 0.05 * rng.standard_normal((40, 384)).astype(np.float32)
    accepted = acceptance_gate(adi_base, head, None, spans, span_chunk)
    assert accepted.passed, accepted.reason
    broken = torch.nn.Sequential(torch.nn.Linear(384, 32))  # a random projection: neighbours scrambled
    torch.manual_seed(0)
    torch.nn.init.normal_(broken[0].weight)
    refused = acceptance_gate(adi_base, broken, head, spans, span_chunk)
    assert not refused.passed and "agreement" in refused.reason
