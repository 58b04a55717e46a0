"""Training: data sources, the loss, the schedule, the embedding cache, and real runs on the ADI fixture.

Runs use the real packaged MiniLM (the ``base_encoder`` fixture) and the 82-document ADI collection
shipped in ``ragcun/data/adi`` (its only qrels split is ``test``, so it stands in for a train split).
"""

import copy
import json
import subprocess
import sys
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from ragcun.beir import SAMPLE_DIR, read_corpus
from ragcun.cli import cli
from ragcun.errors import InvalidInputError
from ragcun.model import GaussianEmbedder
from ragcun.model.cache import base_embeddings
from ragcun.training.checkpoint import latest_checkpoint
from ragcun.training.cli import train as train_command
from ragcun.training.config import TrainConfig, options
from ragcun.training.data import NO_NEGATIVE, load_training_data
from ragcun.training.loss import GaussianLoss, info_nce, neighbourhood_kl
from ragcun.training.train import lr_multiplier, pca_init, sigreg_weight, train


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory, base_encoder):
    """A base-embedding cache filled once with the ADI texts, shared by the runs below."""
    folder = tmp_path_factory.mktemp("cache")
    train_set, _ = load_training_data(SAMPLE_DIR, split="test")
    base_embeddings(GaussianEmbedder(base_encoder=base_encoder), train_set.texts, folder)
    return folder


def adi_config(tmp_path, cache_dir, **changes) -> TrainConfig:
    settings = dict(
        data=str(SAMPLE_DIR),
        split="test",
        out=str(tmp_path / "model"),
        out_dim=32,
        hidden_dim=128,
        epochs=2,
        batch_size=32,
        sigreg_slices=64,
        cache_dir=str(cache_dir),
        dev_fraction=0.3,
    )
    return TrainConfig(**{**settings, **changes})


# ---- data -----------------------------------------------------------------------------------------


def test_beir_dev_split_holds_out_whole_queries():
    train_set, dev = load_training_data(SAMPLE_DIR, split="test", dev_fraction=0.3, seed=1)
    train_queries = {train_set.texts[i] for i in train_set.query}
    dev_queries = {train_set.texts[i] for i in dev.query_ids.values()}
    assert len(dev.query_ids) == round(35 * 0.3) and dev.qrels.keys() == dev.query_ids.keys()
    assert not train_queries & dev_queries
    assert len(train_set.corpus) == 82 and set(train_set.negative) == {NO_NEGATIVE}
    # 170 judgements in all; the held-out queries' are not training pairs
    assert len(train_set) + sum(len(docs) for docs in dev.qrels.values()) == 170


def test_jsonl_pairs_and_raw_corpus_spans(tmp_path):
    rows = [{"query": "q1", "positive": "p1", "negative": "n1"}, {"query": "q2", "positive": "p2"}]
    (tmp_path / "pairs.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    pairs, dev = load_training_data(tmp_path / "pairs.jsonl")
    assert dev is None
    assert [pairs.texts[i] for i in pairs.query] == ["q1", "q2"]
    assert pairs.texts[pairs.negative[0]] == "n1" and pairs.negative[1] == NO_NEGATIVE

    (tmp_path / "bad.jsonl").write_text('{"query": "q"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:1"):
        load_training_data(tmp_path / "bad.jsonl")

    spans, _ = load_training_data(SAMPLE_DIR / "corpus.jsonl", span_views=3)
    documents = [doc.content for doc in read_corpus(SAMPLE_DIR)]
    assert spans.kind == "spans" and len(spans) == 3 * len(documents)
    for q, p in zip(spans.query[:30], spans.positive[:30], strict=True):
        # both views are spans of one and the same document
        assert any(spans.texts[q] in d and spans.texts[p] in d for d in documents)


def test_cache_encodes_each_text_once(tmp_path, base_encoder):
    embedder = GaussianEmbedder(base_encoder=base_encoder)
    texts = [doc.content for doc in read_corpus(SAMPLE_DIR)[:6]]
    first = base_embeddings(embedder, texts[:4], tmp_path)
    shards = list(tmp_path.rglob("*.safetensors"))
    assert len(shards) == 1 and load_file(shards[0])["embeddings"].shape == (4, 384)
    again = base_embeddings(embedder, texts[::-1], tmp_path)  # 2 new texts, 4 from the cache, reordered
    assert len(list(tmp_path.rglob("*.safetensors"))) == 2
    torch.testing.assert_close(again[-4:].flip(0), first)
    torch.testing.assert_close(again, torch.from_numpy(embedder.encode(texts[::-1])), atol=1e-5, rtol=1e-4)


# ---- objective and schedule -------------------------------------------------------------------------


def test_info_nce_uses_squared_distance_and_masks_extra_positives():
    q = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    d = torch.tensor([[0.0, 1.0], [3.0, 1.0]])
    tau = torch.tensor(1.0)
    logits = -torch.tensor([[1.0, 10.0], [10.0, 1.0]])
    assert float(info_nce(q, d, tau)) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits, torch.arange(2)))
    )
    same = torch.tensor([[True, True], [False, True]])  # column 1 is also relevant to row 0
    masked = info_nce(q, d, tau, same)
    assert float(masked) == pytest.approx(0.5 * float(torch.nn.functional.cross_entropy(logits[1:], torch.tensor([1]))))


