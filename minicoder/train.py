"""Pretraining: AdamW, DeepSeek's multi-step learning rate, atomic checkpoints and exact resume.

The recipe is DeepSeek-Coder's (Guo et al., 2024, section 3.4 "Optimization"), which follows
DeepSeek LLM (2024, section 2.3):

    AdamW, beta1 = 0.9, beta2 = 0.95, weight decay 0.1, gradient clipping at norm 1.0
    lr(step) = lr * (step + 1) / warmup_steps          during warm-up (2000 steps at full scale)
             = lr                                      until 80% of the training tokens
             = lr * 0.316                              until 90%
             = lr * 0.316^2  (~10% of the peak)        to the end

(0.316 = sqrt(1/10); with a fixed batch, a share of the tokens is the same share of the steps.)
Weight decay applies to matrices (linear layers and the embeddings) and not to vectors (RMSNorm
gains; nothing here has a bias), as in LLaMA and nanoGPT. On a GPU the forward pass runs under
bf16 autocast with float32 master weights; on a CPU everything is float32.

One optimizer step takes `grad_accum` micro-batches of `batch_size` windows of `seq_len` tokens.
Checkpoints are directories `out_dir/ckpt-000300/` holding model.safetensors, optimizer.pt,
rng.pt, trainer.json (step, tokens, configs, RNG states of Python and numpy), config.json
(ModelConfig) and tokenizer.json. A checkpoint is written into `ckpt.tmp-XXXX/`, fsynced,
renamed, and only then does the one-line pointer file `out_dir/latest` switch to it (an atomic
`os.replace`): a process killed at any moment leaves `latest` naming a complete checkpoint.
Resuming restores the weights, the optimizer, every RNG and the data generator, so N steps
straight and k steps + resume to N give bitwise-equal losses on a CPU.

Outputs beside the checkpoints: `metrics.jsonl`, one line per `log_interval` steps (step, tokens,
loss = the mean training loss since the previous line, lr, grad_norm, tokens_per_s) and one per
evaluation (val_loss in nats per token, val_bpb in bits per byte of source), and `loss.png`.

Distributed (torchrun): rank and world size come from the RANK / LOCAL_RANK / WORLD_SIZE
environment variables (`DistInfo.from_env`). Every rank draws the same random windows and trains
on micro-batches rank, rank + world, ... of each step, so the global batch (and the data order)
is the same for any world size; DDP averages the gradients; only rank 0 writes logs and
checkpoints. `grad_accum` counts micro-batches across all ranks and must divide by the world size.

Command line:

    minicoder train --preset tiny [--corpus DIR] [--out runs/tiny] [--resume] [--time-limit-s 600]
    torchrun --nproc_per_node 8 -m minicoder.cli train --preset deepseek-coder-1.3b \
        --data tokens/ --tokenizer data_samples/tokenizers/deepseek-coder/tokenizer.json

`make train-tiny` is a recipe on top of this module: minicoder/train_tiny.py.

Left out: FSDP / tensor and pipeline parallelism (needed past a few billion parameters), DeepSeek's
HAI-LLM framework, loss-spike handling, and sequence packing with per-document attention masks.
"""

import argparse
import dataclasses
import json
import math
import os
import random
import shutil
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from minicoder.config import ModelConfig
from minicoder.data import (
    TokenData,
    corpus_tokenizer,
    prepare_tokens,
    tokenizer_fingerprint,
)
from minicoder.model import Transformer

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16")


