"""What a training run is: `TrainConfig`, its named presets, and the run directory's checks.

Kept apart from train.py, which loads torch, so that the command line (`minicoder train --help`)
and `minicoder info` can read them in a fraction of a second. train.py re-exports every name here.

The presets follow DeepSeek-Coder (Guo et al., 2024, sections 3.4 and 3.6); train.py's docstring
gives the recipe. Left out: anything that needs torch (the schedule's use, devices, the loop).
"""

import dataclasses
import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType


def flag(field: str) -> str:
    """The command-line flag of a TrainConfig field: "max_steps" -> "--max-steps"."""
    return "--" + field.replace("_", "-")


DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16")
PARALLEL = ("ddp", "fsdp")


@dataclass
class TrainConfig:
    """Everything about a training run except the model's shape (that is ModelConfig).

    Attributes:
        batch_size: windows per micro-batch, per process.
        seq_len: tokens per window; at most the model's max_seq_len.
        grad_accum: micro-batches per optimizer step, summed over all processes.
        max_steps: optimizer steps in the whole run; the schedule's 80%/90% points are shares of it.
            0 trains nothing: the run evaluates and checkpoints its initial weights.
        lr: peak learning rate.
        warmup_steps: linear warm-up from lr / warmup_steps to lr (DeepSeek: 2000).
        decay_at: shares of the run after which the rate is multiplied by `decay_factor`; () keeps
            the rate constant after warm-up (the 16K stage).
        decay_factor: multiplier at each point of `decay_at` (DeepSeek: 0.316 = sqrt(0.1)).
        beta1, beta2, eps: AdamW moments (DeepSeek: 0.9, 0.95).
        weight_decay: AdamW decoupled decay on matrices only (DeepSeek: 0.1).
        grad_clip: clip the global gradient norm to this (DeepSeek: 1.0); 0 turns clipping off.
        eval_interval: estimate validation loss every this many steps (and at the end).
        eval_iters: validation micro-batches per periodic estimate (the same random windows every time).
        eval_full: at the end, also score every validation token once (`evaluate_split`); its cost
            is one forward pass over the split, reserved within time_limit_s.
        checkpoint_interval: write a checkpoint every this many steps (and at the end).
        keep_checkpoints: how many of the newest checkpoints a run directory keeps (`--keep`, at
            least 1); the default 2 leaves an earlier one to go back to if the newest is damaged.
        log_interval: append a metrics line every this many steps.
        seed: seeds the model's initialization and the data order.
        device: "auto" (cuda if available, else cpu), "cpu", "cuda" or "mps".
        dtype: "auto" (bfloat16 autocast on cuda, float32 elsewhere), "float32" or "bfloat16".
        compile: wrap the model in torch.compile (worth it on a GPU; slow to start on a CPU).
        parallel: how torchrun's processes share the model: "ddp" (each holds all of it and the
            gradients are all-reduced) or "fsdp" (FSDP2: each block's parameters, gradients and
            AdamW moments are sharded over the processes). Either way checkpoints are the
            single-process format, so a run may resume under the other mode or another world size.
            A single process trains unsharded under either.
        time_limit_s: stop cleanly after this many seconds of this process's training, including
            the final evaluation and checkpoint; None for no limit.
        fit_to_time_limit: with time_limit_s, set max_steps during the run, while the first decay
            point is still ahead, to the steps the measured pace fits in the limit (never more than
            first planned), so a slow or
            slowed-down machine still runs the whole schedule (warm-up, both drops) instead of being
            cut before its decay. Single process only (ignored under torchrun). The shortened
            max_steps is what trainer.json records and what a resume continues.
        init_from: a run or checkpoint directory whose weights start this run (the 16K stage starts
            from stage 1's); its model may differ in context and RoPE only. The optimizer and the
            schedule start fresh. Ignored on resume. None: random init (ModelConfig.init_scheme).
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
    keep_checkpoints: int = 2
    log_interval: int = 10
    seed: int = 1337
    device: str = "auto"
    dtype: str = "auto"
    compile: bool = False
    parallel: str = "ddp"
    time_limit_s: float | None = None
    fit_to_time_limit: bool = False
    eval_full: bool = True
    init_from: str | None = None
    out_dir: str = "runs/train"

    def __post_init__(self):
        # Each message names the field and the flag that sets it (`--lr` for lr), so it reads right
        # both from the command line and from Python.
        self.decay_at = tuple(self.decay_at)
        for name in ("batch_size", "seq_len", "grad_accum", "max_steps", "eval_interval", "eval_iters",
                     "checkpoint_interval", "log_interval", "keep_checkpoints"):
            value = getattr(self, name)
            least = 0 if name == "max_steps" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{flag(name)} must be an integer >= {least}, got {value!r}")
        for name in ("lr", "decay_factor", "weight_decay", "grad_clip", "beta1", "beta2", "eps"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{flag(name)} must be a finite number, got {getattr(self, name)}")
        if self.max_steps > 0 and not 0 <= self.warmup_steps < self.max_steps:  # 0 steps: no schedule to check
            raise ValueError(f"--warmup-steps {self.warmup_steps} must be at least 0 and below --max-steps "
                             f"{self.max_steps}; lower --warmup-steps or raise --max-steps")
        if any(not 0 < d < 1 for d in self.decay_at) or list(self.decay_at) != sorted(self.decay_at):
            raise ValueError(f"decay_at={self.decay_at} must be increasing shares in (0, 1), e.g. (0.8, 0.9)")
        if self.lr <= 0:
            raise ValueError(f"--lr must be positive, got {self.lr}")
        if self.decay_factor <= 0:
            raise ValueError(f"decay_factor must be positive, got {self.decay_factor}; DeepSeek uses 0.316")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError(f"--weight-decay and --grad-clip must be 0 or more, got {self.weight_decay} and "
                             f"{self.grad_clip}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"betas must be in [0, 1), got ({self.beta1}, {self.beta2}); DeepSeek uses (0.9, 0.95)")
        if self.device not in DEVICES and not (self.device.startswith("cuda:") and self.device[5:].isdigit()):
            raise ValueError(f"--device {self.device}: unknown device; choose one of: {', '.join(DEVICES)} (or cuda:N)")
        if self.dtype not in DTYPES:
            raise ValueError(f"--dtype {self.dtype}: unknown dtype; choose one of: {', '.join(DTYPES)}")
        if self.parallel not in PARALLEL:
            raise ValueError(f"--parallel {self.parallel}: unknown mode; choose ddp (replicate the model, all-reduce "
                             "the gradients) or fsdp (shard it, FSDP2)")
        if self.time_limit_s is not None and not (self.time_limit_s > 0 and math.isfinite(self.time_limit_s)):
            raise ValueError(f"--time-limit-s must be a positive number of seconds, got {self.time_limit_s}")

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


# Fields that say how this process runs, not what the run is: `--resume` may change them.
RUN_CONTROL = ("time_limit_s", "fit_to_time_limit", "device", "compile", "parallel", "eval_full", "init_from", "out_dir",
               "keep_checkpoints")

# DeepSeek-Coder, table 2 and section 3.4: stage 1 sees 1.8T tokens in windows of 4,096; the rate
# warms up for 2,000 steps. Micro-batch x grad_accum = the paper's batch; set grad_accum to fit your GPUs.
_STAGE1_TOKENS = 1.8e12


def _stage1(size: str, batch_size: int, grad_accum: int, lr: float) -> MappingProxyType:
    steps = round(_STAGE1_TOKENS / (batch_size * grad_accum * 4096), -3)
    return MappingProxyType(dict(
        batch_size=batch_size, seq_len=4096, grad_accum=grad_accum, max_steps=int(steps), lr=lr, warmup_steps=2000,
        eval_interval=1000, eval_iters=50, checkpoint_interval=1000, log_interval=10, dtype="auto", compile=True,
        out_dir=f"runs/train-deepseek-coder-{size}",
    ))


def _long_context(size: str, stage1_lr: float) -> MappingProxyType:
    # Section 3.6: 1,000 more steps of 512 windows of 16K with "the learning rate maintained as in the
    # final pre-training stage", i.e. stage 1's last rate, 0.316^2 of its peak; no warm-up, no decay.
    return MappingProxyType(dict(
        batch_size=1, seq_len=16384, grad_accum=512, max_steps=1000, lr=stage1_lr * 0.316**2, warmup_steps=0,
        decay_at=(), eval_interval=100, eval_iters=16, checkpoint_interval=100, log_interval=10, dtype="auto",
        compile=True, init_from=f"runs/train-deepseek-coder-{size}", out_dir=f"runs/train-deepseek-coder-{size}-long",
    ))


TRAIN_PRESETS = MappingProxyType({
    # `make train-tiny`: the tiny ModelConfig (3.2M parameters), 2,048 tokens a step, 3.1M tokens in
    # all (1.2 passes over the standard library's training split). An idle 2-core CPU does a step in
    # about 0.32 s, so the 1,500 steps fit the 10-minute budget; train-tiny plans fewer on a slower
    # machine. The sweep behind these numbers: benchmarks/tiny_sweep.py. A 2,000-step warm-up
    # (DeepSeek's) would be longer than the run; 40 steps is enough at this size.
    "tiny": MappingProxyType(dict(
        batch_size=8, seq_len=256, max_steps=1500, lr=2e-3, warmup_steps=40,
        eval_interval=150, eval_iters=8, checkpoint_interval=250, log_interval=10, out_dir="runs/tiny",
    )),
    # `make train-tiny-moe`: the tiny-moe ModelConfig (MLA, 8 routed + 1 shared experts) on the same
    # data and budget. A step costs more than tiny's (MLA's extra projections, the expert loop), so
    # fewer are planned; fit_to_time_limit shortens them further on a slow machine.
    "tiny-moe": MappingProxyType(dict(
        batch_size=8, seq_len=256, max_steps=1000, lr=2e-3, warmup_steps=40,
        eval_interval=100, eval_iters=8, checkpoint_interval=250, log_interval=10, out_dir="runs/tiny-moe",
    )),
    # Stage 1: 1,024 / 2,304 / 3,840 windows a step (table 2), peak lr 5.3e-4 / 4.2e-4 / 3.5e-4.
    "deepseek-coder-1.3b": _stage1("1.3b", batch_size=8, grad_accum=128, lr=5.3e-4),
    "deepseek-coder-6.7b": _stage1("6.7b", batch_size=4, grad_accum=576, lr=4.2e-4),
    "deepseek-coder-33b": _stage1("33b", batch_size=2, grad_accum=1920, lr=3.5e-4),
    # The 16K stage, from stage 1's weights.
    "deepseek-coder-1.3b-long": _long_context("1.3b", 5.3e-4),
    "deepseek-coder-6.7b-long": _long_context("6.7b", 4.2e-4),
    "deepseek-coder-33b-long": _long_context("33b", 3.5e-4),
})

# The ModelConfig preset each training preset trains; `--model` must agree (or be left out).
TRAIN_PRESET_MODELS = MappingProxyType({
    "tiny": "tiny",
    "tiny-moe": "tiny-moe",
    **{f"deepseek-coder-{size}": f"deepseek-coder-{size}-stage1" for size in ("1.3b", "6.7b", "33b")},
    **{f"deepseek-coder-{size}-long": f"deepseek-coder-{size}" for size in ("1.3b", "6.7b", "33b")},
})



def check_out_dir(out: str | Path, flag_name: str = "--out") -> Path:
    """Refuse an output directory that cannot be one, before any work starts; return it as a Path.

    A path naming a file, or under a file, or under a directory this user cannot write, is refused
    with a one-line error naming the flag: `--out runs/x is a file, not a directory; ...`.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{flag_name} {out} is a file, not a directory; choose another {flag_name} (or move the file)")
    parent = out
    while not parent.exists():
        parent = parent.parent if parent.parent != parent else Path(".")
    if not parent.is_dir():
        raise ValueError(f"{flag_name} {out}: {parent} is a file, so no directory can be made under it; "
                         f"choose another {flag_name}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{flag_name} {out}: {parent} is not writable by this user; choose another {flag_name}")
    return out


