# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 6: Multi-head Latent Attention
#
# DeepSeek-Coder-V2 is DeepSeek-V2's architecture, and the first of its two changes to the transformer of
# chapter 4 is in attention. Decoding is limited by the KV cache: every new token reads the keys and values of
# all earlier tokens, and for long contexts they fill the GPU's memory before the weights do. Grouped-query
# attention (GQA) shrinks the cache by sharing key/value heads between query heads; DeepSeek-V2's
# **Multi-head Latent Attention** (MLA, section 2.1 and appendix C of the paper) instead caches one small latent
# vector per token, `c_kv`, from which every head's key and value are linear functions, plus one 64-wide RoPE key
# that all heads share. `minicoder/mla.py` implements it twice, selected by `ModelConfig.mla_impl`:
#
# - `"naive"` reads the equations as written: expand `c_kv` into per-head keys and values and cache those;
# - `"absorb"` caches only `c_kv` and the RoPE key, and never forms a per-head key or value.
#
# This chapter:
#
# 1. **What a token costs in the cache**: MHA, GQA, MQA and MLA at the dimensions of the real models.
# 2. **Absorbing `W_UK` and `W_UV`**: why the second path computes the same function, and why that forces the
#    *decoupled* RoPE key.
# 3. **The two paths in minicoder**: the same logits and tokens, the caches each allocates, and decoding speed.
#
# Everything below imports from `minicoder`; the few lines of tensor algebra in section 2 illustrate a
# derivation, they are not a second MLA.

# %%
import os, platform, sys
from pathlib import Path

# Import the minicoder beside this chapters/ folder (this checkout, or a student's copy), not another installed one.
if (Path.cwd().parent / "minicoder" / "__init__.py").is_file():
    sys.path.insert(0, str(Path.cwd().parent))
import matplotlib, numpy, torch
import minicoder

print("python    ", sys.version.split()[0], platform.machine())
print("numpy     ", numpy.__version__)
print("torch     ", torch.__version__)
print("matplotlib", matplotlib.__version__)
print("minicoder ", minicoder.__version__, "from", os.path.relpath(Path(minicoder.__file__).parent))

# %%
import time

import matplotlib.pyplot as plt
import torch

from minicoder.config import ModelConfig
from minicoder.generate import generate_ids
from minicoder.mla import MLA, MLACache
from minicoder.model import Transformer, make_cache
from minicoder.rope import apply_rope_interleaved, rope_cos_sin

BF16 = 2                  # bytes per cached number
TOKENS_128K = 128 * 1024  # one long sequence: 131,072 tokens

# %% [markdown]
# ## 1. What a token costs in the cache
#
# Per token and per layer, a transformer with `n_kv` key/value heads of width `d_h` caches a key and a value per
# KV head: `2 * n_kv * d_h` numbers. Multi-head attention (MHA) has `n_kv = n_heads`; GQA has a few groups
# (DeepSeek-Coder 33B: 56 query heads share 8 KV heads of 128); multi-query attention (MQA) has one.
# MLA caches `d_c + d_R` numbers whatever the number of heads: the latent `c_kv` (`kv_lora_rank`, V2: 512) and
# the shared RoPE key `k_R` (`qk_rope_head_dim`, V2: 64). `MLACache.values_per_token_per_layer` gives the count
# for either MLA path, from the config alone; nothing below builds a big model.

# %%
def v1_bytes_per_token(c: ModelConfig, bytes_per_value=BF16) -> int:
    return 2 * c.n_kv_heads * c.head_dim * c.n_layers * bytes_per_value   # K and V of every KV head, every layer


def mla_bytes_per_token(c: ModelConfig, bytes_per_value=BF16) -> int:
    return MLACache.values_per_token_per_layer(c) * c.n_layers * bytes_per_value