@dataclass
class TrainConfig:
    """Everything about a training run except the model's shape (that is ModelConfig).

    Attributes:
        batch_size: windows per micro-batch, per process.
        seq_len: tokens per window; at most the model's max_seq_len.
        grad_accum: micro-batches per optimizer step, summed over all processes.
        max_steps: optimizer steps in the whole run; the schedule's 80%/90% points are shares of it.
        lr: peak learning rate.
        warmup_steps: linear warm-up from lr / warmup_steps to lr (DeepSeek: 2000).
        decay_at: shares of the run after which the rate is multiplied by `decay_factor`.
        decay_factor: multiplier at each point of `decay_at` (DeepSeek: 0.316 = sqrt(0.1)).
        beta1, beta2, eps: AdamW moments (DeepSeek: 0.9, 0.95).
        weight_decay: AdamW decoupled decay on matrices only (DeepSeek: 0.1).
        grad_clip: clip the global gradient norm to this (DeepSeek: 1.0); 0 turns clipping off.
        eval_interval: evaluate validation loss every this many steps (and at the end).
        eval_iters: validation micro-batches per evaluation (the same windows every time).
        checkpoint_interval: write a checkpoint every this many steps (and at the end).
        log_interval: append a metrics line every this many steps.
        seed: seeds the model's initialization and the data order.
        device: "auto" (cuda if available, else cpu), "cpu", "cuda" or "mps".
        dtype: "auto" (bfloat16 autocast on cuda, float32 elsewhere), "float32" or "bfloat16".
        compile: wrap the model in torch.compile (worth it on a GPU; slow to start on a CPU).
        time_limit_s: stop cleanly after this many seconds of this process's training, including
            the final evaluation and checkpoint; None for no limit.
        out_dir: run directory for checkpoints, metrics.jsonl and loss.png.
    """

    batch_size: int = 8
    seq_len: int = 256
    grad_accum: int = 1
    max_steps: int = 1000
    lr: float = 1e-3
    warmup_steps: int = 100
    decay_at: tuple[float, ...] = (0.8, 0.9)
    decay_factor: float = 0.316
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_interval: int = 100
    eval_iters: int = 20
    checkpoint_interval: int = 500
    log_interval: int = 10
    seed: int = 1337
    device: str = "auto"
    dtype: str = "auto"
    compile: bool = False
    time_limit_s: float | None = None
    out_dir: str = "runs/tiny"

    def __post_init__(self):
        self.decay_at = tuple(self.decay_at)
        for name in ("batch_size", "seq_len", "grad_accum", "max_steps", "eval_interval", "eval_iters",
                     "checkpoint_interval", "log_interval"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0 <= self.warmup_steps < self.max_steps:
            raise ValueError(f"warmup_steps={self.warmup_steps} must be in [0, max_steps={self.max_steps}); "
                             "lower --warmup-steps or raise --max-steps")
        if any(not 0 < d < 1 for d in self.decay_at) or list(self.decay_at) != sorted(self.decay_at):
            raise ValueError(f"decay_at={self.decay_at} must be increasing shares in (0, 1), e.g. (0.8, 0.9)")
        if self.lr <= 0 or self.decay_factor <= 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("lr and decay_factor must be positive, weight_decay and grad_clip non-negative")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"betas must be in [0, 1), got ({self.beta1}, {self.beta2}); DeepSeek uses (0.9, 0.95)")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"unknown device {self.device!r}; choose one of: {', '.join(DEVICES)} (or cuda:N)")
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; choose one of: {', '.join(DTYPES)}")
        if self.time_limit_s is not None and self.time_limit_s <= 0:
            raise ValueError(f"time_limit_s must be positive or None, got {self.time_limit_s}")

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len * self.grad_accum

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "TrainConfig":
        """The named preset with any field replaced: from_preset("tiny", max_steps=10)."""
        if name not in TRAIN_PRESETS:
            raise ValueError(f"unknown training preset {name!r}; choose one of: {', '.join(TRAIN_PRESETS)}")
        return cls(**{**TRAIN_PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})


