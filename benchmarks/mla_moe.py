"""MLA decode and MoE dispatch, one layer at a time: naive vs absorbed MLA, masked vs sorted MoE.

Run: .venv/bin/python benchmarks/mla_moe.py                 (or `make bench-mla-moe`; about 2 min on 2 cores)
     .venv/bin/python benchmarks/mla_moe.py --device cuda   (bf16, on a GPU)
     .venv/bin/python benchmarks/mla_moe.py --steps 2 --rounds 1 --v2-lite-moe-tokens 32   (a smoke test)

Two sizes: "tiny" (the tiny-moe preset's dimensions) and "v2-lite" (deepseek-coder-v2-lite's: d_model
2048, 16 heads, kv_lora_rank 512, qk 128 + 64, v 128, no q_lora; 64 routed experts of width 1408, 6 per
token, 2 shared). Each is one layer built from its preset with n_layers=1, not a whole model.

  mla   one `MLA(config, layer=0)` per mla_impl, the same weights in both. Each path's `MLACache` is
        prefilled once at batch 1 by the layer itself (in chunks of 512, timed), then copied into a
        cache of L positions for batch 1 and 8. A decode step is one new token at position L: it reads
        positions 0..L and writes L, so every timed step sees exactly L cached positions.
        decode tokens/s = batch / median seconds per step. Cache bytes per token per layer: what
        `MLACache.bytes_per_token()` says and what the cache actually allocated (numel * element_size
        / (batch * max_seq_len)); the two should agree.
  moe   one `MoE(config)`, moe_impl switched between "naive" (every expert on every token, masked)
        and "sorted" (each expert on its own tokens): forward tokens/s on (1, N) random inputs, and
        forward + backward for tiny. The router's weights are random, so the load is near-uniform.

Every comparison alternates the two paths round by round (`--rounds` rounds of `--steps` timed calls
each, after `--warmup` untimed ones) so both see the same share of a shared machine's changing load;
the median is reported. CPU: float32; CUDA: bf16 weights, activations and cache.

Writes benchmarks/results/mla-moe-<device>.json (tmp file, then os.replace) with the machine named and
its load average at start and end. The naive MoE at V2-Lite runs all 64 experts on every token (~1.1
GFLOP per token), so on a CPU --v2-lite-moe-tokens defaults to 512 rather than 1024, to keep the MoE
part under ~3 minutes on 2 cores.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from minicoder.config import MLA_IMPLS, MOE_IMPLS, PRESETS, ModelConfig  # noqa: E402
from minicoder.mla import MLA, MLACache  # noqa: E402
from minicoder.moe import MoE  # noqa: E402
from minicoder.rope import rope_tables  # noqa: E402

SIZES = {"tiny": "tiny-moe", "v2-lite": "deepseek-coder-v2-lite"}  # size -> the preset giving its dimensions
PREFILL_LENGTHS = {"tiny": (256,), "v2-lite": (512, 2048)}  # L: cached positions before the decoded token
DECODE_BATCHES = (1, 8)
PREFILL_CHUNK = 512
TINY_MOE_TOKENS = 2048  # train-tiny's batch: 8 x 256


def machine(device: torch.device) -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            # OpenMP's spin-waiting makes torch several times slower on a core shared with other busy processes
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def alternate(fns: dict, warmup: int, steps: int, rounds: int, device: torch.device) -> dict[str, list[float]]:
    """Seconds per call of each fn: `warmup` untimed calls each, then `rounds` rounds of `steps` timed calls
    of each fn in turn."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(steps):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                t = time.perf_counter()
                fn()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                times[name].append(time.perf_counter() - t)
    return times


def summarize(seconds: list[float], tokens_per_call: int) -> dict:
    median = statistics.median(seconds)
    return {"tokens_per_s": round(tokens_per_call / median, 2), "median_ms": round(1e3 * median, 3),
            "min_ms": round(1e3 * min(seconds), 3), "timed_calls": len(seconds)}


def cache_bytes(cache: MLACache, batch: int) -> dict:
    """What the cache says it needs per token per layer, and what it allocated (it has one layer)."""
    tensors = [t for name in ("c_kv", "k_pe", "k", "v") for t in (getattr(cache, name) or [])]
    allocated = sum(t.numel() * t.element_size() for t in tensors)
    return {"values_per_token": cache.values_per_token, "bytes_per_token": cache.bytes_per_token(),
            "allocated_bytes_per_token": allocated / (batch * cache.max_seq_len)}


def cache_prefix(src: MLACache, config: ModelConfig, length: int, batch: int, device, dtype) -> MLACache:
    """A cache of `batch` copies of src's first `length` positions (src has batch 1), with room for one more."""
    dst = MLACache(config, batch, max_seq_len=length + 1, device=device, dtype=dtype)
    for name, position_dim in (("c_kv", 1), ("k_pe", 1), ("k", 2), ("v", 2)):  # c_kv (B, S, d_c), k (B, nh, S, qk)
        if getattr(src, name) is not None:
            getattr(dst, name)[0].narrow(position_dim, 0, length).copy_(
                getattr(src, name)[0].narrow(position_dim, 0, length))  # (1, ...) broadcast to (batch, ...)
    return dst


