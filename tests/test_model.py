import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from sentence_transformers import SentenceTransformer

from ragcun.beir import SAMPLE_DIR, read_corpus
from ragcun.errors import ModelLoadError
from ragcun.model import GaussianEmbedder, HeadSpec
from ragcun.model.embedder import fingerprint_of

from .conftest import THREE_DOCS

# Eight texts of 12 to 104 tokens: enough for two length-sorted batches, few enough to encode in every test.
TEXTS = THREE_DOCS + [doc.content for doc in read_corpus(SAMPLE_DIR)[7:12]]


def test_embeddings_are_float32_unnormalized_and_shaped(identity_embedder, mlp_embedder):
    plain = identity_embedder.encode(TEXTS)
    projected = mlp_embedder.encode(TEXTS)
    assert plain.dtype == np.float32 and plain.shape == (len(TEXTS), 384)
    assert projected.dtype == np.float32 and projected.shape == (len(TEXTS), 64)
    # The base's Normalize is gone: MiniLM's mean-pooled vectors are far from unit length.
    norms = np.linalg.norm(plain, axis=1)
    assert np.all(np.abs(norms - 1.0) > 0.5)
    assert not np.allclose(norms, norms[0])


def test_length_sorting_keeps_input_order(mlp_embedder):
    sorted_run = mlp_embedder.encode(TEXTS, batch_size=4, sort_by_length=True)
    one_by_one = np.stack([mlp_embedder.encode([text])[0] for text in TEXTS])
    np.testing.assert_allclose(sorted_run, one_by_one, atol=1e-5)


def test_cpu_forward_passes_stay_within_the_token_cap(base_encoder, identity_embedder):
    capped = GaussianEmbedder(head="identity", base_encoder=base_encoder)
    capped.cpu_tokens_per_forward = 128
    shapes = []
    handle = base_encoder.register_forward_hook(lambda m, args, out: shapes.append(args[0]["input_ids"].shape))
    try:
        vectors = capped.encode(TEXTS, batch_size=32)
    finally:
        handle.remove()
    # A batch pads to its longest text; one text longer than the cap goes alone.
    assert len(shapes) > 1 and all(rows * width <= 128 or rows == 1 for rows, width in shapes)
    assert sum(rows for rows, _ in shapes) == len(TEXTS)
    np.testing.assert_allclose(vectors, identity_embedder.encode(TEXTS), atol=1e-5)


def test_encode_rejects_bad_input(identity_embedder):
    assert identity_embedder.encode([]).shape == (0, 384)
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        identity_embedder.encode(["fine", 3])
    with pytest.raises(ValueError, match="batch_size"):
        identity_embedder.encode(["fine"], batch_size=0)


@pytest.mark.parametrize("kind", ["identity", "linear", "mlp"])
def test_save_load_encode_round_trip(tmp_path, base_encoder, kind):
    model = GaussianEmbedder(
        head=kind, out_dim=None if kind == "identity" else 96, hidden_dim=128, seed=3, base_encoder=base_encoder
    )
    fingerprint = model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "fingerprint", "head.safetensors"]
    loaded = GaussianEmbedder.load(tmp_path / "m", base_encoder=base_encoder)
    assert loaded.fingerprint == fingerprint == model.fingerprint
    assert loaded.head_spec == model.head_spec
    np.testing.assert_array_equal(loaded.encode(TEXTS), model.encode(TEXTS))


def test_fingerprint_tracks_the_weights(base_encoder):
    a = GaussianEmbedder(head="linear", out_dim=32, seed=1, base_encoder=base_encoder)
    b = GaussianEmbedder(head="linear", out_dim=32, seed=2, base_encoder=base_encoder)
    assert a.fingerprint != b.fingerprint
    assert len(a.fingerprint) == 64


def test_fingerprint_is_hashed_once_and_again_at_save(tmp_path, base_encoder):
    model = GaussianEmbedder(head="linear", out_dim=32, seed=1, base_encoder=base_encoder)
    before = model.fingerprint
    with torch.no_grad():
        model.head[0].weight.add_(1.0)  # an in-place change, as training makes
    assert model.fingerprint == before  # not re-serialised on every access
    saved = model.save(tmp_path / "m")
    assert saved != before and model.fingerprint == saved
    assert GaussianEmbedder.load(tmp_path / "m", base_encoder=base_encoder).fingerprint == saved
    assert saved == fingerprint_of(
        (tmp_path / "m" / "config.json").read_bytes(), (tmp_path / "m" / "head.safetensors").read_bytes()
    )


def test_loaded_models_share_one_base_encoder_per_max_seq_length(tmp_path, identity_embedder, mlp_embedder):
    identity_embedder.save(tmp_path / "identity")
    mlp_embedder.save(tmp_path / "mlp")
    identity, mlp = GaussianEmbedder.load(tmp_path / "identity"), GaussianEmbedder.load(tmp_path / "mlp")
    assert identity.base is mlp.base  # one copy in this process, however many versions use it
    np.testing.assert_array_equal(identity.encode(TEXTS), identity_embedder.encode(TEXTS))
    # A model that truncates sooner gets a base of its own: setting max_seq_length on the shared one would
    # change every other model's embeddings.
    short = tmp_path / "short"
    mlp_embedder.save(short)
    config = json.loads((short / "config.json").read_text())
    (short / "config.json").write_text(json.dumps({**config, "max_seq_length": 16}))
    (short / "fingerprint").write_text(
        fingerprint_of((short / "config.json").read_bytes(), (short / "head.safetensors").read_bytes())
    )
    truncating = GaussianEmbedder.load(short)
    assert truncating.base is not mlp.base
    assert (truncating.base.max_seq_length, mlp.base.max_seq_length) == (16, config["max_seq_length"])
    # A model built rather than loaded (as training builds one) never gets the shared base: training changes it.
    assert GaussianEmbedder(head="identity").base is not identity.base