TRAIN_PRESETS = MappingProxyType({
    # `make train-tiny`: the tiny ModelConfig (~5M parameters), 2048 tokens a step, 1.2M tokens in all.
    # A 2-core CPU does a step in 0.75-3 s (idle to busy); the time limit stops a slow one early.
    # A few hundred steps is too short for DeepSeek's 2000-step warm-up.
    "tiny": MappingProxyType(dict(
        batch_size=8, seq_len=256, max_steps=600, lr=2e-3, warmup_steps=40,
        eval_interval=100, eval_iters=8, checkpoint_interval=100, log_interval=10, out_dir="runs/tiny",
    )),
    # DeepSeek-Coder 1.3B's first stage (paper table 2 and section 3.4): 1024 windows of 4096 tokens a
    # step, peak lr 5.3e-4, 2000 warm-up steps, ~1.8T tokens. Set grad_accum to fit your GPUs.
    "deepseek-coder-1.3b": MappingProxyType(dict(
        batch_size=8, seq_len=4096, grad_accum=128, max_steps=430_000, lr=5.3e-4, warmup_steps=2000,
        eval_interval=1000, eval_iters=50, checkpoint_interval=1000, log_interval=10, dtype="auto",
        compile=True, out_dir="runs/deepseek-coder-1.3b",
    )),
})


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warm-up, then DeepSeek's steps.

    With lr=1, warmup_steps=10, max_steps=100: step 0 -> 0.1, 9 -> 1.0, 79 -> 1.0, 80 -> 0.316,
    90 -> 0.316**2.
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    passed = sum(step >= round(share * cfg.max_steps) for share in cfg.decay_at)
    return cfg.lr * cfg.decay_factor ** passed


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: matrices (2-D and up: linear weights, embeddings) decay; vectors (norm gains) don't."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    fused = device.type == "cuda"  # one kernel for all parameters; not available on every CPU build
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                             eps=cfg.eps, fused=fused or None)


# -----------------------------------------------------------------------------
# Devices and processes, decided in one place


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a torchrun job (rank 0 of 1 when run plainly)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @classmethod
    def from_env(cls) -> "DistInfo":
        env = os.environ
        return cls(int(env.get("RANK", 0)), int(env.get("LOCAL_RANK", 0)), int(env.get("WORLD_SIZE", 1)))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(cfg: TrainConfig, dist: DistInfo) -> tuple[torch.device, torch.dtype]:
    """The device and the autocast dtype (float32 means no autocast) for this process."""
    name = cfg.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and dist.world_size > 1:
        name = f"cuda:{dist.local_rank}"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for but torch sees no GPU; use --device cpu (or auto)")
    device = torch.device(name)
    if cfg.dtype == "auto":
        dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    else:
        dtype = getattr(torch, cfg.dtype)
    return device, dtype


def autocast(device: torch.device, dtype: torch.dtype):
    return nullcontext() if dtype == torch.float32 else torch.autocast(device.type, dtype=dtype)


# -----------------------------------------------------------------------------
# Checkpoints


class Checkpoint(NamedTuple):
    """What `load_checkpoint` returns; unpack it as `model, tokenizer, *_ = load_checkpoint(dir)`."""

    model: Transformer
    tokenizer: object  # minicoder.tokenizer.Tokenizer
    model_config: ModelConfig
    train_config: TrainConfig | None
    state: dict  # trainer.json
    path: Path


CHECKPOINT_FILES = ("model.safetensors", "optimizer.pt", "rng.pt", "trainer.json", "config.json", "tokenizer.json")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1))


def find_checkpoint(path: str | Path) -> Path | None:
    """The checkpoint directory `path` names: itself, or the one its `latest` file points to."""
    path = Path(path)
    if (path / "model.safetensors").is_file():
        return path
    latest = path / "latest"
    if latest.is_file():
        target = path / latest.read_text().strip()
        if (target / "model.safetensors").is_file():
            return target
        raise FileNotFoundError(f"{latest} names {target.name}, which is missing or incomplete; "
                                "restore it or delete the run directory to start over")
    return None


