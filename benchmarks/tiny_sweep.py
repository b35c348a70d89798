"""The sweep behind `make train-tiny`'s settings: which model, context, batch and learning rate do best
in the same few minutes of a 2-core CPU.

Run: .venv/bin/python benchmarks/tiny_sweep.py NAME [NAME ...]     (names from CONFIGS below)
     .venv/bin/python benchmarks/tiny_sweep.py --list

Each configuration trains from scratch on train-tiny's data (the standard library through the
repository-level pipeline, FIM rate 0.5, a tokenizer trained on the training repositories only),
for a fixed number of optimizer steps, with DeepSeek's recipe (AdamW 0.9/0.95, weight decay 0.1,
clipping 1.0, the multi-step schedule). It then scores the whole validation split, every token
once in non-overlapping windows of the model's context (`minicoder.train.evaluate_split`), and
counts how many of the 20 sampled function completions parse. One JSON line per run is appended to
benchmarks/results/tiny-sweep.jsonl with the wall time of training and of each phase, and the
machine. Steps, not seconds, fix each run's length, so a busy machine changes the wall time but not
the result; a configuration is judged by its full-split bits per byte and by whether its training
fits train-tiny's budget on the idle machine (its measured s/step x steps).
"""

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from minicoder.config import ModelConfig  # noqa: E402
from minicoder.data import TokenData, prepare_repo_tokens, repo_tokenizer  # noqa: E402
from minicoder.tokenizer import Tokenizer  # noqa: E402
from minicoder.train import TrainConfig, load_checkpoint, train  # noqa: E402

# name -> (vocab_size, ModelConfig overrides of "tiny", TrainConfig overrides of "tiny")
CONFIGS = {
    # the preset before this sweep: 5.0M parameters, 600 steps of 8 x 256 tokens, lr 2e-3
    "base": (4096, {}, {}),
    # the same shape, trained for the whole budget (about 480 s of training on the idle machine)
    "d256-1000": (4096, {}, dict(max_steps=1000)),
    # narrower and wider-for-longer: 3.2M and 1.8M parameters, more steps in the same time
    "d192-1500": (4096, dict(d_model=192, n_heads=6, n_kv_heads=3, d_ff=512), dict(max_steps=1500)),
    "d128-2600": (4096, dict(d_model=128, n_heads=4, n_kv_heads=2, d_ff=344), dict(max_steps=2600)),
    # a longer context (windows of 512, 4 a step): the full-split score gives each token more context
    "d192-t512-1400": (4096, dict(d_model=192, n_heads=6, n_kv_heads=3, d_ff=512, max_seq_len=512),
                       dict(max_steps=1400, seq_len=512, batch_size=4)),
    # smaller batches, more steps: 4 windows of 256 (1,024 tokens) a step cost half as much on a CPU
    "d192-b4-3000": (4096, dict(d_model=192, n_heads=6, n_kv_heads=3, d_ff=512),
                     dict(max_steps=3000, batch_size=4, warmup_steps=80)),
    # the same as d192-1500, on the pipeline with FIM per file (round 1 ran on FIM per sample)
    "d192-1500-v2": (4096, dict(d_model=192, n_heads=6, n_kv_heads=3, d_ff=512), dict(max_steps=1500)),
    "d192-1500-lr4e-3": (4096, dict(d_model=192, n_heads=6, n_kv_heads=3, d_ff=512), dict(max_steps=1500, lr=4e-3)),
    "d192-t512-b2-2400": (4096, dict(d_model=192, n_heads=6, n_kv_heads=3, d_ff=512, max_seq_len=512),
                          dict(max_steps=2400, batch_size=2, seq_len=512, warmup_steps=80)),
}