@torch.inference_mode()
def bench_mla(size: str, args, device: torch.device, dtype: torch.dtype) -> dict:
    lengths = PREFILL_LENGTHS[size]
    S = max(lengths)
    configs = {impl: ModelConfig.from_preset(SIZES[size], n_layers=1, max_seq_len=S + 1, mla_impl=impl)
               for impl in MLA_IMPLS}
    torch.manual_seed(0)
    layers = {impl: MLA(configs[impl], layer=0) for impl in MLA_IMPLS}
    layers["absorb"].load_state_dict(layers["naive"].state_dict())  # two paths, one function
    for layer in layers.values():
        layer.to(device=device, dtype=dtype).eval()
    cos, sin = (t.to(device) for t in rope_tables(configs["naive"]))  # (S+1, rope) each
    d_model = configs["naive"].d_model
    x = torch.randn(1, S, d_model, device=device, dtype=dtype)  # (1, S, C) the prompt's residual stream
    dims = ("d_model", "n_heads", "kv_lora_rank", "q_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")
    out = {"dims": {k: getattr(configs["naive"], k) for k in dims}, "prefill": {}, "cache": {}, "decode": []}
    full = {}  # impl -> its cache, prefilled to S positions at batch 1
    n_layers_model = PRESETS[SIZES[size]]["n_layers"]
    for impl, layer in layers.items():
        full[impl] = MLACache(configs[impl], batch_size=1, device=device, dtype=dtype)
        t = time.perf_counter()
        for s in range(0, S, PREFILL_CHUNK):
            e = min(s + PREFILL_CHUNK, S)
            layer(x[:, s:e], cos[s:e], sin[s:e], full[impl], s)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t
        out["prefill"][impl] = {"positions": S, "chunk": PREFILL_CHUNK, "seconds": round(seconds, 3),
                                "tokens_per_s": round(S / seconds, 1)}
        out["cache"][impl] = cache_bytes(full[impl], batch=1)
        out["cache"][impl]["bytes_per_token_all_layers"] = out["cache"][impl]["bytes_per_token"] * n_layers_model
        out["cache"][impl]["n_layers_of_the_model"] = n_layers_model
    for L in lengths:
        for B in DECODE_BATCHES:
            caches = {impl: cache_prefix(full[impl], configs[impl], L, B, device, dtype) for impl in MLA_IMPLS}
            x1 = torch.randn(B, 1, d_model, device=device, dtype=dtype)  # (B, 1, C) one new token per sequence

            def step(impl, caches=caches, x1=x1, L=L):
                layers[impl](x1, cos[L:L + 1], sin[L:L + 1], caches[impl], L)  # reads 0..L, writes L
            times = alternate({impl: (lambda impl=impl: step(impl)) for impl in MLA_IMPLS},
                              args.warmup, args.steps, args.rounds, device)
            row = {"L": L, "batch": B, **{impl: summarize(times[impl], B) for impl in MLA_IMPLS}}
            for impl in MLA_IMPLS:
                row[impl]["allocated_bytes_per_token"] = cache_bytes(caches[impl], B)["allocated_bytes_per_token"]
            row["absorb_speedup"] = round(row["absorb"]["tokens_per_s"] / row["naive"]["tokens_per_s"], 3)
            out["decode"].append(row)
            print(f"  {size:8s} {L:5d} {B:5d}  {row['naive']['tokens_per_s']:12,.1f}  "
                  f"{row['absorb']['tokens_per_s']:12,.1f}  {row['absorb_speedup']:6.2f}x", flush=True)
        del caches
    return out