c33 = {n_kv: ModelConfig.from_preset("deepseek-coder-33b", n_kv_heads=n_kv) for n_kv in (56, 8, 1)}
v2_naive = ModelConfig.from_preset("deepseek-coder-v2")                   # mla_impl="naive" is the default
v2 = ModelConfig.from_preset("deepseek-coder-v2", mla_impl="absorb")
lite_naive = ModelConfig.from_preset("deepseek-coder-v2-lite")
lite = ModelConfig.from_preset("deepseek-coder-v2-lite", mla_impl="absorb")
rows = [  # (label, kind, config, bytes per token in bf16)
    ("Coder 33B as MHA (56 KV heads)", "MHA", c33[56], v1_bytes_per_token(c33[56])),
    ("Coder 33B, GQA (8 KV heads, as released)", "GQA", c33[8], v1_bytes_per_token(c33[8])),
    ("Coder 33B as MQA (1 KV head)", "MQA", c33[1], v1_bytes_per_token(c33[1])),
    ("V2 (236B), per-head K/V (mla_impl=naive)", "naive", v2_naive, mla_bytes_per_token(v2_naive)),
    ("V2 (236B), MLA latent (mla_impl=absorb)", "MLA", v2, mla_bytes_per_token(v2)),
    ("V2-Lite (16B), per-head K/V (naive)", "naive", lite_naive, mla_bytes_per_token(lite_naive)),
    ("V2-Lite (16B), MLA latent (absorb)", "MLA", lite, mla_bytes_per_token(lite)),
]
print(f"{'':42s} {'values/token/layer':>18s} {'layers':>6s} {'bytes/token':>12s} {'GB at 128K':>10s}")
for label, kind, c, b in rows:
    print(f"{label:42s} {b // (c.n_layers * BF16):18,d} {c.n_layers:6d} {b:12,d} {b * TOKENS_128K / 1e9:10.2f}")

check = MLACache(v2, batch_size=1, max_seq_len=1, dtype=torch.bfloat16).bytes_per_token()   # a 1-position cache
print(f"\nMLACache(V2, dtype=bfloat16).bytes_per_token() = {check:,} (the row above: {mla_bytes_per_token(v2):,})")

# %%
colors = {"MHA": "C3", "GQA": "C1", "MQA": "C2", "naive": "C7", "MLA": "C0"}
labels = [r[0] for r in rows]
fig, (a0, a1) = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True)
for ax, scale, unit in ((a0, 1 / 1024, "KiB of cache per token (bf16)"),
                        (a1, TOKENS_128K / 1e9, "GB for one 128K-token sequence")):
    values = [r[3] * scale for r in rows]
    ax.barh(labels, values, color=[colors[r[1]] for r in rows])
    for y, v in enumerate(values):
        ax.text(v * 1.1, y, f"{v:,.0f}" if v >= 10 else f"{v:.1f}", va="center", fontsize=8)
    ax.set_xscale("log"); ax.set_xlabel(unit); ax.grid(axis="x", alpha=0.3)
    ax.set_xlim(right=max(values) * 8)
a0.invert_yaxis()
plt.tight_layout(); plt.show()

# %% [markdown]
# Read the bars as bytes a decoding step must fetch per token of context, as well as memory:
#
# - DeepSeek-Coder 33B's GQA caches 253,952 bytes (248 KiB) per token, 33 GB for a 128K sequence (its context is
#   16K; 128K is here to compare). As MHA it would be 7 times that.
# - DeepSeek-V2 caches 69,120 bytes per token: 576 numbers in each of 60 layers. That is 27% of the 33B's cache,
#   for a model with 7 times the parameters and 128 heads per layer. Expanded into per-head keys (128 + 64) and
#   values (128), the same V2 would cache 71 times more (644 GB for one 128K sequence, more than its weights).
# - V2-Lite's latent costs about as much as the 33B model would as MQA.
#
# The paper's comparison (its Table 1): with `d_c = 4 d_h` and `d_R = d_h / 2`, MLA caches
# `(d_c + d_R) l = 4.5 d_h l` numbers per token, for `l` layers. GQA with `n_g` groups caches `2 n_g d_h l`, so
# MLA's cache equals GQA's with **2.25 groups**, and MHA's `2 n_h d_h l` is `2 * 128 / 4.5 = 57` times larger for
# V2's 128 heads: a GQA-sized cache, with the paper reporting quality above MHA's.
#
# The headline of the paper's abstract, "reduces the KV cache by 93.3%" against DeepSeek LLM 67B, is not this
# bf16 arithmetic. 67B has 95 layers of 8 KV heads of 128 (GQA); counted in bf16 the saving is 82%. The 93.3%
# follows if V2's cache is counted at the 6 bits per element its deployment quantizes it to (the paper's
# paragraph on inference efficiency):

