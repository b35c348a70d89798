"""Pretraining: AdamW, DeepSeek's multi-step learning rate, the training loop and exact resume.

The recipe is DeepSeek-Coder's (Guo et al., 2024, section 3.4 "Optimization"), which follows
DeepSeek LLM (2024, section 2.3):

    AdamW, beta1 = 0.9, beta2 = 0.95, weight decay 0.1, gradient clipping at norm 1.0
    lr(step) = lr * (step + 1) / warmup_steps          during warm-up (2000 steps at full scale)
             = lr                                      until 80% of the training tokens
             = lr * 0.316                              until 90%
             = lr * 0.316^2  (~10% of the peak)        to the end

(0.316 = sqrt(1/10); with a fixed batch, a share of the tokens is the same share of the steps.)

Stages (section 3.6, table 2): `TRAIN_PRESETS` has two recipes per size, each naming the ModelConfig
preset it trains (`TRAIN_PRESET_MODELS`):

    deepseek-coder-1.3b     stage 1: model deepseek-coder-1.3b-stage1 (4K, RoPE base 10,000, no scaling,
    deepseek-coder-6.7b              DeepSeek LLM's init std 0.006), 1,024 / 2,304 / 3,840 windows of 4,096
    deepseek-coder-33b               tokens a step, peak lr 5.3e-4 / 4.2e-4 / 3.5e-4, 1.8T tokens
    deepseek-coder-*-long   the 16K stage: the released model's config (base 100,000, linear x4, 16K),
                            weights from stage 1 (`init_from`), 512 windows of 16,384 tokens, 1,000
                            steps at stage 1's final rate (0.316^2 of its peak)

Weight decay applies to matrices (linear layers and the embeddings) and not to vectors (RMSNorm
gains; nothing here has a bias), as in LLaMA and nanoGPT. On a GPU the forward pass runs under
bf16 autocast with float32 master weights; on a CPU everything is float32.

One optimizer step takes `grad_accum` micro-batches of `batch_size` windows of `seq_len` tokens.
Every `checkpoint_interval` steps and at the end, rank 0 writes a checkpoint; checkpoint.py holds
that concept: the files of `out_dir/ckpt-000300/`, the atomic `latest` pointer, `load_checkpoint`
(which refuses a swapped tokenizer) and the RNG states. train.py re-exports its names
(`from minicoder.train import load_checkpoint` still works). `minicoder info RUN` prints what a
checkpoint holds without loading torch (train_config.py).
Resuming restores the weights, the optimizer, every RNG and the data generator, so N steps
straight and k steps + resume to N give bitwise-equal losses on a CPU.

Outputs beside the checkpoints: `metrics.jsonl`, one line per `log_interval` steps (step, tokens,
loss = the mean training loss since the previous line, lr, grad_norm, tokens_per_s) and one per
evaluation (val_loss in nats per token, val_bpb in bits per byte of source, `val_sampled_windows`:
these periodic figures come from `eval_iters` batches of random windows, the same ones each
time, so they are estimates), and `loss.png`. At the end of a run, `evaluate_split` scores the
whole validation split exactly (every token once, in non-overlapping windows of `seq_len`); that
figure is `val_bpb_full` in trainer.json and in `train()`'s summary, the one to report.

Stopping: Ctrl-C (SIGINT) lets the current step finish, writes a checkpoint, prints the command
that resumes (`--resume`) and raises `TrainingInterrupted`; a second Ctrl-C quits at once, keeping
the last checkpoint. `--resume`
restores the run's own configuration from trainer.json and refuses a changed one, except for the
run-control fields (`RUN_CONTROL`: time limit, device, compile, ...). An interrupted and resumed
run writes the same metrics.jsonl as an uninterrupted one, except for the wall-clock tokens_per_s.

Distributed (torchrun): rank and world size come from the RANK / LOCAL_RANK / WORLD_SIZE
environment variables (`DistInfo.from_env`). Every rank draws the same random windows and trains
on micro-batches rank, rank + world, ... of each step, so the global batch (and the data order)
is the same for any world size; only rank 0 writes logs and checkpoints. `grad_accum` counts
micro-batches across all ranks and must divide by the world size. Two ways to share the work
(`--parallel`):

    ddp    DistributedDataParallel: every rank holds the whole model, its gradients and AdamW's two
           moments (16 bytes a parameter in float32) and all-reduces (averages) the gradients on
           its last micro-batch of a step (`no_sync` before). Buffers are not broadcast: the only
           ones are the RoPE tables (and MoE routing biases), equal everywhere by construction.
    fsdp   FSDP2 (`fully_shard` on each block, then on the root; `shard_model`): a rank keeps
           1/world of every parameter, gradient and moment; each block's forward and backward
           all-gather its weights and the backward reduce-scatters (averages) its gradients, on
           the last micro-batch only (`set_requires_gradient_sync`). Memory per rank drops to
           about 16 / world bytes a parameter plus one block's gathered weights, for about 1.5x
           DDP's traffic. On a GPU the gathered weights are bf16 and gradients reduce in float32.

Either way the optimizer step and the losses are the same as one process's with the same global
batch, up to the order of float sums, and a checkpoint is the single-process format (under FSDP
every rank helps gather the full state dicts onto rank 0 first), so a run may resume under the
other mode or another world size. `--parallel fsdp` in one process trains unsharded.

Command line:

    minicoder train --preset tiny [--corpus DIR] [--out runs/train-tiny] [--time-limit-s 600]
    minicoder train --out runs/train-tiny --resume          # the run's own flags come from its checkpoint
    torchrun --nproc_per_node 8 -m minicoder.cli train --preset deepseek-coder-1.3b \
        --data tokens/ --tokenizer data_samples/tokenizers/deepseek-coder/tokenizer.json
    torchrun --nproc_per_node 8 -m minicoder.cli train --preset deepseek-coder-1.3b-long \
        --data tokens-16k/ --tokenizer ...                  # from runs/train-deepseek-coder-1.3b's weights
    torchrun --nproc_per_node 8 -m minicoder.cli train --preset deepseek-coder-33b --parallel fsdp ...

`minicoder train` writes to runs/train-<preset> unless given --out (runs/tiny is `make train-tiny`'s).
`make train-tiny` is a recipe on top of this module: minicoder/train_tiny.py.

Left out: tensor, pipeline and expert parallelism (needed past a few tens of billions of
parameters), sharded checkpoints (each FSDP rank writing its own shard, for models whose full
state does not fit rank 0's memory), DeepSeek's HAI-LLM framework, loss-spike handling, sequence
packing with per-document attention masks, and a graceful Ctrl-C under torchrun (the launcher
stops its workers itself; the last periodic checkpoint is what remains).
"""