def save_checkpoint(run_dir: Path, model: Transformer, optimizer, tokenizer, state: dict, rng: dict) -> Path:
    """Write a complete checkpoint for `state["step"]`, then point `run_dir/latest` at it.

    Order: files into ckpt.tmp-XXXX/ (each fsynced), rename to ckpt-<step>/, fsync the run
    directory, then replace `latest` atomically; older checkpoints are removed only after that.
    MINICODER_TEST_CHECKPOINT_SLEEP_S (seconds) pauses after each file, so a test can kill us mid-save.
    """
    from safetensors.torch import save_model

    run_dir.mkdir(parents=True, exist_ok=True)
    pause = float(os.environ.get("MINICODER_TEST_CHECKPOINT_SLEEP_S", "0"))
    tmp = Path(tempfile.mkdtemp(prefix="ckpt.tmp-", dir=run_dir))
    writers = {
        "model.safetensors": lambda p: save_model(model, str(p)),
        "optimizer.pt": lambda p: torch.save(optimizer.state_dict(), p),
        "rng.pt": lambda p: torch.save(rng, p),
        "trainer.json": lambda p: _write_json(p, state),
        "config.json": lambda p: _write_json(p, model.config.to_dict()),
        "tokenizer.json": lambda p: tokenizer.save(p),
    }
    for name in CHECKPOINT_FILES:
        writers[name](tmp / name)
        _fsync(tmp / name)
        if pause:
            time.sleep(pause)
    os.chmod(tmp, 0o755)  # mkdtemp makes it private
    _fsync(tmp)
    final = run_dir / f"ckpt-{state['step']:06d}"
    k = 1
    while final.exists():  # the same step saved twice (e.g. a run stopped right after a checkpoint)
        k += 1
        final = run_dir / f"ckpt-{state['step']:06d}-{k}"
    os.rename(tmp, final)
    _fsync(run_dir)
    pointer = run_dir / "latest.tmp"
    pointer.write_text(final.name + "\n")
    _fsync(pointer)
    os.replace(pointer, run_dir / "latest")  # the commit point
    _fsync(run_dir)
    for old in run_dir.iterdir():
        if old != final and old.is_dir() and (old.name.startswith("ckpt-") or old.name.startswith("ckpt.tmp-")):
            shutil.rmtree(old, ignore_errors=True)
    return final


def _one_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _load_weights(model: Transformer, ckpt: Path) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    try:
        load_model(model, str(ckpt / "model.safetensors"), device=str(next(model.parameters()).device))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{ckpt / 'model.safetensors'} is corrupt or truncated ({_one_line(e)}); "
                         "delete this checkpoint and resume from an earlier one, or retrain") from None
    except RuntimeError as e:
        raise ValueError(f"{ckpt / 'model.safetensors'} does not fit {ckpt / 'config.json'} ({_one_line(e)}); "
                         "the checkpoint is damaged, retrain it") from None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing; the checkpoint is incomplete, retrain or restore it") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); the checkpoint is damaged, retrain or restore it") from None