@pytest.mark.parametrize("view", ["both", "separate", "queries", "docs", "corpus"])
def test_loss_reports_every_term(view):
    generator = torch.Generator().manual_seed(0)
    q, d, n, c = (torch.randn(8, 16, generator=generator) for _ in range(4))
    loss = GaussianLoss(16, temperature=2.0, sigreg_on=view, num_slices=32, jepa_weight=0.5)
    terms = loss(q, d, negatives=n[:3], corpus=c, lam=0.3, seed=1)
    assert set(terms) == {"nce", "sigreg", "jepa", "temperature", "loss"}
    expected = terms["nce"] + 0.3 * terms["sigreg"] + 0.5 * terms["jepa"]
    torch.testing.assert_close(terms["loss"], expected)
    assert float(terms["temperature"]) == pytest.approx(2.0)
    terms["loss"].backward()
    assert loss.log_temperature.grad is not None and loss.predictor.weight.grad is not None


def test_distillation_is_zero_exactly_when_the_student_keeps_the_teachers_neighbourhoods():
    teacher = torch.randn(40, 16, generator=torch.Generator().manual_seed(1)) * 3
    # z = s·x/‖x‖ gives −‖z_i − z_j‖² = 2s²·cos − 2s², the teacher's logits when τ_s = 2s²·τ_t
    s, tau_t = 4.0, 0.05
    student = s * torch.nn.functional.normalize(teacher, dim=1)
    assert float(neighbourhood_kl(teacher, student, tau_t, torch.tensor(2 * s * s * tau_t))) == pytest.approx(
        0, abs=1e-5
    )
    other = torch.randn(40, 16, generator=torch.Generator().manual_seed(2))
    assert float(neighbourhood_kl(teacher, other, tau_t, torch.tensor(2 * s * s * tau_t))) > 0.5
    loss = GaussianLoss(16, num_slices=16, distill_weight=2.0)
    terms = loss(other[:8], other[8:16], teacher=teacher, student=other, lam=0.1)
    torch.testing.assert_close(terms["loss"], terms["nce"] + 0.1 * terms["sigreg"] + 2.0 * terms["distill"])


def test_schedules_are_pure_and_bounded():
    total = 100
    lrs = [lr_multiplier(s, total, warmup=0.1, min_ratio=0.1) for s in range(total + 1)]
    assert lrs[0] == pytest.approx(0.1) and max(lrs) == pytest.approx(1.0) and lrs[-1] == pytest.approx(0.1)
    assert all(a <= b for a, b in pairwise(lrs[:10]))  # warmup rises
    assert all(a >= b for a, b in pairwise(lrs[10:]))  # cosine decays
    assert sigreg_weight(0, total, 0.3, 0.5) == 0 and sigreg_weight(25, total, 0.3, 0.5) == pytest.approx(0.15)
    assert sigreg_weight(0, total, 0.3, 0.0) == 0.3


def test_pca_init_is_the_same_map_for_linear_and_mlp(base_encoder):
    x = torch.randn(200, 24, generator=torch.Generator().manual_seed(3)) * torch.linspace(3, 0.1, 24) + 1
    linear = torch.nn.Sequential(torch.nn.Linear(24, 8))
    mlp = torch.nn.Sequential(torch.nn.Linear(24, 40), torch.nn.GELU(), torch.nn.Linear(40, 8))
    pca_init(linear, x)
    pca_init(mlp, x)
    with torch.no_grad():
        y = linear(x)
        torch.testing.assert_close(mlp(x), y, atol=1e-4, rtol=1e-4)
    assert y.mean(0).abs().max() < 1e-4  # centred
    assert float(y.var(0).mean()) == pytest.approx(1.0, rel=1e-3)  # one global scale: mean variance 1
    variances = y.var(0)
    assert torch.all(variances[:-1] >= variances[1:] - 1e-4)  # principal directions first, not whitened
    assert variances[0] > 2 * variances[-1]
    pca_init(linear, x, whiten=True)
    with torch.no_grad():
        torch.testing.assert_close(torch.cov(linear(x).T), torch.eye(8), atol=1e-3, rtol=0)  # isotropic from the start