# -----------------------------------------------------------------------------
# Run directories: `out_dir/ckpt-000300/` ..., and `out_dir/latest` naming the newest


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, in hex (what trainer.json records of its tokenizer.json)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _ckpt_key(ckpt: Path) -> tuple[int, int]:
    """Order of checkpoint directories: ckpt-000300 -> (300, 1), ckpt-000300-2 -> (300, 2)."""
    parts = ckpt.name.split("-")
    try:
        return int(parts[1]), int(parts[2]) if len(parts) > 2 else 1
    except (IndexError, ValueError):
        return -1, 0


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """The complete checkpoint directories of a run (those holding model.safetensors), oldest first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [c for c in run_dir.glob("ckpt-*") if _ckpt_key(c)[0] >= 0 and (c / "model.safetensors").is_file()]
    return sorted(found, key=_ckpt_key)


def earlier_checkpoint_advice(ckpt: Path) -> str:
    """How to continue when `ckpt` is damaged: from the newest earlier checkpoint kept, if any."""
    run_dir = ckpt.parent
    earlier = [c for c in list_checkpoints(run_dir) if _ckpt_key(c) < _ckpt_key(ckpt)]
    if not earlier:
        return (f"no earlier checkpoint is kept in {run_dir}; retrain (`--keep N` keeps the N newest, "
                "so a damaged one can be skipped)")
    return (f"resume from the earlier {earlier[-1].name}: `echo {earlier[-1].name} > {run_dir / 'latest'}`, "
            "then run again with --resume")


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
                                f"{earlier_checkpoint_advice(target)}, or delete the run directory to start over")
    return None


def checkpoint_info(path: str | Path) -> dict:
    """What a checkpoint holds, read from its JSON files alone (no torch, no weights loaded).

    Keys: checkpoint, kept (the run's checkpoints, oldest first), step, max_steps, tokens, finished,
    stopped; val_bpb_full, val_loss_full, val_tokens_full (the whole validation split, each token
    once; None if not scored) and val_bpb, val_loss, val_sampled_windows (the sampled estimate);
    params, model_config, train_config; tokenizer_sha256 (recorded at training; for older
    checkpoints, of their tokenizer.json), tokenizer_matches (whether tokenizer.json still has it)
    and vocab_size.
    """
    import json

    from minicoder.config import ModelConfig
    from minicoder.tokenizer import Tokenizer

    ckpt = find_checkpoint(path)
    if ckpt is None:
        raise FileNotFoundError(f"no checkpoint at {path} (no model.safetensors, no 'latest' file); check the path")

    def read(name: str) -> dict:
        try:
            return json.loads((ckpt / name).read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{ckpt / name} is missing; the checkpoint is incomplete") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{ckpt / name} is not valid JSON ({e}); the checkpoint is damaged") from None

    state, model_config = read("trainer.json"), read("config.json")
    try:
        mc = ModelConfig.from_dict(model_config)
        params, active = mc.num_params(), (mc.num_active_params() if mc.is_moe else None)
    except (TypeError, ValueError):
        params = active = None
    tok_path = ckpt / "tokenizer.json"
    actual = file_sha256(tok_path) if tok_path.is_file() else None
    recorded = state.get("tokenizer_sha256") or actual
    train_config = state.get("train_config") or {}
    return {
        "checkpoint": str(ckpt), "kept": [c.name for c in list_checkpoints(ckpt.parent)],
        "step": state.get("step"), "max_steps": train_config.get("max_steps"), "tokens": state.get("tokens"),
        "finished": state.get("finished"), "stopped": state.get("stopped"),
        **{k: state.get(k) for k in ("val_bpb_full", "val_loss_full", "val_tokens_full",
                                     "val_bpb", "val_loss", "val_sampled_windows")},
        "params": params, "active_params": active, "model_config": model_config, "train_config": train_config,
        "tokenizer_sha256": recorded, "tokenizer_matches": actual is not None and actual == recorded,
        "vocab_size": Tokenizer.from_file(tok_path).vocab_size if tok_path.is_file() else None,
    }


def _cli_info(args) -> int:
    """`minicoder info CHECKPOINT`: checkpoint_info as aligned lines (or --json)."""
    import json

    info = checkpoint_info(args.checkpoint)
    if args.json:
        print(json.dumps(info, indent=1))
        return 0

    def figures(kind: str) -> str:
        bpb, loss = info[f"val_bpb{kind}"], info[f"val_loss{kind}"]
        return "none" if bpb is None else f"{bpb:.4f} bits/byte, {loss:.4f} nats/token"

    status = "finished" if info["finished"] else f"stopped: {info['stopped'] or 'unknown'}"
    full_n = f" ({info['val_tokens_full']:,} tokens, each once)" if info["val_tokens_full"] else ""
    sampled_n = f" ({info['val_sampled_windows']} random windows)" if info["val_sampled_windows"] else ""
    tok = info["tokenizer_sha256"] or "none"
    lines = [
        ("checkpoint", f"{info['checkpoint']} (kept in its run: {', '.join(info['kept']) or 'none'})"),
        ("step", f"{info['step']} of {info['max_steps']} ({status})"),
        ("tokens", f"{info['tokens']:,}" if info["tokens"] is not None else "unknown"),
        ("val_bpb_full", figures("_full") + full_n + " (the whole validation split)"),
        ("val_bpb", figures("") + sampled_n + " (sampled estimate)"),
        ("parameters", (f"{info['params']:,}" if info["params"] is not None else "unknown")
         + (f" ({info['active_params']:,} active per token: MoE)" if info.get("active_params") else "")),
        ("model config", ", ".join(f"{k}={v}" for k, v in info["model_config"].items())),
        ("train config", ", ".join(f"{k}={v}" for k, v in info["train_config"].items()) or "not recorded"),
        ("tokenizer", f"sha256 {tok}, {info['vocab_size']} ids"
                      + ("" if info["tokenizer_matches"] else " (tokenizer.json no longer matches this hash!)")),
    ]
    for key, value in lines:
        print(f"{key:<13} {value}")
    return 0