# %%
llm67b = ModelConfig(vocab_size=102400, n_layers=95, d_model=8192, n_heads=64, n_kv_heads=8, d_ff=22016,
                     max_seq_len=4096)   # DeepSeek LLM 67B (not a minicoder preset): 95 layers, GQA 64/8 x 128
values_67b = v1_bytes_per_token(llm67b, bytes_per_value=1)   # numbers per token, all layers
values_v2 = mla_bytes_per_token(v2, bytes_per_value=1)
print(f"numbers per token: 67B {values_67b:,}, V2 {values_v2:,}")
print(f"saving, both bf16:          {1 - values_v2 / values_67b:.1%}")
print(f"saving, V2 at 6 bits/value: {1 - values_v2 * 6 / (values_67b * 16):.1%}")

# %% [markdown]
# ## 2. Absorbing `W_UK` and `W_UV`
#
# For one head `i`, a query at position `t` and a cached position `s`, the no-RoPE part of the score is
# (equations 10 and 16-18 of the paper)
#
# $$q_{C,t,i}^\top k_{C,s,i} = q_{C,t,i}^\top \,(W_{UK,i}\, c_s) = (W_{UK,i}^\top q_{C,t,i})^\top c_s ,$$
#
# with `W_UK,i` of shape `(d_h, d_c)` and `c_s` the cached latent `(d_c,)`. Matrix products associate, so `W_UK,i`
# can go to the *query* side: compute the latent query `q_lat = W_UK,i^T q_C` once per head and step (`(d_c,)`),
# and take its dot product with every cached `c_s`. No key `k_C,s,i` is formed, so none needs caching.
#
# The values fold the other way. The head's output is a weighted sum of its values `v_s = W_UV,i c_s`, and a
# weighted sum of linear images is the image of the weighted sum:
#
# $$o_{t,i} = \sum_s p_{t,s}\, W_{UV,i}\, c_s = W_{UV,i} \Big(\sum_s p_{t,s}\, c_s\Big).$$
#
# So attention first averages the latents (`(d_c,)` per head) and applies `W_UV,i` once. (It could go one step
# further into `W_O`, whose slice `W_O,i` is the next matrix the head's output meets.) Both orders, on small random
# matrices in float64:

# %%
torch.manual_seed(0)
d_c, d_h, S = 16, 8, 6                                   # latent width, head width, cached positions (V2: 512, 128)
f64 = dict(dtype=torch.float64)
W_UK, W_UV = torch.randn(d_h, d_c, **f64), torch.randn(d_h, d_c, **f64)   # one head's up-projections
c_kv = torch.randn(S, d_c, **f64)                       # the cache: one latent per position
q_C = torch.randn(d_h, **f64)                            # the head's query at the current position (no RoPE part)

k_C = c_kv @ W_UK.T                                      # (S, d_h): keys expanded, as the equations read
scores_naive = k_C @ q_C                                 # (S,)
q_lat = W_UK.T @ q_C                                     # (d_c,): W_UK absorbed into the query
scores_absorb = c_kv @ q_lat                             # (S,)
p = torch.softmax(scores_naive / (d_h ** 0.5), dim=0)    # (S,)
o_naive = p @ (c_kv @ W_UV.T)                            # (d_h,): weights times the expanded values
o_absorb = W_UV @ (p @ c_kv)                             # (d_h,): W_UV after the weighted sum of latents
print("scores:", scores_naive.numpy().round(3))
print(f"max |scores_naive - scores_absorb| = {(scores_naive - scores_absorb).abs().max():.1e}")
print(f"max |o_naive - o_absorb|           = {(o_naive - o_absorb).abs().max():.1e}")

