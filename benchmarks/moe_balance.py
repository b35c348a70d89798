"""DeepSeekMoE load balance, measured: tiny-moe trained with and without the expert-level balance loss.

Run: .venv/bin/python benchmarks/moe_balance.py            (about 25-35 minutes on a busy 2-core CPU)
     .venv/bin/python benchmarks/moe_balance.py --steps 20 --runs alpha0 alpha0.01 --results /tmp/x.json  (a smoke test)

Trains the `tiny-moe` preset on `make train-tiny`'s data (the standard library's tokens from the
repository-level pipeline, cached in .cache/) several times from the same seed, changing only how
the router is balanced:

    alpha0      balance_alpha1 = 0: no balance loss at all
    alpha0.01   balance_alpha1 = 0.01, the preset's (V2 section 2.2.3, L_ExpBal)
    alpha0.1    balance_alpha1 = 0.1, ten times stronger
    aux-free    DeepSeek-V3's auxiliary-loss-free balancing (V3 section 2.1.2): sigmoid scores,
                norm_topk_prob, a per-expert bias moved by bias_update_speed = 0.001 a step (V3's
                value over its first 14.3T tokens); no loss
    aux-free-0.01  the same with a bias ten times faster, 0.01 a step: this run is short

Each run is `train()` for --steps steps (TrainConfig.from_preset("tiny-moe") with a warm-up of a
tenth of them, as `train-tiny --max-steps` does), logging every --log-interval steps. The script
then reads each run's metrics.jsonl and writes one JSON (benchmarks/results/moe-balance-cpu.json):
the machine, every run's configs, per metrics line the step, the training loss, the expert counts
per MoE layer (token-slots each expert received since the previous line), max/mean load per layer
and L_ExpBal; and per run a summary over the last --tail-steps steps: the mean over those lines of
max/mean load and of the coefficient of variation (std/mean) of the loads, per layer and averaged
over layers, and the final validation loss and bits per byte over the whole held-out split.
The JSON is rewritten (atomically) after every run, so an interrupted benchmark keeps the runs it
finished. chapters/07_moe.py plots it.
"""

import argparse
import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spin-waiting threads crawl on a small shared machine

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

VOCAB_SIZE, VAL_FRACTION, FIM_RATE, DATA_SEED = 4096, 0.1, 0.5, 1337  # train-tiny's, so its token cache is reused
# name -> ModelConfig overrides of the tiny-moe preset
RUNS = {
    "alpha0": dict(balance_alpha1=0.0),
    "alpha0.01": dict(balance_alpha1=0.01),
    "alpha0.1": dict(balance_alpha1=0.1),
    "aux-free": dict(balance_alpha1=0.0, scoring_func="sigmoid", norm_topk_prob=True, bias_update_speed=0.001),
    "aux-free-0.01": dict(balance_alpha1=0.0, scoring_func="sigmoid", norm_topk_prob=True, bias_update_speed=0.01),
}


def load_stats(counts: list[float]) -> tuple[float, float]:
    """(max/mean, coefficient of variation std/mean) of one layer's expert loads.

    >>> load_stats([2.0, 2.0, 2.0, 2.0])
    (1.0, 0.0)
    >>> load_stats([8.0, 0.0, 0.0, 0.0])  # every token-slot on one expert of four
    (4.0, 1.7320508075688772)
    """
    n = len(counts)
    mean = sum(counts) / n
    if mean == 0:
        return 0.0, 0.0
    std = (sum((c - mean) ** 2 for c in counts) / n) ** 0.5  # population std: all experts, not a sample
    return max(counts) / mean, std / mean


def summarize(lines: list[dict], tail_steps: int) -> dict:
    """Means over the metrics lines of the last `tail_steps` steps (lines with step > last - tail_steps)."""
    last = lines[-1]["step"]
    tail = [m for m in lines if m["step"] > last - tail_steps]
    n_layers = len(tail[0]["expert_counts"])
    stats = [[load_stats(m["expert_counts"][layer]) for m in tail] for layer in range(n_layers)]
    max_over_mean = [sum(s[0] for s in layer) / len(layer) for layer in stats]
    cv = [sum(s[1] for s in layer) / len(layer) for layer in stats]
    return {"tail_steps": tail_steps, "tail_lines": len(tail), "tail_first_step": tail[0]["step"],
            "max_over_mean_per_layer": max_over_mean, "cv_per_layer": cv,
            "max_over_mean": sum(max_over_mean) / n_layers, "cv": sum(cv) / n_layers,
            "expert_loss": sum(m["expert_loss"] for m in tail) / len(tail),
            "train_loss": sum(m["loss"] for m in tail) / len(tail)}


def machine() -> dict:
    import torch

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")}