import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import torch
import torch.nn.functional as F

from minicoder.checkpoint import (  # noqa: F401  (re-exported: `from minicoder.train import load_checkpoint`)
    CHECKPOINT_FILES,
    IMPL_FIELDS,
    STAGE_FIELDS,
    Checkpoint,
    _load_weights,
    _one_line,
    _read_json,
    _restore_rng,
    _rng_state,
    check_same_config,
    check_same_train_config,
    load_checkpoint,
    save_checkpoint,
    tokenizer_mismatch,
)
from minicoder.config import ModelConfig
from minicoder.data import (
    TokenData,
    bits_per_byte,
    corpus_tokenizer,
    prepare_tokens,
    tokenizer_fingerprint,
)
from minicoder.model import Transformer
from minicoder.scaling import flops_per_token, peak_flops_of
from minicoder.train_config import (  # noqa: F401  (re-exported: `from minicoder.train import TrainConfig`)
    DEVICES,
    DTYPES,
    RUN_CONTROL,
    TRAIN_PRESET_MODELS,
    TRAIN_PRESETS,
    TrainConfig,
    _ckpt_key,
    check_out_dir,
    earlier_checkpoint_advice,
    file_sha256,
    find_checkpoint,
    flag,
    list_checkpoints,
)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warm-up, then DeepSeek's steps.

    DeepSeek LLM (section 2.3), used by DeepSeek-Coder (section 3.4): during the first
    cfg.warmup_steps steps the rate climbs linearly, lr * (step + 1) / warmup_steps, reaching
    cfg.lr at the last warm-up step; then it stays at cfg.lr and is multiplied by cfg.decay_factor
    (0.316) once the step reaches each point of cfg.decay_at (shares of cfg.max_steps, (0.8, 0.9):
    a point is the step round(share * max_steps)). With warmup_steps 0 the first step runs at lr.

    >>> cfg = TrainConfig(lr=1.0, warmup_steps=10, max_steps=100)
    >>> [round(lr_at(s, cfg), 6) for s in (0, 4, 9, 10, 79, 80, 89, 90, 99)]
    [0.1, 0.5, 1.0, 1.0, 1.0, 0.316, 0.316, 0.099856, 0.099856]
    """
    # BEGIN ASSIGNMENT training
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    passed = sum(step >= round(share * cfg.max_steps) for share in cfg.decay_at)
    return cfg.lr * cfg.decay_factor ** passed
    # END ASSIGNMENT


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: matrices (2-D and up: linear weights, embeddings) decay; vectors (norm gains) don't.

    Returns two groups, in this order: {"params": [...], "weight_decay": weight_decay} with every
    trainable parameter of 2 or more dimensions, and {"params": [...], "weight_decay": 0.0} with the
    trainable ones of fewer. Each list follows model.parameters() order (a tied matrix appears once);
    parameters with requires_grad False are in neither.

    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))  # weights, biases, gains
    >>> decay, no_decay = param_groups(model, 0.1)
    >>> [tuple(p.shape) for p in decay["params"]], decay["weight_decay"]
    ([(2, 3)], 0.1)
    >>> [tuple(p.shape) for p in no_decay["params"]], no_decay["weight_decay"]
    ([(2,), (2,), (2,)], 0.0)
    """
    # BEGIN ASSIGNMENT training
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # END ASSIGNMENT


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
        raise ValueError(f"--device {cfg.device}: this torch build sees no CUDA GPU; use --device cpu (or auto)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--device mps: this torch build has no Apple MPS backend; use --device cpu (or auto)")
    if name.startswith("cuda:") and int(name[5:] or 0) >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s); pick cuda:0 to "
                         f"cuda:{torch.cuda.device_count() - 1}")
    device = torch.device(name)
    if cfg.dtype == "auto":
        dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    else:
        dtype = getattr(torch, cfg.dtype)
    return device, dtype


def autocast(device: torch.device, dtype: torch.dtype):
    return nullcontext() if dtype == torch.float32 else torch.autocast(device.type, dtype=dtype)


# -----------------------------------------------------------------------------
# FSDP2: sharding the model, and the full state dicts a checkpoint holds


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether `model` (or the module torch.compile wraps) was sharded by `shard_model`."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:
        return False
    return isinstance(getattr(model, "_orig_mod", model), FSDPModule)


def shard_model(model: Transformer, device: torch.device, dtype: torch.dtype, world_size: int) -> None:
    """FSDP2, in place: each block is one unit, the root (embedding, final norm, head) another.

    Between uses, each process keeps 1/world_size of every parameter (a DTensor sharded on dim 0),
    and its gradient and AdamW moments likewise. A unit's forward all-gathers its full parameters
    and frees them after; its backward gathers them again and reduce-scatters (averages) the
    gradients. On a GPU with a bf16 dtype the gathered copies are bf16 and the reduction is float32
    (MixedPrecisionPolicy); the sharded masters stay float32. The loop's bf16 autocast stays on:
    it keeps the softmaxes and the loss in float32 and casts where float32 buffers (the RoPE
    tables) meet bf16 activations, as under DDP. On a CPU (gloo) nothing is cast.

    DeepSeekMoE: an expert that gets no token on a rank has no gradient there, and FSDP2 would
    reduce-scatter a shorter list on that rank than on the others (a collective mismatch). A
    forward hook on each MoE block adds 0 * (the sum of its experts' parameters) to its output,
    which leaves the output and the other gradients exactly as they were and gives every expert a
    (zero) gradient on every rank; `drop_idle_expert_grads` then removes the gradients of the
    experts that no rank used, as one process would not have them.
    """
    try:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    except ImportError as e:
        raise ValueError(f"--parallel fsdp needs FSDP2 (torch.distributed.fsdp.fully_shard), which torch "
                         f"{torch.__version__} lacks ({_one_line(e)}); upgrade torch, or use --parallel ddp") from None
    mesh = init_device_mesh(device.type, (world_size,))
    mp = MixedPrecisionPolicy()
    if device.type == "cuda" and dtype != torch.float32:
        mp = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)

    def every_expert_gets_a_grad(module, args, output):
        y, stats = output
        touch = sum(p.sum() for p in module.experts.parameters())
        return y + 0.0 * touch.to(y.dtype), stats

    for block in model.layers:
        if hasattr(block.ffn, "experts"):
            block.ffn.register_forward_hook(every_expert_gets_a_grad)
        fully_shard(block, mesh=mesh, mp_policy=mp)
    fully_shard(model, mesh=mesh, mp_policy=mp)