def bench_moe(size: str, tokens: int, backward: bool, args, device: torch.device, dtype: torch.dtype) -> dict:
    config = ModelConfig.from_preset(SIZES[size])  # the whole config; only one MoE layer is built from it
    torch.manual_seed(0)
    moe = MoE(config).to(device=device, dtype=dtype)
    x = torch.randn(1, tokens, config.d_model, device=device, dtype=dtype)  # (1, N, C)
    out = {"dims": {k: getattr(config, k) for k in ("d_model", "n_routed_experts", "n_activated_experts",
                                                     "n_shared_experts", "moe_d_ff")}, "tokens": tokens}
    # small sizes time more calls; V2-Lite's naive forward takes seconds on a CPU, so one call per round
    steps = args.steps if size == "tiny" or device.type == "cuda" else 1
    warmup = args.warmup if size == "tiny" or device.type == "cuda" else 1

    @torch.inference_mode()
    def forward(impl):
        moe.moe_impl = impl
        return moe(x)

    moe.eval()
    counts = forward("sorted")[1].expert_counts  # (E,)
    out["max_over_mean_expert_load"] = round((counts.max() / counts.mean()).item(), 3)
    times = alternate({impl: (lambda impl=impl: forward(impl)) for impl in MOE_IMPLS}, warmup, steps, args.rounds,
                      device)
    out["forward"] = {impl: summarize(times[impl], tokens) for impl in MOE_IMPLS}
    out["forward"]["sorted_speedup"] = round(out["forward"]["sorted"]["tokens_per_s"]
                                             / out["forward"]["naive"]["tokens_per_s"], 3)
    print(f"  {size:8s} {'forward':16s} {tokens:6d}  {out['forward']['naive']['tokens_per_s']:12,.1f}  "
          f"{out['forward']['sorted']['tokens_per_s']:12,.1f}  {out['forward']['sorted_speedup']:6.2f}x", flush=True)
    if backward:
        moe.train()
        x_grad = x.clone().requires_grad_(True)

        def forward_backward(impl):
            moe.moe_impl = impl
            moe.zero_grad(set_to_none=True)
            x_grad.grad = None
            y, stats = moe(x_grad)
            (y.float().square().mean() + stats.balance_loss).backward()

        times = alternate({impl: (lambda impl=impl: forward_backward(impl)) for impl in MOE_IMPLS},
                          warmup, steps, args.rounds, device)
        fb = out["forward_backward"] = {impl: summarize(times[impl], tokens) for impl in MOE_IMPLS}
        fb["sorted_speedup"] = round(fb["sorted"]["tokens_per_s"] / fb["naive"]["tokens_per_s"], 3)
        print(f"  {size:8s} {'forward+backward':16s} {tokens:6d}  {fb['naive']['tokens_per_s']:12,.1f}  "
              f"{fb['sorted']['tokens_per_s']:12,.1f}  {fb['sorted_speedup']:6.2f}x", flush=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where to run: cpu (float32) or cuda (bf16) (default: cpu)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls of each path first (default: 3)")
    p.add_argument("--steps", type=int, default=6, help="timed calls of each path per round (default: 6)")
    p.add_argument("--rounds", type=int, default=5,
                   help="rounds, the two paths alternating, so both see the same load (default: 5)")
    p.add_argument("--v2-lite-moe-tokens", type=int, default=None,
                   help="tokens per MoE forward at V2-Lite dimensions (default: 512 on cpu, 1024 on cuda)")
    p.add_argument("--out", default=None, help="the JSON file (default: benchmarks/results/mla-moe-<device>.json)")
    args = p.parse_args(argv)
    if min(args.warmup + 1, args.steps, args.rounds) < 1:
        p.error("--steps and --rounds must be 1 or more, --warmup 0 or more")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda, but torch.cuda.is_available() is False: install the CUDA build of torch "
                "into .venv (see README) or use --device cpu")
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    v2_tokens = args.v2_lite_moe_tokens or (1024 if device.type == "cuda" else 512)
    out_path = Path(args.out or REPO / "benchmarks" / "results" / f"mla-moe-{args.device}.json")

    result = {"benchmark": "mla_moe", "machine": machine(device), "device": str(device),
              "dtype": str(dtype).replace("torch.", ""), "time": time.strftime("%Y-%m-%d %H:%M:%S"),
              "settings": {"warmup": args.warmup, "steps": args.steps, "rounds": args.rounds,
                           "statistic": "median of the timed calls"},
              "note": "shared machine: timings are noisy; see machine.load_average_at_start/_end",
              "mla": {}, "moe": {}}
    t0 = time.perf_counter()
    print(f"MLA decode, one layer, {result['dtype']} on {device} (decode tokens/s, batch x 1 token per step)")
    print(f"  {'size':8s} {'L':>5s} {'batch':>5s}  {'naive':>12s}  {'absorb':>12s}  absorb/naive")
    for size in SIZES:
        result["mla"][size] = bench_mla(size, args, device, dtype)
    print("MLA cache per token per layer (bytes_per_token(); allocated numel * element_size / (batch * max_seq_len))")
    for size, r in result["mla"].items():
        for impl, c in r["cache"].items():
            print(f"  {size:8s} {impl:6s} {c['bytes_per_token']:8,d} B (allocated {c['allocated_bytes_per_token']:8,.0f} B); "
                  f"x {c['n_layers_of_the_model']} layers = {c['bytes_per_token_all_layers']:,d} B; "
                  f"prefill of {r['prefill'][impl]['positions']}: {r['prefill'][impl]['tokens_per_s']:,.0f} tokens/s")
    print("MoE, one layer (tokens/s)")
    print(f"  {'size':8s} {'pass':16s} {'tokens':>6s}  {'naive':>12s}  {'sorted':>12s}  sorted/naive")
    result["moe"]["tiny"] = bench_moe("tiny", TINY_MOE_TOKENS, True, args, device, dtype)
    result["moe"]["v2-lite"] = bench_moe("v2-lite", v2_tokens, False, args, device, dtype)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, out_path)
    print(f"{result['seconds']:.0f} s; load average {result['machine']['load_average_at_start']} at start, "
          f"{result['machine']['load_average_at_end']} at end -> {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
