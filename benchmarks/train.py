"""Training throughput: tokens/s of minicoder's training step on a CPU, and tokens/s + MFU on a GPU.

Run: .venv/bin/python benchmarks/train.py          (or `make bench-train`)

One timed step is exactly what `minicoder.train.train` does per step: forward under autocast,
cross-entropy, backward, gradient clipping at 1.0, AdamW (fused on CUDA) with DeepSeek's betas.
Token ids are random: the cost of a step does not depend on their values.

  cpu   the `tiny` presets (ModelConfig ~5M parameters, batch 8 x 256 tokens, float32),
        a few warm-up steps, then a few dozen timed steps -> benchmarks/results/train-cpu.json
  gpu   only when CUDA is available: a ~125M-parameter configuration and the deepseek-coder-1.3b
        preset, bf16 autocast, torch.compile -> benchmarks/results/train-gpu.json, with
        MFU = flops_per_token * tokens/s / peak bf16 dense FLOP/s (989e12 on an H100 SXM).

flops_per_token (PaLM, Chowdhery et al. 2022, appendix B) = 6 * N + 12 * n_layers * d_model * T:
N counts every parameter that multiplies (all but the input embedding, a table lookup), 6 = 2 for
the forward matmuls + 4 for the backward; the second term is attention's QK^T and AV, forward and
backward, counted for the full T x T square as PaLM does (a causal kernel skips about half).

Timings on a shared machine are noisy; the JSON names the machine (processor, cores, torch).
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from minicoder.config import ModelConfig  # noqa: E402
from minicoder.model import Transformer  # noqa: E402
from minicoder.train import DistInfo, TrainConfig, autocast, make_optimizer, resolve_device  # noqa: E402

# Peak dense bf16 tensor-core FLOP/s (vendor datasheets, without sparsity), by GPU name.
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}

# ~125M parameters: GPT-2 small's shape as a DeepSeek/LLaMA block with DeepSeek-Coder's vocabulary.
GPU_125M = dict(vocab_size=32256, n_layers=12, d_model=768, n_heads=12, d_ff=2048, max_seq_len=2048,
                rope_theta=100000.0)


def machine() -> dict:
    info = {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__,
            # OpenMP's spin-waiting makes torch several times slower on a core shared with other busy processes
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """6 N + 12 L d T (see the module docstring); N excludes the input embedding."""
    n = cfg.num_params() - cfg.vocab_size * cfg.d_model * (0 if cfg.tie_embeddings else 1)
    return 6 * n + 12 * cfg.n_layers * cfg.d_model * seq_len


def time_training(model_cfg: ModelConfig, train_cfg: TrainConfig, warmup: int, steps: int) -> dict:
    """Run warm-up + timed training steps on random ids; return tokens/s and seconds per step."""
    device, dtype = resolve_device(train_cfg, DistInfo())
    torch.manual_seed(0)
    model = Transformer(model_cfg).to(device)
    optimizer = make_optimizer(model, train_cfg, device)
    step_fn = torch.compile(model) if train_cfg.compile else model
    B, T, V = train_cfg.batch_size, train_cfg.seq_len, model_cfg.vocab_size
    gen = torch.Generator().manual_seed(0)

    def step() -> float:
        for _ in range(train_cfg.grad_accum):
            ids = torch.randint(0, V, (B, T + 1), generator=gen).to(device)  # (B, T+1)
            with autocast(device, dtype):
                logits = step_fn(ids[:, :-1])  # (B, T, V)
                loss = F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())
            (loss / train_cfg.grad_accum).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()  # waits for the GPU

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    tokens = steps * train_cfg.tokens_per_step
    out = {"params": model_cfg.num_params(), "batch_size": B, "seq_len": T, "grad_accum": train_cfg.grad_accum,
           "dtype": str(dtype).replace("torch.", ""), "compile": train_cfg.compile, "device": str(device),
           "warmup_steps": warmup, "timed_steps": steps, "seconds": seconds,
           "seconds_per_step": seconds / steps, "tokens_per_s": tokens / seconds}
    if device.type == "cuda":
        out["peak_memory_gb"] = torch.cuda.max_memory_allocated() / 1e9
    return out


def with_mfu(result: dict, model_cfg: ModelConfig) -> dict:
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else ""
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    result["flops_per_token"] = flops_per_token(model_cfg, result["seq_len"])
    result["peak_flops"] = peak
    result["mfu"] = result["flops_per_token"] * result["tokens_per_s"] / peak if peak else None
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Training throughput on this machine (CPU, and GPU if present).")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: 3)")
    p.add_argument("--steps", type=int, default=24, help="timed steps on the CPU (default: 24)")
    p.add_argument("--gpu-steps", type=int, default=20, help="timed steps on the GPU (default: 20)")
    p.add_argument("--skip-cpu", action="store_true", help="only the GPU part")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"), help="directory for the JSON results")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    if not args.skip_cpu:
        tiny_model = ModelConfig.from_preset("tiny", vocab_size=4096)  # the train-tiny tokenizer's size
        tiny_train = TrainConfig.from_preset("tiny", device="cpu")
        cpu = time_training(tiny_model, tiny_train, args.warmup, args.steps)
        result = {"benchmark": "train", "machine": machine(), "note": "shared machine: timings are noisy",
                  "runs": {"tiny-cpu": cpu}}
        (out / "train-cpu.json").write_text(json.dumps(result, indent=1) + "\n")
        print(f"tiny on CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads): "
              f"{cpu['tokens_per_s']:,.0f} tokens/s, {cpu['seconds_per_step']:.2f} s/step "
              f"-> {out / 'train-cpu.json'}")

    if not torch.cuda.is_available():
        print("no CUDA device: skipping the GPU runs (~125M and deepseek-coder-1.3b, bf16 + torch.compile)")
        return 0
    runs = {}
    for name, model_cfg, train_cfg in [
        ("125m", ModelConfig(**GPU_125M), TrainConfig(batch_size=16, seq_len=2048, device="cuda", compile=True)),
        ("deepseek-coder-1.3b", ModelConfig.from_preset("deepseek-coder-1.3b"),
         TrainConfig(batch_size=4, seq_len=4096, device="cuda", compile=True)),
    ]:
        try:
            runs[name] = with_mfu(time_training(model_cfg, train_cfg, args.warmup + 2, args.gpu_steps), model_cfg)
            r = runs[name]
            mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a (unknown GPU peak)"
            print(f"{name} on {torch.cuda.get_device_name()}: {r['tokens_per_s']:,.0f} tokens/s, MFU {mfu}, "
                  f"peak memory {r['peak_memory_gb']:.1f} GB")
        except torch.OutOfMemoryError as e:
            runs[name] = {"error": f"out of memory: {str(e).splitlines()[0]}"}
            print(f"{name}: out of memory; lower its batch_size")
        torch.cuda.empty_cache()
    result = {"benchmark": "train", "machine": machine(), "runs": runs}
    (out / "train-gpu.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"-> {out / 'train-gpu.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