# %% [markdown]
# Every head reads the *same* `c_s`; only `q_lat` and `W_UV,i` differ between heads. That is why one latent per
# token serves 128 heads. Here are the real matrices of one V2 layer: `MLA` built on PyTorch's `meta` device has
# the parameters' shapes and no memory. `wkv_b` holds `W_UK` and `W_UV` of every head, `[k_nope | v]` per head;
# `MLA._attend_absorb` views it as below.

# %%
with torch.device("meta"):                       # shapes only: the 5 matrices of one V2 layer, no numbers
    layer = MLA(v2, layer=0)
meaning = {"wq_a": "W_DQ: h_t -> c_q (q_lora_rank)", "wq_b": "W_UQ and W_QR: c_q -> [q_C | q_R] of every head",
           "wkv_a": "W_DKV and W_KR: h_t -> [c_kv | k_R]", "wkv_b": "W_UK and W_UV: c_kv -> [k_C | v_C] of every head",
           "wo": "W_O: the heads' outputs -> d_model"}
for name, param in layer.named_parameters():
    if param.ndim == 2:
        print(f"{name.split('.')[0]:6s} {str(tuple(param.shape)):14s} {meaning[name.split('.')[0]]}")

nh, d_n, d_R, d_v, d_c_v2 = v2.n_heads, v2.qk_nope_head_dim, v2.qk_rope_head_dim, v2.v_head_dim, v2.kv_lora_rank
W = layer.wkv_b.weight.view(nh, d_n + d_v, d_c_v2)       # (nh, nope + v, d_c)
W_UK_v2, W_UV_v2 = W.split([d_n, d_v], dim=1)            # (nh, nope, d_c), (nh, v, d_c)
print(f"\nW_UK: {tuple(W_UK_v2.shape)} = {nh} heads of ({d_n} x {d_c_v2}); "
      f"W_UV: {tuple(W_UV_v2.shape)} = {nh} heads of ({d_v} x {d_c_v2})")
print(f"decoding one token against S cached positions, per layer:")
print(f"  q_C       ({nh}, {d_n})       -> q_lat = W_UK^T q_C    ({nh}, {d_c_v2})")
print(f"  scores    q_lat . c_kv (S, {d_c_v2}) + q_R ({nh}, {d_R}) . k_R (S, {d_R})   -> ({nh}, S)")
print(f"  o_lat     softmax(scores) @ c_kv                    -> ({nh}, {d_c_v2})")
print(f"  o         W_UV o_lat                                -> ({nh}, {d_v}) -> wo -> ({v2.d_model},)")

# %% [markdown]
# ### Why the RoPE key is decoupled
#
# Suppose RoPE were applied to the keys the usual way, `k_s = R_s W_UK c_s` with `R_s` the rotation of position
# `s`, and the query `R_t q`. Then
#
# $$ (R_t q)^\top R_s W_{UK} c_s = (W_{UK}^\top R_s^\top R_t\, q)^\top c_s = (W_{UK}^\top R_{t-s}\, q)^\top c_s ,$$
#
# and the rotation sits *between* the query and `W_UK`, different for every cached position. The absorbed query
# would be a different vector for each `s`: computing them costs as much as expanding the keys, and is exactly what
# the latent cache was meant to avoid. With `apply_rope_interleaved` (rotation by `-angle` is `R_s^T`), the
# latent query each cached position would need, with and without RoPE on the key:

# %%
cos, sin = rope_cos_sin(d_h, S, theta=10000.0)          # (S, d_h) tables for positions 0..S-1
t = S - 1                                               # the query's position: the newest token
q_t = apply_rope_interleaved(q_C[None], cos[t:t + 1], sin[t:t + 1])           # (1, d_h): R_t q
k_rot = apply_rope_interleaved(c_kv @ W_UK.T, cos, sin)                       # (S, d_h): R_s W_UK c_s
q_lat_per_s = apply_rope_interleaved(q_t.expand(S, d_h), cos, -sin) @ W_UK    # (S, d_c): W_UK^T R_s^T R_t q
print(f"scores with RoPE on the key, two ways: max diff "
      f"{(k_rot @ q_t[0] - (q_lat_per_s * c_kv).sum(-1)).abs().max():.1e}")
print("distinct latent queries needed for", S, "cached positions:",
      f"without RoPE on the key {torch.linalg.matrix_rank(q_lat.expand(S, d_c)).item()},",
      f"with it {torch.linalg.matrix_rank(q_lat_per_s).item()}")

# %% [markdown]
# MLA's fix (equations 14-17): keep `k_C = W_UK c_kv` free of positions, and give positions to a separate pair,
# `q_R,i = RoPE(W_QR,i c_q)` per head and `k_R = RoPE(W_KR h_t)`, concatenated onto query and key. Their dot
# product `q_R,i . k_R` is taken directly, with the rotated `k_R` read from the cache: no matrix has to pass through
# a rotation. The score is the sum of the two parts, `q_lat . c_s + q_R,i . k_R,s`, which is the sum in
# `MLA._attend_absorb`.
#
# `k_R` is **one** vector per token, shared by all heads (like MQA's key), because it must be cached as it is: one
# per head would add `n_heads * d_R = 128 * 64 = 8,192` numbers per token per layer to the 576. The queries' RoPE
# parts stay per head, since queries are never cached.

# %% [markdown]
# ## 3. The two paths in minicoder
#
# A small MLA model with V2's shape of attention: a compressed query (`q_lora_rank`), a latent of 64, a shared RoPE
# key of 16, 16 heads, and no MoE (chapter 7's subject; `ModelConfig.from_preset("tiny-moe")` has both). One set of
# random weights is loaded into both paths.

# %%
mla_config = dict(vocab_size=128, n_layers=2, d_model=128, n_heads=16, d_ff=256, max_seq_len=2048,
                  q_lora_rank=96, kv_lora_rank=64, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32)
config_naive = ModelConfig(**mla_config, mla_impl="naive")
config_absorb = ModelConfig(**mla_config, mla_impl="absorb")
torch.manual_seed(0)
naive = Transformer(config_naive).eval()
absorb = Transformer(config_absorb).eval()
absorb.load_state_dict(naive.state_dict())               # the same weights: mla_impl changes no parameter
print(f"{naive.num_params():,} parameters")

ids = torch.randint(0, 128, (2, 64))
with torch.no_grad():
    logits_naive, logits_absorb = naive(ids), absorb(ids)   # (2, 64, 128) each
print(f"max |logits naive - logits absorb| = {(logits_naive - logits_absorb).abs().max():.1e} "
      f"(logits up to {logits_naive.abs().max():.2f})")

prompt = ids[0, :16].tolist()
gen_naive = generate_ids(naive, prompt, max_new_tokens=48)          # greedy, each with its own cache
gen_absorb = generate_ids(absorb, prompt, max_new_tokens=48)
print("greedy, naive: ", gen_naive[:24], "...")
print("greedy, absorb:", gen_absorb[:24], "...")
print("the same 48 tokens:", gen_naive == gen_absorb)

# %% [markdown]
# Float32 rounding differs between the two orders of multiplication, so the logits agree to about 1e-6, not
# bit for bit (tests/test_mla.py holds both paths to a float64 transcription of the paper's equations).
#
# What each path allocates: `make_cache` builds the cache a config needs (`MLACache` for MLA), of
# `max_seq_len` positions. The naive cache holds `k` and `v` per head; the absorbed one `c_kv` and `k_pe`.