# ---- real runs ------------------------------------------------------------------------------------


def test_frozen_run_writes_a_model_selected_on_dev(tmp_path, base_encoder, cache_dir):
    config = adi_config(tmp_path, cache_dir, epochs=3, init="pca")
    out = train(config, base_encoder=base_encoder)
    model = GaussianEmbedder.load(out, base_encoder=base_encoder)
    assert model.dim == 32
    run = json.loads((out / "training_run.json").read_text())
    assert run["model_version"] == model.fingerprint
    assert run["config"] == config.to_dict()
    assert len(run["data"]["fingerprint"]) == 64 and run["data"]["dev_queries"] == 10
    assert set(run["libraries"]) >= {"torch", "sentence-transformers", "ragcun"} and "commit" in run["git"]
    history = run["metrics"]["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    for key in ("train_nce", "train_sigreg", "train_loss", "dev_ndcg@10", "dev_query_sigreg", "corpus_effective_rank"):
        assert all(np.isfinite(h[key]) for h in history), key
    best = max(history, key=lambda h: h["dev_ndcg@10"])
    assert run["metrics"]["best"] == best and run["selected_by"] == "dev_ndcg@10"
    # the directory holds the best epoch's weights: its dev nDCG is reproduced from the saved model
    from ragcun.training.train import Texts, Trainable, evaluate_dev

    _, dev = load_training_data(SAMPLE_DIR, "test", 0.3, config.seed)
    reloaded = Trainable(model, GaussianLoss(32), full=False)
    metrics = evaluate_dev(reloaded, Texts(model, dev, False, torch.device("cpu"), cache_dir), dev, seed=0)
    assert metrics["dev_ndcg@10"] == pytest.approx(best["dev_ndcg@10"], abs=1e-6)


def test_resumed_run_equals_an_uninterrupted_one(tmp_path, base_encoder, cache_dir):
    whole = train(adi_config(tmp_path / "a", cache_dir, dev_fraction=0.0), base_encoder=base_encoder)
    # A "crash" after epoch 1: run to the end, then drop the last checkpoint so epoch 2 must be redone.
    crashed = adi_config(tmp_path / "b", cache_dir, dev_fraction=0.0)
    train(crashed, base_encoder=base_encoder)
    checkpoints = tmp_path / "b" / "model" / "checkpoints"
    (checkpoints / "step-00000012.safetensors").unlink()
    assert latest_checkpoint(checkpoints).name == "step-00000006.safetensors"  # 170 pairs / 32 = 6 steps an epoch
    (tmp_path / "b" / "model" / "head.safetensors").unlink()
    resumed = train(adi_config(tmp_path / "b", cache_dir, dev_fraction=0.0, resume=True), base_encoder=base_encoder)
    a = load_file(whole / "head.safetensors")
    b = load_file(resumed / "head.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
    run = json.loads((resumed / "training_run.json").read_text())
    assert run["steps"] == 12 and [h["epoch"] for h in run["metrics"]["history"]] == [1, 2]


def test_resume_refuses_another_architecture(tmp_path, base_encoder, cache_dir):
    config = adi_config(tmp_path, cache_dir, epochs=1, dev_fraction=0.0)
    train(config, base_encoder=base_encoder)
    with pytest.raises(
        InvalidInputError, match=r"cannot resume, the checkpoint was trained with out_dim \d+ \(now 16\)"
    ):
        train(replace(config, epochs=2, out_dim=16, resume=True), base_encoder=base_encoder)
    # the command line says so in one line, not with a torch traceback
    args = [
        "train",
        "--data",
        config.data,
        "--split",
        config.split,
        "--out",
        config.out,
        "--epochs",
        "2",
        "--out-dim",
        "16",
        "--head",
        config.head,
        "--hidden-dim",
        str(config.hidden_dim),
        "--resume",
        "--cache-dir",
        str(cache_dir),
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and "cannot resume" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_full_recipe_fine_tunes_the_base(tmp_path, base_encoder):
    write_short_pairs(tmp_path / "pairs.jsonl", 8)  # each step runs the encoder forward and backward
    base = copy.deepcopy(base_encoder)  # the session's encoder must stay untouched
    before = {k: v.clone() for k, v in base.state_dict().items()}
    config = TrainConfig(
        data=str(tmp_path / "pairs.jsonl"),
        out=str(tmp_path / "model"),
        recipe="full",
        head="linear",
        out_dim=16,
        epochs=1,
        batch_size=4,
        grad_accum=2,
        sigreg_slices=16,
        base_lr=1e-4,
        init="default",
        distill_weight=0.0,
        sigreg_on="both",
    )
    out = train(config, base_encoder=base)
    changed = [k for k, v in base.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "the base encoder did not train"
    assert (out / "base").is_dir()
    model = GaussianEmbedder.load(out)  # references the fine-tuned base by path
    np.testing.assert_allclose(
        model.encode(["a test"]), GaussianEmbedder.load(out, base_encoder=base).encode(["a test"]), atol=1e-5
    )
    assert json.loads((out / "training_run.json").read_text())["steps"] == 1
    with pytest.raises(ValueError, match="frozen recipe"):
        train(replace(config, distill_weight=1.0), base_encoder=base)


# ---- command lines --------------------------------------------------------------------------------


def write_short_pairs(path: Path, n: int) -> Path:
    """``n`` (query, positive) pairs from ADI as a JSONL file: its titles, and the first 30 words of its texts."""
    rows = [
        {"query": doc.title or doc.text[:40], "positive": " ".join(doc.text.split()[:30])}
        for doc in read_corpus(SAMPLE_DIR)[:n]
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def test_ragcun_train_command(tmp_path, monkeypatch):
    out = tmp_path / "m"
    monkeypatch.delenv("RAGCUN_CACHE", raising=False)
    args = [
        "--home",
        str(tmp_path / "home"),
        "train",
        "--data",
        str(write_short_pairs(tmp_path / "pairs.jsonl", 16)),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--out-dim",
        "16",
        "--hidden-dim",
        "64",
        "--sigreg-slices",
        "32",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert f"model written to {out}" in result.output
    assert GaussianEmbedder.load(out).dim == 16
    # without --cache-dir, the base embeddings are cached under the home ragcun was given
    assert list((tmp_path / "home" / "cache" / "base-embeddings").glob("*/*.safetensors"))

    missing = CliRunner().invoke(cli, ["train", "--data", str(tmp_path / "absent"), "--out", str(out)])
    assert missing.exit_code == 1
    assert missing.output.strip().splitlines()[-1] == f"Error: {tmp_path / 'absent'}: no such training data"
    bad = CliRunner().invoke(cli, ["train", "--data", str(SAMPLE_DIR), "--out", str(out), "--recipe", "half"])
    assert bad.exit_code == 2


def test_the_training_command_parses_every_field():
    args = [
        "--data",
        "d",
        "--out",
        "o",
        "--recipe",
        "full",
        "--no-learn-temperature",
        "--out-dim",
        "64",
        "--sigreg-on",
        "separate",
        "--cache-dir",
        "/tmp/c",
    ]
    config = TrainConfig(**train_command.make_context("train", args).params)
    assert {name for name, _, _ in options()} == set(train_command.make_context("train", args).params)
    assert config == TrainConfig(
        data="d", out="o", recipe="full", learn_temperature=False, out_dim=64, sigreg_on="separate", cache_dir="/tmp/c"
    )
    with pytest.raises(ValueError, match="recipe"):
        TrainConfig(recipe="half")


def test_python_m_ragcun_training_is_the_same_command(tmp_path):
    """``python -m ragcun.training`` runs the Click command ``ragcun train`` runs, one-line errors included."""
    run = subprocess.run(
        [sys.executable, "-m", "ragcun.training", "--data", str(tmp_path / "absent"), "--out", str(tmp_path / "m")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert run.returncode == 1, run.stderr
    assert run.stderr.strip().splitlines()[-1] == f"Error: {tmp_path / 'absent'}: no such training data"
    usage = subprocess.run(
        [sys.executable, "-m", "ragcun.training", "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert usage.returncode == 0 and "Usage: python -m ragcun.training" in usage.stdout
    assert "--sigreg-lambda" in usage.stdout


# ---- the shipped default ------------------------------------------------------------------------------


def test_the_shipped_default_is_a_trained_head_with_its_provenance():
    from ragcun.model import default_model_path
    from ragcun.retrieve import GaussianRetriever

    path = default_model_path()
    model = GaussianEmbedder.load(path)
    run = json.loads((path / "training_run.json").read_text())
    assert run["model_version"] == model.fingerprint
    assert model.head_spec.kind == run["config"]["head"] and model.dim == run["config"]["out_dim"]
    # trained on SciFact's train qrels only, with the epoch chosen on queries held out of train
    assert [Path(s).as_posix().split("/")[-2:] for s in run["data"]["sources"]] == [["qrels", "train.tsv"]]
    assert run["selected_by"] == "dev_ndcg@10" and run["data"]["dev_queries"] > 0
    assert GaussianRetriever().embedder.fingerprint == model.fingerprint