def test_tampered_weights_are_refused(tmp_path, mlp_embedder):
    mlp_embedder.save(tmp_path / "m")
    weights = tmp_path / "m" / "head.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF  # flip bits inside the last tensor's values
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=r"fingerprint: config.json \+ head.safetensors hash to"):
        GaussianEmbedder.load(tmp_path / "m")


def test_strict_load_refuses_unexpected_and_missing_keys(tmp_path, mlp_embedder, base_encoder):
    directory = tmp_path / "m"
    mlp_embedder.save(directory)
    weights = directory / "head.safetensors"

    def rewrite(state):
        # A consistent forgery: the fingerprint matches, so only the strict key check can catch it.
        save_file(state, str(weights))
        (directory / "fingerprint").write_text(
            fingerprint_of((directory / "config.json").read_bytes(), weights.read_bytes())
        )

    state = load_file(str(weights))
    rewrite({**state, "extra.weight": state["0.weight"].clone()})
    with pytest.raises(
        ModelLoadError, match=r"head.safetensors: missing keys \[\], unexpected keys \['extra.weight'\]"
    ):
        GaussianEmbedder.load(directory, base_encoder=base_encoder)

    rewrite({k: v for k, v in state.items() if k != "2.bias"})
    with pytest.raises(ModelLoadError, match=r"missing keys \['2.bias'\]"):
        GaussianEmbedder.load(directory, base_encoder=base_encoder)

    rewrite({**state, "2.weight": state["2.weight"][:10].clone()})
    with pytest.raises(ModelLoadError, match=r"head\.safetensors: weights do not fit head mlp"):
        GaussianEmbedder.load(directory, base_encoder=base_encoder)


def test_corrupt_and_missing_files_name_the_file(tmp_path, mlp_embedder, base_encoder):
    directory = tmp_path / "m"
    mlp_embedder.save(directory)
    (directory / "head.safetensors").write_bytes(b"not safetensors at all")
    (directory / "fingerprint").write_text(
        fingerprint_of((directory / "config.json").read_bytes(), b"not safetensors at all")
    )
    with pytest.raises(ModelLoadError, match=r"head\.safetensors: not a valid safetensors file"):
        GaussianEmbedder.load(directory, base_encoder=base_encoder)

    config = b"{ this is not json"
    (directory / "config.json").write_bytes(config)
    (directory / "fingerprint").write_text(fingerprint_of(config, b"not safetensors at all"))
    with pytest.raises(ModelLoadError, match=r"config\.json: invalid model config"):
        GaussianEmbedder.load(directory, base_encoder=base_encoder)

    (directory / "fingerprint").unlink()
    with pytest.raises(ModelLoadError, match="fingerprint: missing"):
        GaussianEmbedder.load(directory)


def test_newer_format_version_is_refused(tmp_path, identity_embedder):
    directory = tmp_path / "m"
    identity_embedder.save(directory)
    config = json.loads((directory / "config.json").read_text())
    config["format_version"] = 99
    config_bytes = json.dumps(config).encode()
    (directory / "config.json").write_bytes(config_bytes)
    (directory / "fingerprint").write_text(fingerprint_of(config_bytes, (directory / "head.safetensors").read_bytes()))
    with pytest.raises(ModelLoadError, match="format_version 99 is not supported"):
        GaussianEmbedder.load(directory)


def test_bad_base_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="cannot load base model"):
        GaussianEmbedder(base_model=str(tmp_path / "no-such-model"))


def test_head_spec_validation():
    with pytest.raises(ValueError, match="unknown head kind 'conv'"):
        HeadSpec("conv", 8, 8)
    with pytest.raises(ValueError, match="identity head keeps the width"):
        HeadSpec("identity", 8, 4)
    with pytest.raises(ValueError, match="hidden_dim"):
        HeadSpec("mlp", 8, 4)


def test_untrained_linear_head_is_the_base(base_encoder, identity_embedder):
    linear = GaussianEmbedder(head="linear", base_encoder=base_encoder)
    np.testing.assert_allclose(linear.encode(TEXTS), identity_embedder.encode(TEXTS), atol=1e-6)


@pytest.mark.parametrize("kind", ["identity", "linear", "mlp"])
def test_sentence_transformers_export_reproduces_embeddings(tmp_path, base_encoder, kind):
    model = GaussianEmbedder(
        head=kind, out_dim=None if kind == "identity" else 48, hidden_dim=96, seed=11, base_encoder=base_encoder
    )
    with_head = model.head
    if kind == "linear":
        # Move off the identity init so the export has real weights to carry.
        with_head[0].weight.data.normal_(0, 0.1)
    model.export_sentence_transformers(tmp_path / "st")
    plain = SentenceTransformer(str(tmp_path / "st"), device="cpu")
    assert not any(type(m).__name__ == "Normalize" for m in plain)
    np.testing.assert_allclose(plain.encode(TEXTS), model.encode(TEXTS), atol=1e-5)
    provenance = json.loads((tmp_path / "st" / "ragcun_model.json").read_text())
    assert provenance["fingerprint"] == model.fingerprint