def drop_idle_expert_grads(model: Transformer, counts: torch.Tensor) -> None:
    """Set to None the gradients of the experts that got no token in this step on any rank.

    counts: (n_moe_layers, n_routed) the step's all-reduced expert loads (RouterLog.counts). In one
    process such an expert (moe_impl "sorted" runs only the experts with tokens) has no gradient,
    so AdamW leaves it alone: no weight decay, no step on its old momentum. Under FSDP it got a
    zero gradient (`shard_model`'s hook); without this, AdamW would move it.
    """
    moe_blocks = [b.ffn for b in model.layers if hasattr(b.ffn, "experts")]
    for moe, loads in zip(moe_blocks, counts.tolist()):
        if moe.moe_impl == "naive":  # every expert runs on every token: all have gradients in one process too
            continue
        for expert, load in zip(moe.experts, loads):
            if load == 0:
                for p in expert.parameters():
                    p.grad = None


def _param_names(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The parameter names in the order a single process's optimizer.state_dict() numbers them."""
    names = {id(p): n for n, p in model.named_parameters()}
    return [names[id(p)] for group in optimizer.param_groups for p in group["params"]]


def gather_full_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """The whole model's and optimizer's state dicts, on CPU, on rank 0 (empty on the other ranks).

    Every rank must call it: each contributes its shards to the all-gathers. The optimizer's comes
    back keyed by parameter name; it is renumbered 0, 1, ... in param_groups order, as
    `optimizer.state_dict()` keys it in one process, so optimizer.pt is the same format either way.
    """
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    weights = get_model_state_dict(model, options=options)
    by_name = get_optimizer_state_dict(model, optimizer, options=options)
    if not by_name:
        return weights, by_name
    index = {n: i for i, n in enumerate(_param_names(model, optimizer))}
    return weights, {"state": dict(sorted((index[n], v) for n, v in by_name["state"].items())),
                     "param_groups": [{**g, "params": [index[n] for n in g["params"]]}
                                      for g in by_name["param_groups"]]}


def load_sharded_optimizer(model: torch.nn.Module, optimizer: torch.optim.Optimizer, full: dict) -> None:
    """Load a single-process optimizer state dict (keyed 0, 1, ...) into a sharded model's optimizer.

    Every rank passes the whole dict; each keeps its own shard of every moment.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    names = _param_names(model, optimizer)
    by_name = {"state": {names[i]: v for i, v in full["state"].items()},
               "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in full["param_groups"]]}
    set_optimizer_state_dict(model, optimizer, by_name, options=StateDictOptions(full_state_dict=True))


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
    if is_sharded(model) and dist.rank >= cfg.eval_iters % dist.world_size > 0:
        with autocast(device, dtype):  # FSDP: every forward all-gathers with all ranks; keep in step, discard
            model(x.to(device))
    if dist.world_size > 1:
        torch.distributed.all_reduce(total)
    model.train()
    return total.item() / cfg.eval_iters


@torch.no_grad()
def evaluate_split(model, data: TokenData, split: str = "val", seq_len: int | None = None, batch_size: int = 8,
                   device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                   dist: DistInfo | None = None, progress: bool = False) -> dict:
    """Score every token of a split exactly once; return its mean loss and bits per byte.

    The split's N tokens are cut into non-overlapping windows: window j feeds tokens
    [j*T, (j+1)*T) and predicts tokens [j*T + 1, (j+1)*T + 1), so the targets 1..N-1 are each
    predicted once, with the context of their own window (T = seq_len, the model's training
    context). The last window is shorter when T does not divide N - 1; it is scored too. Token 0
    has nothing before it and is not predicted (minicoder's documents carry no BOS to predict it
    from); its few bytes stay in the byte count. So, with `total` nats summed over the N - 1
    predictions and B source bytes in the split:

        loss = total / (N - 1)   nats per token;   bpb = total / (ln 2 * B) = bits_per_byte(loss, N - 1, B)

    N = 9 and T = 4: windows feed [0..3], [4..7] and predict [1..4], [5..8]: 8 tokens, 2 windows.

    Args:
        model: a Transformer (or a module with its call signature); it is put in eval mode and back.
        data: the prepared tokens; split: "val" or "train".
        seq_len: T; None means the model's max_seq_len.
        batch_size: full windows per forward pass.
        device: where to run (default: the model's); dtype: autocast dtype (float32 means none).
        dist: under torchrun, rank r scores batches r, r + world, ... and the sums are all-reduced.
        progress: show a tqdm bar.

    Returns {"loss": nats/token, "bpb": bits/byte, "tokens": N - 1, "bytes": B, "windows": count}.
    """
    from tqdm import tqdm

    tokens = data.splits[split]
    n = len(tokens)
    if n < 2:
        raise ValueError(f"split {split!r} has {n} token(s); at least 2 are needed to predict one")
    T = seq_len or model.config.max_seq_len
    device = device or next(model.parameters()).device
    dist = dist or DistInfo()
    starts = list(range(0, n - 1, T))  # window j starts at j*T; the last may hold fewer than T targets
    full = [s for s in starts if s + T + 1 <= n]
    batches = [full[i:i + batch_size] for i in range(0, len(full), batch_size)]
    if len(full) < len(starts):
        batches.append([starts[-1]])  # the short last window, on its own
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)

    def rows_of(batch: list[int]) -> torch.Tensor:
        length = min(T + 1, n - batch[0])
        return torch.from_numpy(np.stack([tokens.window(s, length) for s in batch]).astype(np.int64))  # (b, t+1)

    for i, batch in enumerate(tqdm(batches, desc=f"scoring {split}", unit="batch", disable=not progress)):
        if i % dist.world_size != dist.rank:
            continue
        rows = rows_of(batch)  # (b, t+1)
        x, y = rows[:, :-1].to(device), rows[:, 1:].to(device)  # (b, t) each
        with autocast(torch.device(device), dtype):
            logits = model(x)  # (b, t, V)
        nats = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="none")  # (b * t,)
        total += nats.double().sum()
    if is_sharded(model) and dist.rank >= len(batches) % dist.world_size > 0:
        with autocast(torch.device(device), dtype):  # FSDP: every forward all-gathers with all ranks; keep in step
            model(rows_of(batches[0])[:, :-1].to(device))
    if dist.world_size > 1:
        torch.distributed.all_reduce(total)
    model.train(was_training)
    n_bytes = tokens.n_bytes
    loss = total.item() / (n - 1)
    return {"loss": loss, "bpb": bits_per_byte(loss, n - 1, n_bytes), "tokens": n - 1, "bytes": n_bytes,
            "windows": len(starts)}


def read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_losses(metrics: list[dict], path: Path, title: str = "") -> None:
    """Training loss per step and validation loss at each evaluation, in nats/token, as a PNG.

    An MoE run gets a second panel: the expert-level balance loss L_ExpBal (1.0 is perfect balance)
    and each MoE layer's busiest expert's load over the mean load.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    moe = [m for m in metrics if "expert_loss" in m]
    fig = Figure(figsize=(7, 6.5 if moe else 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(2, 1, 1) if moe else fig.add_subplot()
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
    if train or val:
        ax.legend()
    if moe:
        ax2 = fig.add_subplot(2, 1, 2)
        steps = [m["step"] for m in moe]
        ax2.plot(steps, [m["expert_loss"] for m in moe], "k-", lw=1.5, label="L_ExpBal (mean over layers)")
        for layer in range(len(moe[0]["load_max_over_mean"])):
            ax2.plot(steps, [m["load_max_over_mean"][layer] for m in moe], lw=0.8,
                     label=f"MoE layer {layer}: max load / mean")
        ax2.axhline(1.0, color="grey", ls=":", lw=1)
        ax2.set_xlabel("step")
        ax2.set_ylabel("balance (1 = perfect)")
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


# -----------------------------------------------------------------------------
# The loop


def _keep_on_resume(m: dict, step: int, cfg: TrainConfig) -> bool:
    """Whether a metrics line written before a resume at `step` belongs to the continued run.

    Lines past the checkpoint go. At the checkpoint's own step, a training line stays, and so does
    an evaluation on the schedule; the extra evaluation that ended a stopped run does not (the
    uninterrupted run has none there), nor the final one of a finished run (it is written again).
    """
    if m["step"] != step:
        return m["step"] < step
    return "loss" in m or (step % cfg.eval_interval == 0 and step < cfg.max_steps)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped `train()` after a completed step, whose checkpoint was written.

    A KeyboardInterrupt, so a caller that does not catch it stops as Ctrl-C asks; `.summary` is
    what train() would have returned (stopped="interrupted", no final evaluation).
    """

    def __init__(self, summary: dict):
        super().__init__(f"interrupted at step {summary['step']}; checkpoint saved in {summary['out_dir']}")
        self.summary = summary


class _SigintFlag:
    """While active, the first Ctrl-C sets `.raised` (the loop stops after its step); a second one
    raises KeyboardInterrupt as usual. Only the main thread can take signals, so elsewhere it does nothing."""

    def __init__(self):
        self.raised, self._previous = False, None

    def _handle(self, signum, frame):
        if self.raised:
            raise KeyboardInterrupt
        self.raised = True
        print("\nCtrl-C: finishing this step, then saving a checkpoint (Ctrl-C again quits without saving)",
              file=sys.stderr, flush=True)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class RouterLog:
    """One step's MoE statistics: balance losses and per-layer expert loads, summed over micro-batches.

    `finish_step` all-reduces the loads across ranks and applies DeepSeek-V3's bias update to each
    MoE block when config.bias_update_speed > 0; `merged` folds the step into the running totals
    that the next metrics line reports: `balance_loss` (mean per step, the weighted sum),
    `expert_loss` (L_ExpBal, 1.0 when perfectly balanced), `expert_counts` (per MoE layer, the
    token-slots each expert received since the last line) and `load_max_over_mean` (per layer, the
    busiest expert's load over the mean: 1.0 is perfect balance).
    """

    def __init__(self, config: ModelConfig, device: torch.device):
        self.config, self.micro = config, 0
        self.balance = torch.zeros((), device=device)
        self.expert_loss = torch.zeros((), device=device)
        self.counts: torch.Tensor | None = None  # (n_moe_layers, n_routed)

    def add(self, stats: list) -> None:
        counts = torch.stack([s.expert_counts.detach().float() for s in stats])  # (n_moe_layers, n_routed)
        self.counts = counts if self.counts is None else self.counts + counts
        self.balance += sum(s.balance_loss.detach() for s in stats)
        self.expert_loss += sum(s.expert_loss.detach() for s in stats) / len(stats)
        self.micro += 1

    def finish_step(self, model, dist) -> None:
        if dist.world_size > 1:
            torch.distributed.all_reduce(self.counts)
        if self.config.bias_update_speed > 0:
            moe_blocks = [b.ffn for b in model.layers if hasattr(b.ffn, "update_bias")]
            for moe, counts in zip(moe_blocks, self.counts):
                moe.update_bias(counts)

    def merged(self, totals: dict | None) -> dict:
        counts = self.counts.cpu()
        if totals is not None:
            counts = counts + torch.tensor(totals["expert_counts"])
        steps = (totals or {}).get("_steps", 0) + 1
        balance = (totals or {}).get("_balance_sum", 0.0) + self.balance.item() / max(self.micro, 1)
        expert = (totals or {}).get("_expert_sum", 0.0) + self.expert_loss.item() / max(self.micro, 1)
        out = {"balance_loss": balance / steps, "expert_loss": expert / steps,
               "expert_counts": counts.tolist(),
               "load_max_over_mean": (counts.max(dim=1).values / counts.mean(dim=1).clamp(min=1e-9)).tolist(),
               "_steps": steps, "_balance_sum": balance, "_expert_sum": expert}
        return out

    @staticmethod
    def report(totals: dict | None) -> dict:
        """The metrics-line fields of `merged`'s totals (none for a dense model)."""
        return {k: v for k, v in (totals or {}).items() if not k.startswith("_")}


def fit_steps_to_time(cfg: TrainConfig, step: int, steps_done: int, seconds_done: float,
                      seconds_left: float, most: int, margin: float = 0.9) -> TrainConfig:
    """cfg with max_steps set to what the pace so far fits in `seconds_left`, at most `most`.

    Only while the first decay point (a share of max_steps) is still ahead, so the schedule the run
    has followed so far, warm-up and constant rate, is the same under the new max_steps; the new
    max_steps keeps that point ahead of `step`. It can shrink and grow again (up to `most`, the
    steps first planned) as the pace changes. The pace is seconds_done / steps_done, evaluations
    and checkpoints included, and only `margin` of the time left is planned, which keeps the rest
    for a slower stretch later. With 3,000 steps planned, 100 done in 60 s and 300 s left: 0.6 s a
    step, 450 more fit in 270 s, so max_steps becomes 550 (its first drop, at 80%, is step 440).
    """
    first_drop = round(cfg.decay_at[0] * cfg.max_steps) if cfg.decay_at else cfg.max_steps
    if steps_done <= 0 or step >= first_drop or seconds_left <= 0:
        return cfg
    fits = min(most, step + int(margin * seconds_left / (seconds_done / steps_done)))
    least = math.floor(step / cfg.decay_at[0]) + 1 if cfg.decay_at else step + 1  # first drop still ahead
    steps = max(fits, least, cfg.warmup_steps + 1)
    return cfg if steps == cfg.max_steps else dataclasses.replace(cfg, max_steps=steps)


def train(model_config: ModelConfig, cfg: TrainConfig, data: TokenData, tokenizer, resume: bool = False,
          stop_after: int | None = None, progress: bool = True, on_step=None, run_args: dict | None = None,
          resume_command: str | None = None) -> dict:
    """Train (or resume) a model; return a summary with the per-step losses and the final validation.

    Args:
        model_config: the model's shape; vocab_size must cover the tokenizer's ids.
        cfg: the run; cfg.out_dir receives checkpoints, metrics.jsonl and loss.png.
        data: prepared tokens with "train" and "val" splits.
        tokenizer: saved into every checkpoint.
        resume: continue from the latest checkpoint in cfg.out_dir (required if one exists). cfg must
            equal the checkpoint's training configuration outside RUN_CONTROL, else ValueError.
        stop_after: stop (with a checkpoint) once this step is done, as if interrupted; the schedule
            still runs to cfg.max_steps.
        progress: show a tqdm bar and print the evaluations.
        on_step: called as on_step(step) after each completed step, on every rank (tests interrupt
            a run with it).
        run_args: a JSON-ready dict kept in trainer.json as "run_args" (`minicoder train` records
            its data flags there, so that `--resume` rebuilds the same data).
        resume_command: what to print after Ctrl-C as the way to continue (default:
            `minicoder train --out <out_dir> --resume`; a recipe names its own command).

    Ctrl-C lets the current step finish, saves it, and raises `TrainingInterrupted` (a
    KeyboardInterrupt) once the checkpoint is written; a second Ctrl-C raises KeyboardInterrupt at once.

    Returns a dict: step; losses (this call's steps); val_loss and val_bpb (the sampled estimate at
    the last step); val_loss_full, val_bpb_full, val_tokens_full (`evaluate_split` on the whole
    validation split; None if cfg.eval_full is off or the run was interrupted); finished; stopped
    (None, "stop_after", "time_limit" or "interrupted"); elapsed_s; out_dir.
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
    fsdp = cfg.parallel == "fsdp" and dist.world_size > 1
    if cfg.parallel == "fsdp" and dist.world_size == 1 and progress:
        print("--parallel fsdp in one process: nothing to shard over, training unsharded", file=sys.stderr)
    optimizer_state = None  # a checkpoint's, loaded once the model is wrapped and its optimizer made
    data_gen = torch.Generator().manual_seed(cfg.seed)  # the same on every rank: see the module docstring
    step, train_time, since_log = 0, 0.0, []  # since_log: losses since the last metrics line
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
        if "train_config" in state:
            check_same_train_config(existing, state["train_config"], cfg)
        if state.get("data_key") != data.key:
            raise ValueError(f"checkpoint {existing} was trained on other tokens (another corpus or tokenizer); "
                             "pass the same --corpus/--tokenizer, or another --out to start a new run")
        _load_weights(model, existing)  # every rank loads the whole model, before any sharding
        try:
            optimizer_state = torch.load(existing / "optimizer.pt", weights_only=True, map_location=device)
        except Exception as e:
            raise ValueError(f"{existing / 'optimizer.pt'} is corrupt ({_one_line(e)}); "
                             f"{earlier_checkpoint_advice(existing)}") from None
        _restore_rng(existing, state, data_gen)
        step, train_time = state["step"], state.get("train_time_s", 0.0)
        since_log = list(state.get("since_log", []))
    elif cfg.init_from is not None:
        source = find_checkpoint(cfg.init_from)
        if source is None:
            raise FileNotFoundError(f"init_from={cfg.init_from} holds no checkpoint; train that stage first "
                                    "(e.g. the stage-1 preset), or pass --init-from none for random weights")
        check_same_config(source, _read_json(source / "config.json"), model_config, ignore=(*IMPL_FIELDS, *STAGE_FIELDS),
                          fix="--init-from must name a run of the same model shape (only context and RoPE may differ)")
        _load_weights(model, source)

    metrics_path = run_dir / "metrics.jsonl"
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        kept = [m for m in read_metrics(metrics_path) if resume and _keep_on_resume(m, step, cfg)]
        metrics_path.write_text("".join(json.dumps(m) + "\n" for m in kept))

    raw_model = model
    if fsdp:
        shard_model(model, device, dtype, dist.world_size)  # in place: raw_model is the sharded model too
    optimizer = make_optimizer(model, cfg, device)  # under FSDP, of the shards
    if optimizer_state is not None:
        try:
            if fsdp:
                load_sharded_optimizer(model, optimizer, optimizer_state)
            else:
                optimizer.load_state_dict(optimizer_state)
        except Exception as e:
            raise ValueError(f"{existing / 'optimizer.pt'} does not fit this model ({_one_line(e)}); "
                             f"{earlier_checkpoint_advice(existing)}") from None
    if cfg.compile:
        model = torch.compile(model)
    if dist.world_size > 1 and not fsdp:
        from torch.nn.parallel import DistributedDataParallel

        # broadcast_buffers=False: the only buffers are the RoPE tables, equal on every rank by construction.
        # An MoE step may route no token to some expert: its weights then get no gradient this step.
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                        broadcast_buffers=False, find_unused_parameters=model_config.is_moe)
    own_micro = [m for m in range(cfg.grad_accum) if m % dist.world_size == dist.rank]
    sampled_windows = cfg.eval_iters * cfg.batch_size

    def log(record: dict) -> None:
        if dist.is_main:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")

    def evaluate() -> tuple[float, float]:
        t = time.monotonic()
        val_loss = estimate_loss(model, data, "val", cfg, device, dtype, dist)
        bpb = data.bits_per_byte("val", val_loss)
        log({"step": step, "tokens": step * cfg.tokens_per_step, "val_loss": val_loss, "val_bpb": bpb,
             "val_sampled_windows": sampled_windows})
        timing["eval"] = time.monotonic() - t
        return val_loss, bpb

    def checkpoint(finished: bool, stopped: str | None, val: tuple[float, float] | None, full: dict | None) -> Path:
        t = time.monotonic()
        path = None
        weights = moments = None
        if fsdp:  # every rank sends its shards; rank 0 receives the whole model
            weights, moments = gather_full_state(raw_model, optimizer)
        if dist.is_main:
            tensors, plain = _rng_state(data_gen)
            state = {"step": step, "tokens": step * cfg.tokens_per_step, "finished": finished, "stopped": stopped,
                     "train_time_s": train_time + time.monotonic() - t_start, "data_key": data.key,
                     "val_loss": val[0] if val else None, "val_bpb": val[1] if val else None,
                     "val_sampled_windows": sampled_windows,
                     "val_loss_full": full["loss"] if full else None, "val_bpb_full": full["bpb"] if full else None,
                     "val_tokens_full": full["tokens"] if full else None,
                     "since_log": since_log, "bos": False,  # documents are separated by EOS only (data.py)
                     "world_size": dist.world_size, "train_config": dataclasses.asdict(cfg), "rng": plain,
                     "run_args": run_args}
            path = save_checkpoint(run_dir, raw_model, optimizer, tokenizer, state, tensors, cfg.keep_checkpoints,
                                   model_state=weights, optimizer_state=moments)
            plot_losses(read_metrics(metrics_path), run_dir / "loss.png", title=str(run_dir))
        if dist.world_size > 1:
            torch.distributed.barrier()
        timing["checkpoint"] = time.monotonic() - t
        return path

    def reserve_s() -> float:
        """Seconds the end of the run needs: the final evaluations and checkpoint (estimated)."""
        per_window = timing["eval"] / sampled_windows if "eval" in timing else \
            timing["step"] / (3 * cfg.grad_accum * cfg.batch_size)  # a forward pass ~ 1/3 of a step
        reserve = per_window * sampled_windows + timing.get("checkpoint", 1.0)
        if cfg.eval_full:
            reserve += per_window * len(data.splits["val"]) / cfg.seq_len
        return reserve

    def stop_reason(extra: float, interrupt: bool) -> str | None:
        """"interrupted" after a Ctrl-C, "time_limit" if `extra` more seconds plus the final evaluations
        and checkpoint would pass the limit, else None; every rank takes the same decision."""
        late = False
        if cfg.time_limit_s is not None:
            late = time.monotonic() - t_start + extra + reserve_s() > cfg.time_limit_s
        if dist.world_size > 1:
            flags = torch.tensor([float(late), float(interrupt)], device=device)
            torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
            late, interrupt = bool(flags[0].item()), bool(flags[1].item())
        return "interrupted" if interrupt else "time_limit" if late else None

    timing = {"step": 0.0}
    losses: list[float] = []
    stopped, val, val_step, full = None, None, -1, None
    bar = tqdm(total=cfg.max_steps, initial=step, unit="step", disable=not (progress and dist.is_main),
               dynamic_ncols=True)
    t_log, steps_timed = time.monotonic(), 0
    router_totals: dict | None = None  # MoE: balance losses and expert loads since the last metrics line
    # Model FLOPs (scaling.py: 6N + attention per token) and, on a known GPU, its dense bf16 peak for MFU.
    flops_per_tok = flops_per_token(model_config, cfg.seq_len)
    peak_flops = peak_flops_of(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    t_loop, step_begin, planned_steps = time.monotonic(), step, cfg.max_steps  # for fit_to_time_limit
    model.train()
    with _SigintFlag() as sigint:
        while step < cfg.max_steps:
            if stop_after is not None and step >= stop_after:
                stopped = "stop_after"
                break
            stopped = stop_reason(timing["step"], sigint.raised)
            if stopped:
                break
            t_step = time.monotonic()
            lr = lr_at(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            gen_state = data_gen.get_state()
            loss_sum = torch.zeros((), device=device)
            router = RouterLog(model_config, device) if model_config.is_moe else None
            try:
                for micro in range(cfg.grad_accum):
                    x, y = data.get_batch("train", cfg.batch_size, cfg.seq_len, data_gen)  # (B, T) each, on every rank
                    if micro not in own_micro:
                        continue
                    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                    # DDP all-reduces (FSDP reduce-scatters) gradients on this rank's last micro-batch only.
                    last = micro == own_micro[-1]
                    if fsdp:
                        raw_model.set_requires_gradient_sync(last)
                    sync = nullcontext() if dist.world_size == 1 or fsdp or last else model.no_sync()
                    with sync:
                        with autocast(device, dtype):
                            if router is None:
                                logits = model(x)  # (B, T, V)
                                loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
                                objective = loss
                            else:  # DeepSeekMoE: the LM loss plus the balance losses of section 2.2.3
                                logits, stats = model(x, return_router_stats=True)  # (B, T, V), per MoE block
                                loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
                                objective = loss + raw_model.balance_loss(stats)
                                router.add(stats)
                        (objective / len(own_micro)).backward()
                    loss_sum += loss.detach()
            except KeyboardInterrupt:  # raised before the update: undo this step's draws, keep the last one
                if dist.world_size > 1:
                    raise  # the other ranks are waiting in an all-reduce; the last checkpoint stands
                data_gen.set_state(gen_state)
                optimizer.zero_grad(set_to_none=True)
                stopped = "interrupted"
                break
            if router is not None:
                router.finish_step(raw_model, dist)  # the loads, all-reduced; V3's bias update
                if fsdp:
                    drop_idle_expert_grads(raw_model, router.counts)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(),
                                                       cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
            if hasattr(grad_norm, "full_tensor"):  # FSDP: a DTensor, already reduced over the shards
                grad_norm = grad_norm.full_tensor()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if dist.world_size > 1:
                torch.distributed.all_reduce(loss_sum)
            loss_value = loss_sum.item() / cfg.grad_accum
            losses.append(loss_value)
            since_log.append(loss_value)
            if router is not None:
                router_totals = router.merged(router_totals)
            timing["step"] = time.monotonic() - t_step
            steps_timed += 1
            bar.update(1)
            if step % cfg.log_interval == 0 or step == cfg.max_steps:
                tok_s = steps_timed * cfg.tokens_per_step / (time.monotonic() - t_log)
                mean_loss = sum(since_log) / len(since_log)  # over the steps since the last line, resumes included
                speed = {"tokens_per_s": tok_s, "flops_per_s": tok_s * flops_per_tok}  # the job's, all ranks
                if peak_flops is not None:
                    speed["mfu"] = speed["flops_per_s"] / (peak_flops * dist.world_size)
                log({"step": step, "tokens": step * cfg.tokens_per_step, "loss": mean_loss, "lr": lr,
                     "grad_norm": grad_norm.item(), **speed, **RouterLog.report(router_totals)})
                router_totals = None
                bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}", tok_s=f"{tok_s:,.0f}",
                                **({"mfu": f"{speed['mfu']:.1%}"} if "mfu" in speed else {}))
                t_log, steps_timed, since_log = time.monotonic(), 0, []
            if step % cfg.eval_interval == 0 and step < cfg.max_steps:
                if stop_reason(timing.get("eval", 0.0), False) == "time_limit":  # keep the time for the final one
                    stopped = "time_limit"
                    break
                val, val_step = evaluate(), step
                if progress and dist.is_main:
                    bar.write(f"step {step}: val loss {val[0]:.4f}, {val[1]:.4f} bits/byte "
                              f"(sampled: {sampled_windows} windows)")
            if step % cfg.checkpoint_interval == 0 and step < cfg.max_steps and stop_after != step:
                checkpoint(False, None, val, None)
            if (cfg.fit_to_time_limit and cfg.time_limit_s is not None and dist.world_size == 1
                    and step % cfg.log_interval == 0):
                cfg = fit_steps_to_time(cfg, step, step - step_begin, time.monotonic() - t_loop,
                                        cfg.time_limit_s - (time.monotonic() - t_start) - reserve_s(), planned_steps)
                bar.total = cfg.max_steps
            if on_step is not None:
                on_step(step)
        bar.close()
        finished = step >= cfg.max_steps
        if stopped == "interrupted":  # save now; the resumed run evaluates
            val = val if val_step == step else None
        else:
            if val is None or val_step != step:
                val = evaluate()
            if cfg.eval_full:
                full = evaluate_split(raw_model, data, "val", cfg.seq_len, cfg.batch_size, device, dtype, dist,
                                      progress=progress and dist.is_main)
            if dist.is_main and progress:
                print(f"step {step}: val loss {val[0]:.4f}, {val[1]:.4f} bits/byte (sampled: {sampled_windows} "
                      f"windows; {stopped or 'finished'})")
                if full:
                    print(f"step {step}: full validation split ({full['tokens']:,} tokens, each once): "
                          f"{full['loss']:.4f} nats/token, {full['bpb']:.4f} bits/byte")
        path = checkpoint(finished, stopped, val, full)
    summary = {"step": step, "losses": losses, "val_loss": val[0] if val else None,
               "val_bpb": val[1] if val else None, "val_loss_full": full["loss"] if full else None,
               "val_bpb_full": full["bpb"] if full else None, "val_tokens_full": full["tokens"] if full else None,
               "finished": finished, "stopped": stopped, "elapsed_s": time.monotonic() - t_start,
               "out_dir": str(run_dir)}
    if stopped == "interrupted":
        if dist.is_main:
            print(f"interrupted: saved {path} (step {step} of {cfg.max_steps}); continue with:\n"
                  f"    {resume_command or f'minicoder train --out {run_dir} --resume'}", file=sys.stderr, flush=True)
        raise TrainingInterrupted(summary)
    return summary


# -----------------------------------------------------------------------------
# Command line: `minicoder train`

# Flags that fix the data; recorded in trainer.json ("run_args") and restored by --resume.
DATA_FLAGS = MappingProxyType({"corpus": None, "data": None, "tokenizer": None, "ext": ".py", "val_fraction": 0.03,
                               "fim_rate": 0.5, "vocab_size": 4096})
_PATH_FLAGS = ("corpus", "data", "tokenizer")
# TrainConfig fields that have a flag of their own.
TRAIN_FLAGS = ("batch_size", "seq_len", "grad_accum", "max_steps", "lr", "warmup_steps", "weight_decay", "grad_clip",
               "eval_interval", "eval_iters", "checkpoint_interval", "log_interval", "seed", "time_limit_s", "device",
               "dtype", "compile", "parallel", "eval_full", "init_from")


# The parser is in minicoder/cli.py, which loads this module only when the command runs.


def _given_run_args(args) -> dict:
    """The preset, model and data flags given on this command line (paths made absolute)."""
    given = {k: getattr(args, k) for k in ("preset", "model", *DATA_FLAGS) if getattr(args, k) is not None}
    for k in _PATH_FLAGS:
        if k in given:
            given[k] = str(Path(given[k]).resolve())
    return given


def _cli_train(args) -> int:
    from minicoder.config import PRESETS
    from minicoder.tokenizer import Tokenizer

    progress = not args.no_progress
    given = _given_run_args(args)
    # Everything a user can get wrong about --out is checked here, before minutes of tokenizing.
    out = check_out_dir(args.out or f"runs/train-{args.preset or 'tiny'}")
    overrides = {n: getattr(args, n) for n in TRAIN_FLAGS if getattr(args, n) is not None}
    if args.keep is not None:
        overrides["keep_checkpoints"] = args.keep
    if isinstance(overrides.get("init_from"), str) and overrides["init_from"].lower() == "none":
        overrides["init_from"] = None
    ckpt = find_checkpoint(out)
    if args.resume and ckpt is None:
        raise FileNotFoundError(f"--resume given but {out} holds no checkpoint; drop --resume to start a new run, "
                                "or pass the run's --out")
    if not args.resume and ckpt is not None:
        raise ValueError(f"--out {out} already holds a checkpoint ({ckpt.name}); pass --resume to continue it, "
                         "or choose another --out")
    if args.data and not (Path(args.data) / "meta.json").is_file():
        raise FileNotFoundError(f"--data {args.data} holds no meta.json; make the tokens with `minicoder prepare "
                                f"--corpus DIR --tokenizer TOKENIZER --out {args.data}`")
    if args.tokenizer and not Path(args.tokenizer).is_file():
        raise FileNotFoundError(f"--tokenizer {args.tokenizer} not found; check the path")
    if ckpt is not None:  # the run's own configuration, from its checkpoint
        state = _read_json(ckpt / "trainer.json")
        recorded = state.get("run_args") or {}
        clash = [k for k, v in given.items() if k in recorded and recorded[k] != v]
        if clash:
            verb = "conflicts" if len(clash) == 1 else "conflict"
            raise ValueError(" and ".join(f"{flag(k)} {given[k]}" for k in clash) + f" {verb} with the checkpoint's "
                             + ", ".join(f"{k}={recorded[k]}" for k in clash) + f" ({ckpt}); --resume continues the "
                             "run as it was configured: drop the flag(s), or pass another --out to start a new run")
        run_args = {**DATA_FLAGS, "preset": "tiny", **recorded, **given}
        tok = Tokenizer.from_file(ckpt / "tokenizer.json")
        saved = _read_json(ckpt / "config.json")
        if args.attn_impl:
            saved["attn_impl"] = args.attn_impl
        model_config = ModelConfig.from_dict(saved)
        cfg = TrainConfig.from_dict({**state.get("train_config", {}), **overrides, "out_dir": str(out)})
        resolve_device(cfg, DistInfo.from_env())
    else:
        run_args = {**DATA_FLAGS, "preset": "tiny", **given}
        preset = run_args["preset"]
        model_name = TRAIN_PRESET_MODELS[preset]
        if args.model is not None and args.model not in PRESETS:
            raise ValueError(f"unknown model preset {args.model!r} (--model); choose one of: {', '.join(PRESETS)}")
        if args.model is not None and args.model != model_name:
            trains_it = [t for t, m in TRAIN_PRESET_MODELS.items() if m == args.model]
            hint = f"use --preset {trains_it[0]}, which trains it" if trains_it else "no training preset trains it"
            raise ValueError(f"--model {args.model} disagrees with --preset {preset}, whose recipe trains "
                             f"{model_name}; drop --model, or {hint}")
        run_args["model"] = model_name
        cfg = TrainConfig.from_preset(preset, **overrides, out_dir=str(out))  # bad flags fail before the work
        max_seq_len = ModelConfig.from_preset(model_name).max_seq_len
        if cfg.seq_len > max_seq_len:
            raise ValueError(f"--seq-len {cfg.seq_len} exceeds the context of model {model_name} ({max_seq_len}); "
                             f"lower --seq-len")
        resolve_device(cfg, DistInfo.from_env())  # --device cuda without a GPU fails here, not after the tokenizer
        if run_args["tokenizer"]:
            tok = Tokenizer.from_file(run_args["tokenizer"])
        elif run_args["data"]:
            raise ValueError("--data needs the tokenizer its tokens were made with; pass --tokenizer path/to/tokenizer.json")
        else:
            tok = corpus_tokenizer(run_args["corpus"], run_args["ext"], run_args["vocab_size"],
                                   run_args["val_fraction"], args.cache_dir, progress)
        model_overrides = {"vocab_size": tok.vocab_size}
        if args.attn_impl:
            model_overrides["attn_impl"] = args.attn_impl
        model_config = ModelConfig.from_preset(model_name, **model_overrides)
    if run_args["data"]:
        data = TokenData.load(run_args["data"])
        if data.meta.get("tokenizer_sha256") != tokenizer_fingerprint(tok):
            raise ValueError(f"{run_args['data']} was tokenized with another tokenizer than {run_args['tokenizer']}; "
                             "pass the tokenizer given to `minicoder prepare`")
    else:
        data = prepare_tokens(tok, run_args["corpus"], run_args["ext"], run_args["val_fraction"], args.cache_dir,
                              fim_rate=run_args["fim_rate"], progress=progress)
    try:
        summary = train(model_config, cfg, data, tok, resume=ckpt is not None, stop_after=args.stop_after,
                        progress=progress, run_args=run_args)
    except TrainingInterrupted:
        return 130  # train() printed where it saved and how to resume
    except KeyboardInterrupt:
        print(f"interrupted without saving; the last checkpoint in {out} continues with: "
              f"minicoder train --out {out} --resume", file=sys.stderr)
        return 130
    if summary["val_bpb_full"] is not None:
        figure = f"validation {summary['val_bpb_full']:.4f} bits/byte (full split, {summary['val_tokens_full']:,} tokens)"
    else:
        figure = f"validation {summary['val_bpb']:.4f} bits/byte (sampled)"
    print(f"{out}: step {summary['step']}, {figure}, {summary['elapsed_s']:.0f} s; loss plot {out / 'loss.png'}")
    if not summary["finished"]:
        print(f"stopped ({summary['stopped']}) at step {summary['step']} of {cfg.max_steps}; continue with: "
              f"minicoder train --out {out} --resume")
    return 0