# %%
def cache_numbers(cache: MLACache) -> dict:
    parts = {name: getattr(cache, name) for name in ("k", "v", "c_kv", "k_pe")}
    return {name: sum(x.numel() for x in layers) for name, layers in parts.items() if layers is not None}


sizes = {}
for config in (config_naive, config_absorb):
    cache = make_cache(config, batch_size=1)                          # float32, max_seq_len positions
    numbers = cache_numbers(cache)
    sizes[config.mla_impl] = sum(numbers.values())
    shapes = ", ".join(f"{name} {tuple(getattr(cache, name)[0].shape)}" for name in numbers)
    print(f"{config.mla_impl:6s}: per layer {shapes}")
    print(f"        {sizes[config.mla_impl]:,} numbers ({sizes[config.mla_impl] * 4 / 2**20:.2f} MiB in float32) = "
          f"{MLACache.values_per_token_per_layer(config)} per token per layer x {config.n_layers} layers x "
          f"{config.max_seq_len} positions")
print(f"naive / absorb: {sizes['naive'] / sizes['absorb']:.0f}x  "
      f"(V2: {MLACache.values_per_token_per_layer(v2_naive) / MLACache.values_per_token_per_layer(v2):.1f}x)")

# %% [markdown]
# Smaller is not automatically faster. Per cached position and per head, the naive path multiplies a key of
# `d_nope + d_R` and a value of `d_v`; the absorbed one multiplies the latent twice (scores and output) and the RoPE
# key once, `2 d_c + d_R`, more arithmetic on less memory. At V2's dimensions, for each cached position, a decoding
# step reads from one layer's bf16 cache and computes in its attention:

# %%
for impl, c in (("naive", v2_naive), ("absorb", v2)):
    per_head = (c.qk_nope_head_dim + c.qk_rope_head_dim + c.v_head_dim if impl == "naive"
                else 2 * c.kv_lora_rank + c.qk_rope_head_dim)             # multiply-adds per head per position
    flops = 2 * c.n_heads * per_head
    read = MLACache.values_per_token_per_layer(c) * BF16
    print(f"{impl:6s}: {read:6,d} bytes and {flops:7,d} FLOPs per cached position: {flops / read:5.1f} FLOPs per byte")

# %% [markdown]
# One FLOP per byte is far below what any accelerator needs to keep its arithmetic busy (an H100's bf16 tensor
# cores do about 300 FLOPs in the time its memory delivers a byte: 989 TFLOP/s over 3.35 TB/s), so naive decoding
# waits on memory; the absorbed path does 242 per byte, near the balance point, which is what FlashMLA-style
# kernels exploit. A batch does not change these ratios: every sequence has a cache of its own.
#
# On a CPU the story is murkier: at short contexts both paths are dominated by the fixed cost of each step (the
# Python and the small matrix products), and the absorbed path's extra arithmetic competes with the naive path's
# extra memory traffic. Below, each path decodes single tokens at a few cache lengths. Each path's cache is filled
# once to 2,047 positions (prefilled in chunks); a step at position `L` reads positions `0..L` and writes
# position `L`, so one cache serves every length. Each length is timed 15 times, the two paths alternating, and
# the fastest step kept. These figures come from this machine and are illustrative only;
# `benchmarks/mla_moe.py` measures properly.

# %%
lengths = [16, 64, 256, 512, 1024, 2047]
ids = torch.randint(0, 128, (1, config_naive.max_seq_len))
models = {"naive": naive, "absorb": absorb}
caches, seconds = {}, {name: {L: [] for L in lengths} for name in models}
with torch.inference_mode():
    for name, model in models.items():
        caches[name] = make_cache(model.config, batch_size=1)
        t0 = time.perf_counter()
        for s in range(0, lengths[-1], 512):                               # prefill in chunks of 512
            model(ids[:, s:min(s + 512, lengths[-1])], caches[name], s)
        print(f"{name:6s}: prefill of {lengths[-1]} positions in {time.perf_counter() - t0:.2f} s")
    for L in lengths:
        for _ in range(15):
            for name, model in models.items():                             # alternate, so both see the same load
                t0 = time.perf_counter()
                model(ids[:, L:L + 1], caches[name], L)                    # one new token at position L
                seconds[name][L].append(time.perf_counter() - t0)