def check_same_config(ckpt: Path, saved: dict, expected: ModelConfig) -> None:
    """Raise if the checkpoint's model shape differs from `expected` (attn_impl may differ: same weights)."""
    want = expected.to_dict()
    diff = [f"{k}: {saved.get(k)} in the checkpoint, {want[k]} requested"
            for k in want if k != "attn_impl" and saved.get(k) != want[k]]
    if diff:
        raise ValueError(f"checkpoint {ckpt} has another model configuration ({'; '.join(diff)}); "
                         "use the same --preset/--model, or another --out to start a new run")


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu",
                    expect_config: ModelConfig | None = None, attn_impl: str | None = None) -> Checkpoint:
    """Load a checkpoint directory, or the latest one of a run directory.

    Args:
        path: `runs/tiny` (follows its `latest` file) or `runs/tiny/ckpt-000300`.
        device: where to put the model.
        expect_config: if given, a checkpoint of another model shape is refused with a clear error.
        attn_impl: override the saved attention path ("naive" or "sdpa"); the weights are the same.

    Returns a `Checkpoint` (model in eval mode, tokenizer, model_config, train_config, state, path).
    """
    from minicoder.tokenizer import Tokenizer

    path = Path(path)
    ckpt = find_checkpoint(path)
    if ckpt is None:
        raise FileNotFoundError(f"no checkpoint at {path} (no model.safetensors, no 'latest' file); "
                                "train one with `minicoder train --out DIR`, or check the path")
    saved = _read_json(ckpt / "config.json")
    if expect_config is not None:
        check_same_config(ckpt, saved, expect_config)
    if attn_impl is not None:
        saved["attn_impl"] = attn_impl
    try:
        model_config = ModelConfig.from_dict(saved)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{ckpt / 'config.json'} is not a valid ModelConfig ({_one_line(e)})") from None
    state = _read_json(ckpt / "trainer.json")
    if not (ckpt / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{ckpt / 'tokenizer.json'} is missing; the checkpoint is incomplete")
    tokenizer = Tokenizer.from_file(ckpt / "tokenizer.json")
    model = Transformer(model_config).to(device)
    _load_weights(model, ckpt)
    model.eval()
    train_config = TrainConfig.from_dict(state["train_config"]) if "train_config" in state else None
    return Checkpoint(model, tokenizer, model_config, train_config, state, ckpt)


def _rng_state(data_gen: torch.Generator) -> tuple[dict, dict]:
    """RNG states: tensors for rng.pt, plain lists for trainer.json."""
    tensors = {"torch": torch.get_rng_state(), "data": data_gen.get_state()}
    if torch.cuda.is_available():
        tensors["cuda"] = torch.cuda.get_rng_state_all()
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    plain = {"python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
             "numpy": [kind, keys.tolist(), pos, has_gauss, gauss]}
    return tensors, plain


def _restore_rng(ckpt: Path, state: dict, data_gen: torch.Generator) -> None:
    try:
        tensors = torch.load(ckpt / "rng.pt", weights_only=True)
    except Exception as e:
        raise ValueError(f"{ckpt / 'rng.pt'} is corrupt ({_one_line(e)}); resume from an earlier checkpoint") from None
    torch.set_rng_state(tensors["torch"])
    data_gen.set_state(tensors["data"])
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(tensors["cuda"])
    version, keys, gauss = state["rng"]["python"]
    random.setstate((version, tuple(keys), gauss))
    kind, keys, pos, has_gauss, cached = state["rng"]["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


# -----------------------------------------------------------------------------
# Evaluation, metrics and the loss plot


@torch.no_grad()
def estimate_loss(model, data: TokenData, split: str, cfg: TrainConfig, device, dtype, dist: DistInfo) -> float:
    """Mean loss (nats/token) over `eval_iters` micro-batches; the same windows at every evaluation."""
    model.eval()
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    total = torch.zeros((), device=device)
    for i in range(cfg.eval_iters):
        x, y = data.get_batch(split, cfg.batch_size, cfg.seq_len, gen)  # (B, T) each
        if i % dist.world_size != dist.rank:
            continue
        with autocast(device, dtype):
            logits = model(x.to(device))  # (B, T, V)
        total += F.cross_entropy(logits.flatten(0, 1), y.to(device).flatten())
    if dist.world_size > 1:
        torch.distributed.all_reduce(total)
    model.train()
    return total.item() / cfg.eval_iters


def read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_losses(metrics: list[dict], path: Path, title: str = "") -> None:
    """Training loss per step and validation loss at each evaluation, in nats/token, as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    train = [(m["step"], m["loss"]) for m in metrics if "loss" in m]
    val = [(m["step"], m["val_loss"]) for m in metrics if "val_loss" in m]
    if train:
        ax.plot(*zip(*train), label="train", lw=1)
    if val:
        ax.plot(*zip(*val), "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats / token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


# -----------------------------------------------------------------------------
# The loop


def train(model_config: ModelConfig, cfg: TrainConfig, data: TokenData, tokenizer, resume: bool = False,
          stop_after: int | None = None, progress: bool = True) -> dict:
    """Train (or resume) a model; return a summary with the per-step losses and the final validation.

    Args:
        model_config: the model's shape; vocab_size must cover the tokenizer's ids.
        cfg: the run; cfg.out_dir receives checkpoints, metrics.jsonl and loss.png.
        data: prepared tokens with "train" and "val" splits.
        tokenizer: saved into every checkpoint.
        resume: continue from the latest checkpoint in cfg.out_dir (required if one exists).
        stop_after: stop (with a checkpoint) once this step is done, as if interrupted; the schedule
            still runs to cfg.max_steps.
        progress: show a tqdm bar.
    """
    from tqdm import tqdm

    t_start = time.monotonic()
    dist = DistInfo.from_env()
    if cfg.grad_accum % dist.world_size:
        raise ValueError(f"grad_accum={cfg.grad_accum} must divide by the world size {dist.world_size}; "
                         f"use a multiple of {dist.world_size}")
    if cfg.seq_len > model_config.max_seq_len:
        raise ValueError(f"seq_len={cfg.seq_len} exceeds the model's max_seq_len={model_config.max_seq_len}; "
                         "lower --seq-len")
    if model_config.vocab_size < tokenizer.vocab_size:
        raise ValueError(f"model vocab_size={model_config.vocab_size} < tokenizer's {tokenizer.vocab_size}; "
                         "build the ModelConfig with vocab_size=tokenizer.vocab_size")
    if dist.world_size > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    device, dtype = resolve_device(cfg, dist)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    run_dir = Path(cfg.out_dir)

    torch.manual_seed(cfg.seed)
    model = Transformer(model_config).to(device)
    optimizer = make_optimizer(model, cfg, device)
    data_gen = torch.Generator().manual_seed(cfg.seed)  # the same on every rank: see the module docstring
    step, train_time = 0, 0.0
    existing = find_checkpoint(run_dir)
    if existing is not None and not resume:
        raise ValueError(f"{run_dir} already holds a checkpoint ({existing.name}); pass --resume to continue it, "
                         "or choose another --out")
    if resume:
        if existing is None:
            raise FileNotFoundError(f"--resume given but {run_dir} holds no checkpoint; drop --resume to start a new run")
        saved = _read_json(existing / "config.json")
        check_same_config(existing, saved, model_config)
        state = _read_json(existing / "trainer.json")
        if state.get("data_key") != data.key:
            raise ValueError(f"checkpoint {existing} was trained on other tokens (another corpus or tokenizer); "
                             "pass the same --corpus/--tokenizer, or another --out to start a new run")
        _load_weights(model, existing)
        try:
            optimizer.load_state_dict(torch.load(existing / "optimizer.pt", weights_only=True, map_location=device))
        except Exception as e:
            raise ValueError(f"{existing / 'optimizer.pt'} is corrupt ({_one_line(e)}); "
                             "resume from an earlier checkpoint or retrain") from None
        _restore_rng(existing, state, data_gen)
        step, train_time = state["step"], state.get("train_time_s", 0.0)

    metrics_path = run_dir / "metrics.jsonl"
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        kept = [m for m in read_metrics(metrics_path) if m["step"] <= step]  # drop lines past the checkpoint
        metrics_path.write_text("".join(json.dumps(m) + "\n" for m in kept))

    raw_model = model
    if cfg.compile:
        model = torch.compile(model)
    if dist.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    own_micro = [m for m in range(cfg.grad_accum) if m % dist.world_size == dist.rank]

    def log(record: dict) -> None:
        if dist.is_main:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")

    def evaluate() -> tuple[float, float]:
        t = time.monotonic()
        val_loss = estimate_loss(model, data, "val", cfg, device, dtype, dist)
        bpb = data.bits_per_byte("val", val_loss)
        log({"step": step, "tokens": step * cfg.tokens_per_step, "val_loss": val_loss, "val_bpb": bpb})
        timing["eval"] = time.monotonic() - t
        return val_loss, bpb

    def checkpoint(finished: bool, stopped: str | None, val: tuple[float, float] | None) -> None:
        t = time.monotonic()
        if dist.is_main:
            tensors, plain = _rng_state(data_gen)
            state = {"step": step, "tokens": step * cfg.tokens_per_step, "finished": finished, "stopped": stopped,
                     "train_time_s": train_time + time.monotonic() - t_start, "data_key": data.key,
                     "val_loss": val[0] if val else None, "val_bpb": val[1] if val else None,
                     "world_size": dist.world_size, "train_config": dataclasses.asdict(cfg), "rng": plain}
            save_checkpoint(run_dir, raw_model, optimizer, tokenizer, state, tensors)
            plot_losses(read_metrics(metrics_path), run_dir / "loss.png", title=str(run_dir))
        if dist.world_size > 1:
            torch.distributed.barrier()
        timing["checkpoint"] = time.monotonic() - t

    def out_of_time(extra: float) -> bool:
        """True if `extra` more seconds plus a final evaluation and checkpoint would pass the limit."""
        if cfg.time_limit_s is None:
            return False
        reserve = timing.get("eval", cfg.eval_iters * timing["step"] / (3 * cfg.grad_accum))
        reserve += timing.get("checkpoint", 1.0)
        late = time.monotonic() - t_start + extra + reserve > cfg.time_limit_s
        if dist.world_size > 1:  # every rank must take the same decision
            flag = torch.tensor(float(late), device=device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            late = bool(flag.item())
        return late

    timing = {"step": 0.0}
    losses: list[float] = []
    stopped, val, val_step = None, None, -1
    bar = tqdm(total=cfg.max_steps, initial=step, unit="step", disable=not (progress and dist.is_main),
               dynamic_ncols=True)
    t_log, steps_log = time.monotonic(), 0
    model.train()
    while step < cfg.max_steps:
        if stop_after is not None and step >= stop_after:
            stopped = "stop_after"
            break
        if out_of_time(timing["step"]):
            stopped = "time_limit"
            break
        t_step = time.monotonic()
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_sum = torch.zeros((), device=device)
        for micro in range(cfg.grad_accum):
            x, y = data.get_batch("train", cfg.batch_size, cfg.seq_len, data_gen)  # (B, T) each, drawn on every rank
            if micro not in own_micro:
                continue
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            # DDP all-reduces gradients on this rank's last micro-batch of the step only.
            sync = nullcontext() if dist.world_size == 1 or micro == own_micro[-1] else model.no_sync()
            with sync:
                with autocast(device, dtype):
                    logits = model(x)  # (B, T, V)
                    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
                (loss / len(own_micro)).backward()
            loss_sum += loss.detach()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        if dist.world_size > 1:
            torch.distributed.all_reduce(loss_sum)
        loss_value = loss_sum.item() / cfg.grad_accum
        losses.append(loss_value)
        timing["step"] = time.monotonic() - t_step
        steps_log += 1
        bar.update(1)
        if step % cfg.log_interval == 0 or step == cfg.max_steps:
            tok_s = steps_log * cfg.tokens_per_step / (time.monotonic() - t_log)
            mean_loss = sum(losses[-steps_log:]) / steps_log  # over the steps since the last line
            log({"step": step, "tokens": step * cfg.tokens_per_step, "loss": mean_loss, "lr": lr,
                 "grad_norm": grad_norm.item(), "tokens_per_s": tok_s})
            bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}", tok_s=f"{tok_s:,.0f}")
            t_log, steps_log = time.monotonic(), 0
        if step % cfg.eval_interval == 0 and step < cfg.max_steps:
            if out_of_time(timing.get("eval", 0.0)):  # leave the time for the final evaluation instead
                stopped = "time_limit"
                break
            val, val_step = evaluate(), step
            if progress and dist.is_main:
                bar.write(f"step {step}: val loss {val[0]:.4f}, {val[1]:.4f} bits/byte")
        if step % cfg.checkpoint_interval == 0 and step < cfg.max_steps and stop_after != step:
            checkpoint(False, None, val)
    bar.close()
    finished = step >= cfg.max_steps
    if val is None or val_step != step:
        val = evaluate()
    if dist.is_main and progress:
        print(f"step {step}: val loss {val[0]:.4f}, {val[1]:.4f} bits/byte ({stopped or 'finished'})")
    checkpoint(finished, stopped, val)
    return {"step": step, "losses": losses, "val_loss": val[0], "val_bpb": val[1], "finished": finished,
            "stopped": stopped, "elapsed_s": time.monotonic() - t_start, "out_dir": str(run_dir)}


# -----------------------------------------------------------------------------
# Command line: `minicoder train`


def register_cli(sub) -> None:
    p = sub.add_parser("train", help="train a model on a directory of source files (default: the Python stdlib)")
    p.add_argument("--preset", default="tiny", choices=sorted(TRAIN_PRESETS),
                   help="training preset (TrainConfig) and, unless --model is given, model preset (default: tiny)")
    p.add_argument("--model", default=None, help="ModelConfig preset (default: the same name as --preset)")
    p.add_argument("--corpus", default=None, help="directory of source files (default: this Python's standard library)")
    p.add_argument("--data", default=None,
                   help="token directory written by `minicoder prepare` (instead of --corpus; needs --tokenizer)")
    p.add_argument("--ext", default=".py", help="file name ending to train on (default: .py)")
    p.add_argument("--val-fraction", type=float, default=0.03, help="share of files held out for validation (default: 0.03)")
    p.add_argument("--fim-rate", type=float, default=0.5,
                   help="share of training documents turned into FIM samples (default: 0.5, as DeepSeek-Coder)")
    p.add_argument("--tokenizer", default=None,
                   help="tokenizer.json to use (default: train a BPE tokenizer on the corpus, cached in --cache-dir)")
    p.add_argument("--vocab-size", type=int, default=4096,
                   help="vocabulary of the tokenizer trained when --tokenizer is not given (default: 4096)")
    p.add_argument("--cache-dir", default=".cache", help="where tokenizers and token files are cached (default: .cache)")
    p.add_argument("--out", default=None, help="run directory for checkpoints and logs (default: the preset's out_dir)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.add_argument("--stop-after", type=int, default=None,
                   help="stop after this step as if interrupted (the schedule still runs to --max-steps)")
    p.add_argument("--attn-impl", default=None, choices=["naive", "sdpa"],
                   help="attention path (default: the model preset's); both give the same function")
    for name, typ, helptext in [
        ("batch-size", int, "windows per micro-batch per process"), ("seq-len", int, "tokens per window"),
        ("grad-accum", int, "micro-batches per optimizer step, over all processes"),
        ("max-steps", int, "optimizer steps in the whole run"), ("lr", float, "peak learning rate"),
        ("warmup-steps", int, "linear warm-up steps"), ("weight-decay", float, "AdamW decay on matrices"),
        ("grad-clip", float, "clip the gradient norm to this (0: off)"),
        ("eval-interval", int, "steps between validation evaluations"),
        ("eval-iters", int, "validation micro-batches per evaluation"),
        ("checkpoint-interval", int, "steps between checkpoints"), ("log-interval", int, "steps between metric lines"),
        ("seed", int, "seed of the model's init and the data order"),
        ("time-limit-s", float, "stop cleanly after this many seconds, final evaluation included"),
        ("device", str, "auto, cpu, cuda or mps"), ("dtype", str, "auto (bf16 on cuda), float32 or bfloat16"),
    ]:
        p.add_argument(f"--{name}", type=typ, default=None, help=f"{helptext} (default: the preset's)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the model (default: the preset's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cli_train)


def _cli_train(args) -> int:
    from minicoder.tokenizer import Tokenizer

    progress = not args.no_progress
    if args.tokenizer:
        tok = Tokenizer.from_file(args.tokenizer)
    elif args.data:
        raise ValueError("--data needs the tokenizer its tokens were made with; pass --tokenizer path/to/tokenizer.json")
    else:
        tok = corpus_tokenizer(args.corpus, args.ext, args.vocab_size, args.val_fraction, args.cache_dir, progress)
    if args.data:
        data = TokenData.load(args.data)
        if data.meta.get("tokenizer_sha256") != tokenizer_fingerprint(tok):
            raise ValueError(f"{args.data} was tokenized with another tokenizer than {args.tokenizer}; "
                             "pass the tokenizer given to `minicoder prepare`")
    else:
        data = prepare_tokens(tok, args.corpus, args.ext, args.val_fraction, args.cache_dir,
                              fim_rate=args.fim_rate, progress=progress)
    model_overrides = {"vocab_size": tok.vocab_size}
    if args.attn_impl:
        model_overrides["attn_impl"] = args.attn_impl
    model_config = ModelConfig.from_preset(args.model or args.preset, **model_overrides)
    names = ["batch_size", "seq_len", "grad_accum", "max_steps", "lr", "warmup_steps", "weight_decay", "grad_clip",
             "eval_interval", "eval_iters", "checkpoint_interval", "log_interval", "seed", "time_limit_s", "device",
             "dtype", "compile"]
    overrides = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    if args.out:
        overrides["out_dir"] = args.out
    cfg = TrainConfig.from_preset(args.preset, **overrides)
    summary = train(model_config, cfg, data, tok, resume=args.resume, stop_after=args.stop_after, progress=progress)
    print(f"{cfg.out_dir}: step {summary['step']}, validation {summary['val_bpb']:.4f} bits/byte, "
          f"{summary['elapsed_s']:.0f} s; loss plot {Path(cfg.out_dir) / 'loss.png'}")
    return 0