def evaluate_full(model, data, seq_len: int, batch_size: int = 16) -> tuple[float, float]:
    try:
        from minicoder.train import evaluate_split
    except ImportError:
        evaluate_split = None
    if evaluate_split is not None:
        r = evaluate_split(model, data, "val", seq_len=seq_len, batch_size=batch_size)
        return r["loss"], r["bpb"]
    import math

    import numpy as np
    import torch.nn.functional as F

    tokens = data.splits["val"]
    n = len(tokens)
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        starts = list(range(0, n - 1, seq_len))
        for i in range(0, len(starts), batch_size):
            for s in starts[i:i + batch_size]:
                w = torch.from_numpy(tokens.window(s, min(seq_len + 1, n - s)).astype(np.int64))[None]
                logits = model(w[:, :-1])
                total += F.cross_entropy(logits[0].double(), w[0, 1:], reduction="sum").item()
                count += w.shape[1] - 1
    return total / count, total / (math.log(2) * tokens.n_bytes)


def run(name: str, cache_dir: str, out_root: Path, samples: bool, data_dir: str | None) -> dict:
    vocab, model_over, train_over = CONFIGS[name]
    t0 = time.monotonic()
    if data_dir:  # tokens prepared earlier (and the tokenizer saved beside them by prepare_repo_tokens)
        data = TokenData.load(data_dir)
        tok = Tokenizer.from_file(Path(data.path.parent /
                                       f"tokenizer-{data.meta['tokenizer_sha256'][:16]}.json"))
    else:
        tok = repo_tokenizer(None, ".py", vocab, val_fraction=0.1, cache_dir=cache_dir, progress=False)
        data = prepare_repo_tokens(tok, None, cache_dir=cache_dir, fim_rate=0.5, seed=1337, progress=False)
    t_data = time.monotonic() - t0
    model_config = ModelConfig.from_preset("tiny", vocab_size=tok.vocab_size, **model_over)
    out = out_root / name
    shutil.rmtree(out, ignore_errors=True)
    cfg = TrainConfig.from_preset("tiny", out_dir=str(out), **train_over)
    t1 = time.monotonic()
    summary = train(model_config, cfg, data, tok, progress=False)
    t_train = time.monotonic() - t1
    model, tok, _, _, _, _ = load_checkpoint(out)
    t2 = time.monotonic()
    loss, bpb = evaluate_full(model, data, cfg.seq_len)
    t_eval = time.monotonic() - t2
    result = {"name": name, "vocab_size": tok.vocab_size, "params": model_config.num_params(),
              "model": model_over, "train": train_over, "steps": summary["step"],
              "tokens": summary["step"] * cfg.tokens_per_step, "val_bpb_full": bpb, "val_loss_full": loss,
              "val_bpb_sampled": summary["val_bpb"], "train_s": t_train, "s_per_step": t_train / max(1, summary["step"]),
              "eval_s": t_eval, "data_s": t_data}
    if samples:
        from minicoder.train_tiny import sample_report

        t3 = time.monotonic()
        report = sample_report(model, tok, seed=1337)
        result.update(parse_ok=report["parse_ok"], samples_s=time.monotonic() - t3)
    result["machine"] = {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                         "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                         "load_avg_1m": os.getloadavg()[0]}
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("names", nargs="*", help="configurations to run (see --list)")
    p.add_argument("--list", action="store_true", help="print the configurations and exit")
    p.add_argument("--cache-dir", default=".cache", help="tokenizer and token cache (default: .cache)")
    p.add_argument("--out", default="runs/sweep", help="run directories go under this (default: runs/sweep)")
    p.add_argument("--data", default=None,
                   help="a token directory made earlier by prepare_repo_tokens (default: make or reuse the cached one)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--no-samples", action="store_true", help="skip the 20 sampled completions")
    p.add_argument("--results", default=str(REPO / "benchmarks/results/tiny-sweep.jsonl"),
                   help="JSON-lines file the results are appended to")
    args = p.parse_args()
    if args.list or not args.names:
        for name, (vocab, m, t) in CONFIGS.items():
            print(f"{name:12s} vocab {vocab}  model {m}  train {t}")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    unknown = [n for n in args.names if n not in CONFIGS]
    if unknown:
        p.error(f"unknown configuration(s) {unknown}; see --list")
    for name in args.names:
        result = run(name, args.cache_dir, Path(args.out), not args.no_samples, args.data)
        print(json.dumps({k: v for k, v in result.items() if k != "machine"}), flush=True)
        with open(args.results, "a") as f:
            f.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