speed = {name: [1 / min(seconds[name][L]) for L in lengths] for name in models}
for name in models:
    print(f"{name:6s}: decode tokens/s at cache length "
          + ", ".join(f"{L}: {v:,.0f}" for L, v in zip(lengths, speed[name])))

fig, ax = plt.subplots(figsize=(6.5, 3.2))
for name, marker in (("naive", "o-"), ("absorb", "s-")):
    ax.plot(lengths, speed[name], marker, label=f"mla_impl={name}")
ax.set_xscale("log", base=2); ax.set_xlabel("cache length (positions)"); ax.set_ylabel("decode tokens/s (this CPU)")
ax.set_ylim(bottom=0); ax.legend(); ax.grid(alpha=0.3)
plt.tight_layout(); plt.show()

# %% [markdown]
# Both paths slow down as the cache grows, since every step reads all of it. What the plot shows depends on this
# machine and its load at the time; at the longest lengths, where reading the cache is most of the step, the
# naive path has 16 times more to read. On a GPU, with a real model's 128 heads, long contexts and a batch of
# sequences, the difference in memory decides: at long contexts it is the cache, not the weights, that limits how
# many sequences share a GPU, and the memory left after the weights holds 71 times more of them with MLA than
# with V2's per-head keys and values.
#
# Note also what the absorbed path pays in *prefill*: processing many query positions at once, it forms a score
# against every latent per head with `d_c`-wide dot products instead of `d_nope + d_R`-wide ones. DeepSeek-V3's
# inference code, like minicoder, uses one path for both; serving engines often prefill with the naive
# expansion and decode with the absorbed one.

# %% [markdown]
# ## Exercises
#
# Each exercise names the section it builds on and what of `minicoder` it needs.
#
# 1. **Fold ahead of time** (section 2; needs `MLA`). The paper suggests folding `W_UK` into `W_UQ` and `W_UV`
#    into `W_O` once, after training. For V2's shapes (print them from the `meta` layer), count the parameters of
#    the folded matrices `W_UK,i^T W_UQ,i` and `W_O,i W_UV,i` against their factors, and the FLOPs per decoded token
#    of folding ahead of time versus at run time as `_attend_absorb` does. Then fold the weights of the tiny model
#    of section 3 and check that its logits are unchanged. Why did DeepSeek-V3's code (and minicoder) not fold?
# 2. **MLA without the decoupled key** (section 2; needs `apply_rope_interleaved`). Make a variant of the naive
#    path with no `k_R`: rotate the first `qk_rope_head_dim` dimensions of each head's `k_C = W_UK c_kv` and of
#    `q_C` instead. Show that it still computes a causal, relative-position attention, and that no fixed latent
#    query reproduces its scores (extend the rank check of section 2 to many positions). What would a cache for
#    this variant have to hold?
# 3. **Fewer bits** (section 1; needs `mla_bytes_per_token` and `v1_bytes_per_token`). How many GB does one
#    128K-token sequence take in V2's cache with fp8 values, and with 6-bit ones? With the weights in fp8
#    (`ModelConfig.num_params()` bytes) on 8 GPUs of 80 GB, how many 128K sequences fit in the rest, for MLA and for
#    V2 with per-head keys and values?
# 4. **The 2.25 groups** (section 1; needs only the configs). Derive the paper's "GQA with 2.25 groups" from
#    `kv_lora_rank`, `qk_rope_head_dim` and the head width, for V2 and for V2-Lite. Which `kv_lora_rank` would match
#    DeepSeek-Coder 33B's 8 groups, and what does MLA's cache look like as a function of `n_heads` compared with
#    MHA's and GQA's?