def write_json(path: Path, obj) -> None:
    """Write obj as JSON to path atomically: a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS),
                   help=f"which runs, in order (default: all of {', '.join(RUNS)})")
    p.add_argument("--steps", type=int, default=300, help="optimizer steps per run (default: 300)")
    p.add_argument("--batch-size", type=int, default=8, help="windows per step (default: 8, the preset's)")
    p.add_argument("--seq-len", type=int, default=256, help="tokens per window (default: 256, the preset's)")
    p.add_argument("--log-interval", type=int, default=10, help="steps per metrics line (default: 10)")
    p.add_argument("--tail-steps", type=int, default=50,
                   help="the summary averages the metrics lines of this many last steps (default: 50)")
    p.add_argument("--seed", type=int, default=1337, help="training seed, the same for every run (default: 1337)")
    p.add_argument("--cache-dir", default=str(REPO / ".cache"),
                   help="tokenizer and token cache, shared with make train-tiny (default: .cache)")
    p.add_argument("--work-dir", default=None,
                   help="where the runs' checkpoints and metrics go (default: a temporary directory, deleted)")
    p.add_argument("--results", default=str(REPO / "benchmarks/results/moe-balance-cpu.json"),
                   help="the JSON to write (default: benchmarks/results/moe-balance-cpu.json)")
    p.add_argument("--progress", action="store_true", help="show train()'s progress bars")
    args = p.parse_args(argv)
    if args.steps < 10 or args.tail_steps < args.log_interval:
        p.error("--steps must be >= 10 and --tail-steps >= --log-interval")

    import torch  # noqa: F401  (after OMP_WAIT_POLICY is set)

    from minicoder.config import ModelConfig
    from minicoder.data import prepare_repo_tokens, repo_tokenizer
    from minicoder.train import TrainConfig, read_metrics, train

    result = {"command": "python benchmarks/moe_balance.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": machine(), "load_avg_start": os.getloadavg(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
              "data": None, "runs": {}}
    t0 = time.monotonic()
    tok = repo_tokenizer(None, ".py", VOCAB_SIZE, val_fraction=VAL_FRACTION, cache_dir=args.cache_dir,
                         progress=args.progress)
    data = prepare_repo_tokens(tok, None, cache_dir=args.cache_dir, val_fraction=VAL_FRACTION, fim_rate=FIM_RATE,
                               seed=DATA_SEED, progress=args.progress)
    sp = data.meta["splits"]
    result["data"] = {"recipe": "make train-tiny's: the standard library through the repository-level pipeline",
                      "vocab_size": tok.vocab_size, "train_tokens": sp["train"]["tokens"],
                      "val_tokens": sp["val"]["tokens"], "val_bytes": sp["val"]["bytes"], "seconds": time.monotonic() - t0}
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="moe-balance-"))
    results = Path(args.results)
    for name in args.runs:
        model_config = ModelConfig.from_preset("tiny-moe", vocab_size=tok.vocab_size, **RUNS[name])
        out = work / name
        shutil.rmtree(out, ignore_errors=True)
        cfg = TrainConfig.from_preset("tiny-moe", max_steps=args.steps, warmup_steps=min(40, args.steps // 10),
                                      batch_size=args.batch_size, seq_len=args.seq_len, seed=args.seed,
                                      log_interval=args.log_interval, eval_interval=10 ** 9,
                                      checkpoint_interval=10 ** 9, keep_checkpoints=1, out_dir=str(out))
        load_before = os.getloadavg()
        print(f"[{name}] {cfg.max_steps} steps of {cfg.tokens_per_step:,} tokens; "
              f"overrides {RUNS[name]}", flush=True)
        summary = train(model_config, cfg, data, tok, progress=args.progress)
        metrics = read_metrics(out / "metrics.jsonl")
        lines = [{"step": m["step"], "loss": m["loss"], "expert_counts": m["expert_counts"],
                  "load_max_over_mean": m["load_max_over_mean"], "expert_loss": m["expert_loss"],
                  "balance_loss": m["balance_loss"], "tokens_per_s": m["tokens_per_s"]}
                 for m in metrics if "expert_counts" in m]
        run = {"overrides": RUNS[name], "model_config": model_config.to_dict(),
               "train_config": {k: v for k, v in dataclasses.asdict(cfg).items() if k != "out_dir"},
               "elapsed_s": summary["elapsed_s"], "steps": summary["step"],
               "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
               "final": {"val_loss_full": summary["val_loss_full"], "val_bpb_full": summary["val_bpb_full"],
                         "val_tokens_full": summary["val_tokens_full"], "val_loss_sampled": summary["val_loss"],
                         "val_bpb_sampled": summary["val_bpb"]},
               "tail": summarize(lines, args.tail_steps), "log": lines}
        result["runs"][name] = run
        result["load_avg_end"] = os.getloadavg()
        result["total_s"] = time.monotonic() - t0
        write_json(results, result)
        tail = run["tail"]
        print(f"[{name}] {summary['elapsed_s']:.0f} s; last {args.tail_steps} steps: max/mean load "
              f"{tail['max_over_mean']:.3f} (per layer {', '.join(f'{v:.2f}' for v in tail['max_over_mean_per_layer'])}), "
              f"CV {tail['cv']:.3f}, L_ExpBal {tail['expert_loss']:.4f}; "
              f"validation {summary['val_bpb_full']:.4f} bits/byte", flush=True)
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {results} in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
