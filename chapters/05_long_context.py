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
# # Chapter 5: Long context: linear interpolation vs YaRN
#
# Both DeepSeek-Coder generations pretrain with a 4K context and stretch it afterwards. DeepSeek-Coder v1 (paper
# section 3.6) reaches 16K by **linear scaling** ("position interpolation", Chen et al., 2023): RoPE base 100,000
# and every position divided by 4, then 1,000 steps of training at 16K. DeepSeek-V2 (section 3.1.4, "Long context
# extension") reaches 128K with **YaRN** (Peng et al., 2023): factor 40, `beta_fast` 32,
# `beta_slow` 1, `mscale` 0.707, `mscale_all_dim` 0.707, then 1,000 steps at 32K. DeepSeek-Coder-V2 keeps V2's
# settings. This chapter looks at what the two methods do to each pair of RoPE dimensions, and then tries them on
# a tiny model:
#
# 1. **Wavelengths**: how many times each RoPE pair turns over the original context.
# 2. **Frequencies**: what plain RoPE, linear interpolation and YaRN do to each pair's speed, and YaRN's ramp.
# 3. **The temperature**: YaRN's `mscale`, and how DeepSeek splits it between the cos/sin tables and the
#    softmax scale.
# 4. **An experiment**: train a small model on 64-token windows, read 512-token ones with each scaling.
# 5. **A short fine-tune** at the longer length with each scaling, as both papers do.
#
# Everything below imports from `minicoder` (`minicoder/rope.py` holds RoPE, linear scaling and YaRN;
# `minicoder/config.py` the `rope_*` fields); the notebook adds plots and the experiment, not a second
# implementation.

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
import math
import tempfile
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from minicoder.config import ModelConfig
from minicoder.data import default_corpus_dir, prepare_tokens
from minicoder.model import Transformer
from minicoder.rope import (rope_frequencies, rope_tables, rope_wavelengths, softmax_scale, yarn_correction_range,
                            yarn_frequencies, yarn_mscale)
from minicoder.tokenizer import Tokenizer
from minicoder.train import TrainConfig, load_checkpoint, param_groups, train

# The released configs: V2's RoPE and YaRN settings, and v1's head and base.
v2 = ModelConfig.from_preset("deepseek-coder-v2-lite")
v1 = ModelConfig.from_preset("deepseek-coder-6.7b")
L = v2.rope_original_max_seq_len                       # 4096: the context both were pretrained with
print(f"V2: RoPE on qk_rope_head_dim={v2.rope_dim} dims, base {v2.rope_theta:,.0f}, {v2.rope_scaling_type} "
      f"x{v2.rope_scaling_factor:.0f} from {L:,}, beta_fast {v2.rope_beta_fast:.0f}, "
      f"beta_slow {v2.rope_beta_slow:.0f}, mscale {v2.rope_mscale}, mscale_all_dim {v2.rope_mscale_all_dim}")
print(f"v1: RoPE on head_dim={v1.rope_dim} dims, base {v1.rope_theta:,.0f}, {v1.rope_scaling_type} "
      f"x{v1.rope_scaling_factor:.0f}, max_seq_len {v1.max_seq_len:,}")

# %% [markdown]
# ## 1. How far each pair turns
#
# RoPE (chapter 4) turns pair `i` of a query or key at position `m` by the angle `m * theta^(-2i/d)`. Its
# **wavelength** `2*pi * theta^(2i/d)` is the number of tokens it takes that pair to go once round its circle,
# and `L / wavelength` is how many **turns** it makes over the context `L` it was trained on. `rope_wavelengths`
# gives them for V2's 64 rotated dimensions (base 10,000) and for v1's 128 (base 100,000).

# %%
wl_v2 = rope_wavelengths(v2.rope_dim, v2.rope_theta)    # (32,) tokens per turn
wl_v1 = rope_wavelengths(v1.rope_dim, v1.rope_theta)    # (64,)
fig, (a0, a1) = plt.subplots(1, 2, figsize=(11, 3.8))
for wl, label in [(wl_v2, f"V2: d={v2.rope_dim}, base {v2.rope_theta:,.0f}"),
                  (wl_v1, f"v1: d={v1.rope_dim}, base {v1.rope_theta:,.0f}")]:
    a0.semilogy(wl, ".-", label=label)
    a1.semilogy(L / wl, ".-", label=label)
a0.axhline(L, color="gray", ls="--", lw=1); a0.text(1, L * 1.3, "4K: the original context", color="gray")
a0.set_ylabel("wavelength (tokens per turn)")
a1.axhline(v2.rope_beta_fast, color="C3", ls=":", lw=1); a1.text(40, 40, "beta_fast = 32 turns", color="C3")
a1.axhline(v2.rope_beta_slow, color="C2", ls=":", lw=1); a1.text(40, 1.3, "beta_slow = 1 turn", color="C2")
a1.set_ylabel(f"turns over {L:,} tokens")
for ax in (a0, a1):
    ax.set_xlabel("pair i"); ax.grid(alpha=0.3); ax.legend(loc="lower right" if ax is a0 else "upper right")
plt.tight_layout(); plt.show()

for name, wl in [("V2", wl_v2), ("v1", wl_v1)]:
    turns = L / wl
    print(f"{name}: {len(wl)} pairs; the fastest turns {turns[0]:.0f} times over 4K ({wl[0]:.2f} tokens per turn), "
          f"the slowest {turns[-1]:.4f} times ({wl[-1]:,.0f} tokens per turn); "
          f"{int((turns > 32).sum())} pairs turn more than 32 times, {int((turns < 1).sum())} less than once")

# %% [markdown]
# The fast pairs have been all the way round their circles dozens to hundreds of times during pretraining: whatever
# angle they meet at position 100,000 they have met before. The slow pairs have only ever seen an arc of their circle,
# `[0, 2*pi * L / wavelength)`; past `L` they reach angles no training step produced, and the attention scores
# built from them are out of distribution. That is why a model read beyond its training length
# (**extrapolation**) degrades, and why the fix only needs to care about the slow pairs.
#
# ## 2. What each scaling does to each pair
#
# * **Linear interpolation** divides every frequency by the factor `s` (positions `m/s`): the whole long context
#   is squeezed into the angles of the original one. The slow pairs are fixed, but the fast pairs, which the model
#   uses to tell neighbouring tokens apart, now turn `s` times less between neighbours than they did in training.
# * **YaRN** ("NTK-by-parts" plus a temperature) treats each pair by its turns `r_i = L / wavelength_i` over the
#   original context: a pair with `r_i > beta_fast` keeps its frequency, a pair with `r_i < beta_slow` is
#   interpolated like linear scaling, and in between it blends the two,
#   `freq_i' = (1 - gamma_i) * freq_i / s + gamma_i * freq_i`, with `gamma_i` falling linearly in the pair index
#   from 1 to 0. `yarn_correction_range` turns the two betas into pair indices by solving `L / wavelength_i = beta`
#   for `i`: `i = d * ln(L / (2*pi*beta)) / (2 ln theta)` (floored for beta_fast, ceiled for beta_slow).
#
# With DeepSeek-V2's `beta_fast = 32` and `beta_slow = 1`: "a pair that turns more than 32 times in 4K tokens is
# left alone; one that turns less than once is interpolated by the full 40". Below, `gamma` is read back from
# `yarn_frequencies` (where its frequency sits between the linear one, 0, and the plain one, 1).

# %%
d, theta, s = v2.rope_dim, v2.rope_theta, v2.rope_scaling_factor
plain = rope_frequencies(d, theta)                      # (d/2,) radians per token
linear = rope_frequencies(d, theta, "linear", s)        # (d/2,) plain / 40
yarn = yarn_frequencies(d, theta, s, L, v2.rope_beta_fast, v2.rope_beta_slow)  # (d/2,)
low, high = yarn_correction_range(d, theta, L, v2.rope_beta_fast, v2.rope_beta_slow)
gamma = (yarn - linear) / (plain - linear)              # (d/2,) 1: frequency kept, 0: divided by 40

fig, (a0, a1) = plt.subplots(1, 2, figsize=(11, 3.8))
a0.semilogy(plain, ".-", label="plain RoPE (extrapolation)")
a0.semilogy(linear, ".-", label=f"linear x{s:.0f}")
a0.semilogy(yarn, ".--", label=f"YaRN x{s:.0f}")
a0.set_ylabel("frequency (radians per token)"); a0.legend()
a1.plot(gamma, ".-", color="C2")
for i, name in [(low, "low"), (high, "high")]:
    a1.axvline(i, color="gray", ls=":", lw=1); a1.text(i + 0.3, 0.5, f"{name} = {i}", color="gray")
a1.set_ylabel("gamma (1: keep, 0: interpolate)")
for ax in (a0, a1):
    ax.set_xlabel(f"pair i (V2's d = {d})"); ax.grid(alpha=0.3)
plt.tight_layout(); plt.show()

print(f"yarn_correction_range: low {low}, high {high} "
      f"(unrounded: {d * math.log(L / (2 * math.pi * v2.rope_beta_fast)) / (2 * math.log(theta)):.2f} "
      f"and {d * math.log(L / (2 * math.pi * v2.rope_beta_slow)) / (2 * math.log(theta)):.2f})")
print(" pair  turns in 4K  gamma  YaRN/plain  YaRN turns in 160K")
for i in (0, 5, low, 12, 15, 18, 21, high, 27, d // 2 - 1):
    print(f"{i:5d}  {L / wl_v2[i]:11.3f}  {gamma[i]:5.3f}  {yarn[i] / plain[i]:10.4f}  "
          f"{v2.max_seq_len * yarn[i].item() / (2 * math.pi):18.3f}")

# %% [markdown]
# Pairs 0 to `low` keep their speed, pairs from `high` on run 40 times slower, and the ramp between is linear in
# the pair index, which is linear in the log of the wavelength. The last column shows the effect: over V2's
# 163,840 positions the interpolated pairs turn exactly as often as they did over 4K in pretraining (never
# beyond the arc they know), while the fast pairs turn 40 times as often, round circles they know by heart.
# Linear interpolation would instead slow pair 0 to 0.025 radians per token, a spacing between neighbours the
# model never saw.
#
# Two details of DeepSeek's formula (which `yarn_correction_range` and `yarn_frequencies` follow): the ramp is
# clipped to pair indices `[0, d - 1]`, so pair 0 always has `gamma = 1` and is never interpolated, whatever the
# betas; and the ends are rounded outwards (floor and ceil), so the ramp covers slightly more pairs than the
# betas say.
#
# ## 3. The temperature: mscale
#
# YaRN also sharpens attention: it multiplies the attention logits by `mscale^2`, with
# `mscale = 0.1 * m * ln(s) + 1` (`yarn_mscale(s, m)`; `m = 1` in the YaRN paper, which fitted the formula on
# LLaMA models: over a longer context the softmax spreads over more keys, and a slightly lower temperature
# restores its sharpness). DeepSeek-V2 uses `m = 0.707`, a gentler temperature.

# %%
factors = np.geomspace(1, 64, 200)
fig, ax = plt.subplots(figsize=(7, 3.5))
for m in (1.0, 0.707):
    ax.plot(factors, [yarn_mscale(f, m) for f in factors], label=f"mscale, m = {m}")
    ax.plot(factors, [yarn_mscale(f, m) ** 2 for f in factors], "--", label=f"mscale^2 (on the logits), m = {m}")
ax.axvline(s, color="gray", ls=":", lw=1); ax.text(s * 1.05, 1.05, "V2: s = 40", color="gray")
ax.set_xscale("log"); ax.set_xlabel("scaling factor s"); ax.set_ylabel("multiplier"); ax.legend(); ax.grid(alpha=0.3)
plt.tight_layout(); plt.show()
print(f"s = 40: yarn_mscale(40, 1.0) = {yarn_mscale(s, 1.0):.4f}, yarn_mscale(40, 0.707) = {yarn_mscale(s, 0.707):.4f} "
      f"(squared: {yarn_mscale(s, 1.0) ** 2:.3f} and {yarn_mscale(s, 0.707) ** 2:.3f})")

# %% [markdown]
# Where the temperature goes depends on which dimensions RoPE turns. In a **v1 model** every dimension of `q` and
# `k` is rotated, so multiplying the cos/sin tables by `mscale` multiplies `q` and `k` each by it and their dot
# product by `mscale^2`: the whole temperature rides on the tables. In **MLA** (DeepSeek-V2, `minicoder/mla.py`)
# only the 64 `k_pe`/`q_pe` dimensions are rotated; the 128 `nope` dimensions never touch the tables. DeepSeek's code
# therefore puts `mscale(mscale_all_dim)^2` on the softmax scale, which reaches all 192 dimensions, and only the
# ratio `mscale(mscale) / mscale(mscale_all_dim)` on the tables: 1.0 for V2, whose two are equal.
# `rope_tables` and `softmax_scale` do exactly that. At position 0 every angle is 0, so `cos` there is the
# table's multiplier:

# %%
cos, _ = rope_tables(v2, seq_len=1)                     # (1, 64): V2's tables at position 0
qk_dim = v2.qk_nope_head_dim + v2.qk_rope_head_dim      # 192
print(f"V2 (MLA): tables x {cos[0, 0]:.4f}; softmax scale = {softmax_scale(v2, qk_dim) * math.sqrt(qk_dim):.4f} "
      f"/ sqrt({qk_dim}); logits of every dimension x {softmax_scale(v2, qk_dim) * math.sqrt(qk_dim):.4f}")

v1_yarn = ModelConfig.from_dict({**v1.to_dict(), "rope_theta": 10000.0, "rope_scaling_type": "yarn",
                                 "rope_scaling_factor": s, "rope_original_max_seq_len": L,
                                 "rope_mscale": 0.707, "rope_mscale_all_dim": 0.707, "max_seq_len": 163840})
cos1, _ = rope_tables(v1_yarn, seq_len=1)               # (1, 128): a v1 model with V2's YaRN settings
print(f"v1 with V2's YaRN: tables x {cos1[0, 0]:.4f}; softmax scale 1/sqrt({v1.head_dim}) unchanged; "
      f"logits x {cos1[0, 0] ** 2:.4f}")

# %% [markdown]
# The same total either way: the logits are sharpened by about 1.59 at factor 40.
#
# ## 4. An experiment: train short, read long
#
# Now a model to try the three on. It is small (2 layers, `d_model` 128, 4 heads of 32 dimensions, so 16 RoPE
# pairs with base 10,000, no scaling) and is trained on **64-token windows** of 20 files of this Python's standard
# library; two files are held out by `prepare_tokens`. Then the trained weights are read into three configs that
# differ only in their `rope_*` fields (the RoPE tables are buffers computed from the config, not saved with the
# weights) and each reads held-out **512-token windows**, 8 times the training length:
#
# * no scaling (extrapolation);
# * linear scaling by 8;
# * YaRN by 8 with `rope_original_max_seq_len = 64`, V2's betas and V2's `mscale` 0.707.
#
# Training takes 20 to 40 seconds on two CPU cores.

# %%
names = ["argparse.py", "ast.py", "bisect.py", "calendar.py", "colorsys.py", "copy.py", "csv.py", "dataclasses.py",
         "difflib.py", "enum.py", "fnmatch.py", "fractions.py", "functools.py", "heapq.py", "pprint.py", "queue.py",
         "random.py", "shlex.py", "statistics.py", "string.py", "textwrap.py", "typing.py"]
work = Path(tempfile.mkdtemp(prefix="minicoder-ch5-"))
(work / "corpus").mkdir()
for n in names:
    (work / "corpus" / n).write_bytes((default_corpus_dir() / n).read_bytes())
t = time.perf_counter()
tok = Tokenizer.train([(work / "corpus" / n).read_text() for n in names], vocab_size=512)
data = prepare_tokens(tok, work / "corpus", val_fraction=0.1, cache_dir=work / "cache", progress=False)
print(f"tokenizer and tokens in {time.perf_counter() - t:.1f} s; "
      + ", ".join(f"{k}: {v['files']} files, {v['tokens']:,} tokens" for k, v in data.meta["splits"].items())
      + f" (held out: {', '.join(data.meta['splits']['val']['paths'])})")

# %%
TRAIN_LEN, EVAL_LEN = 64, 512
factor = EVAL_LEN / TRAIN_LEN                            # 8.0
base = ModelConfig(vocab_size=tok.vocab_size, n_layers=2, d_model=128, n_heads=4, d_ff=256,
                   max_seq_len=EVAL_LEN, rope_theta=10000.0)
train_config = TrainConfig(batch_size=16, seq_len=TRAIN_LEN, max_steps=300, lr=3e-3, warmup_steps=15,
                           eval_interval=10**6, eval_iters=1, eval_full=False, checkpoint_interval=10**6,
                           log_interval=50, out_dir=str(work / "run"))
summary = train(base, train_config, data, tok, progress=False)
trained, *_ = load_checkpoint(work / "run")
weights = trained.state_dict()
print(f"{base.num_params() / 1e6:.2f}M parameters, {summary['step']} steps of {train_config.tokens_per_step} tokens "
      f"in {summary['elapsed_s']:.0f} s; training loss of the last 50 steps {np.mean(summary['losses'][-50:]):.3f}")

SCALINGS = {
    "no scaling": {},
    f"linear x{factor:.0f}": dict(rope_scaling_type="linear", rope_scaling_factor=factor),
    f"YaRN x{factor:.0f}": dict(rope_scaling_type="yarn", rope_scaling_factor=factor,
                                rope_original_max_seq_len=TRAIN_LEN, rope_mscale=0.707),
}


def with_scaling(name: str) -> Transformer:
    """The trained weights under the RoPE scaling `name`: a config with only the rope_* fields changed."""
    model = Transformer(ModelConfig.from_dict({**base.to_dict(), **SCALINGS[name]}))
    model.load_state_dict(weights)                     # the cos/sin tables are not in the state dict
    return model.eval()


hd = base.head_dim
toy_low, toy_high = yarn_correction_range(hd, base.rope_theta, TRAIN_LEN, 32.0, 1.0)
toy_turns = TRAIN_LEN / rope_wavelengths(hd, base.rope_theta)
print(f"the toy's {hd // 2} pairs turn {toy_turns[0]:.1f} down to {toy_turns[-1]:.4f} times in {TRAIN_LEN} tokens; "
      f"YaRN's ramp runs from pair {toy_low} to pair {toy_high}")
toy_ratio = yarn_frequencies(hd, base.rope_theta, factor, TRAIN_LEN) / rope_frequencies(hd, base.rope_theta)  # (hd/2,)
print("YaRN/plain frequency per pair:", " ".join(f"{r:.3f}" for r in toy_ratio.tolist()))

# %% [markdown]
# At this scale no pair turns 32 times in the 64-token training context, so none is "fast" by V2's `beta_fast`: only
# pair 0 keeps its speed (always, see section 2), pairs 1 to 4 are on the ramp, and the other 11 are interpolated
# like linear scaling. The toy's YaRN is closer to linear scaling than V2's is.
#
# The evaluation reads the first 48 non-overlapping 512-token windows of the held-out files and records the loss
# at every position; the curves average it over the windows (and over bins of 32 positions).

# %%
N_WINDOWS, BIN = 48, 32
rows = data.splits["val"].window(0, N_WINDOWS * (EVAL_LEN + 1)).astype(np.int64)
rows = torch.from_numpy(rows).view(N_WINDOWS, EVAL_LEN + 1)  # (N, T+1)
x_val, y_val = rows[:, :-1], rows[:, 1:]                     # (N, T) each
BUCKETS = [(0, TRAIN_LEN), (TRAIN_LEN, 4 * TRAIN_LEN), (4 * TRAIN_LEN, EVAL_LEN)]


def position_losses(model: Transformer) -> torch.Tensor:
    """Loss in nats of every held-out window at every position, (N_WINDOWS, EVAL_LEN)."""
    with torch.no_grad():
        logits = model(x_val)                                    # (N, T, V)
    return F.cross_entropy(logits.transpose(1, 2), y_val, reduction="none")  # (N, T)


def report(losses: dict[str, torch.Tensor], title: str, lengths: dict[str, int]):
    """Plot the per-position loss of each scaling, and its difference from no scaling (the windows are shared, so
    the difference cancels the ups and downs that come from the text itself); print each bucket's mean, and each
    scaling minus no scaling on the last bucket with its standard error over the windows."""
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(12, 3.8))
    ref_binned = losses["no scaling"].mean(0).view(-1, BIN).mean(1)  # (T / BIN,)
    centres = np.arange(EVAL_LEN // BIN) * BIN + BIN / 2
    for name, loss in losses.items():
        binned = loss.mean(0).view(-1, BIN).mean(1)              # (T / BIN,)
        a0.plot(centres, binned, ".-", label=name)
        a1.plot(centres, binned - ref_binned, ".-", label=name)
    a0.set_ylabel(f"loss (nats), mean of {N_WINDOWS} windows")
    a1.set_ylabel("loss minus no scaling (nats)"); a1.legend()
    for ax in (a0, a1):
        for label, n in lengths.items():
            ax.axvline(n, color="gray", ls=":", lw=1)
            ax.text(n + 4, 1.0, label, color="gray", va="top", transform=ax.get_xaxis_transform())
        ax.set_xlabel(f"position in the window (bins of {BIN})"); ax.grid(alpha=0.3)
    fig.suptitle(title); plt.tight_layout(); plt.show()
    print(f"{'positions':12s}" + "".join(f"{f'{a}-{b - 1}':>12s}" for a, b in BUCKETS))
    for name, loss in losses.items():
        print(f"{name:12s}" + "".join(f"{loss[:, a:b].mean():12.3f}" for a, b in BUCKETS))
    a, b = BUCKETS[-1]
    ref = losses["no scaling"][:, a:b].mean(1)                   # (N,) per window
    for name, loss in list(losses.items())[1:]:
        diff = loss[:, a:b].mean(1) - ref                        # (N,)
        se = diff.std() / math.sqrt(N_WINDOWS)
        print(f"{name} minus no scaling, positions {a}-{b - 1}: {diff.mean():+.3f} +- {se:.3f} nats")
    for a, b in BUCKETS:
        best = min(losses, key=lambda k: losses[k][:, a:b].mean().item())
        print(f"lowest loss at positions {a}-{b - 1}: {best}")


t = time.perf_counter()
before = {name: position_losses(with_scaling(name)) for name in SCALINGS}
print(f"evaluated in {time.perf_counter() - t:.1f} s")
report(before, f"trained on {TRAIN_LEN} tokens, read {EVAL_LEN} (no fine-tuning)", {"training length": TRAIN_LEN})

# %% [markdown]
# Three things to read in the curves and the numbers printed above:
#
# * **No scaling** is the lowest of the three inside the training length (the model sees exactly what it was
#   trained on). Past position 64 its loss rises, although more context should make prediction easier: the slow
#   pairs reach angles it never saw.
# * **Linear x8** is worse than no scaling almost everywhere, most of all at short positions: every pair,
#   including the fast ones the model uses to tell neighbours apart, now turns 8 times slower between neighbours
#   than in training. Far out, it is no better than extrapolating.
# * **YaRN x8** keeps pair 0's speed and part of pairs 1-4's, so inside the training length it stays closer to
#   plain RoPE than linear scaling does, and past it, where its slow pairs stay inside the arcs they were trained
#   on, it is the lowest of the three.
#
# So without any training at the new length YaRN is the one that degrades gracefully, in line with the YaRN
# paper's results on LLaMA. The "+-" figures are one standard error of the paired difference over the 48 windows; they measure
# the noise of the evaluation text, not of training (this is one model, from one seed).
#
# ## 5. Fine-tuning at the longer length
#
# Neither DeepSeek model is used without training at the new length: v1 trains 1,000 steps at 16K with linear
# x4, V2 1,000 steps at 32K with YaRN x40 (and is then read at up to 128K, 4 times its fine-tuning length).
# The same here, scaled down: each of the three variants trains 40 more steps on 4 windows of **256** tokens
# (4 times the pretraining length) at the pretraining's final learning rate, 3e-4 (DeepSeek-Coder's long stage
# also keeps stage 1's final rate), with AdamW, weight decay on matrices only (`param_groups`) and clipping at
# 1.0, and is then read at 512 again, like V2 beyond its fine-tuning length. A minimal loop, so that the three
# see the same windows in the same order and differ only in their RoPE tables.

# %%
FT_LEN, FT_STEPS, FT_LR = 4 * TRAIN_LEN, 40, 3e-4


def fine_tune(name: str) -> Transformer:
    model = with_scaling(name).train()
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)                       # the same windows for every scaling
    optimizer = torch.optim.AdamW(param_groups(model, 0.1), lr=FT_LR, betas=(0.9, 0.95))
    for _ in range(FT_STEPS):
        x, y = data.get_batch("train", 4, FT_LEN, gen)           # (4, 256) each
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return model.eval()


t = time.perf_counter()
after = {name: position_losses(fine_tune(name)) for name in SCALINGS}
print(f"3 fine-tunes of {FT_STEPS} steps ({FT_STEPS * 4 * FT_LEN:,} tokens each) and their evaluations "
      f"in {time.perf_counter() - t:.1f} s")
report(after, f"after {FT_STEPS} steps at {FT_LEN} tokens, read {EVAL_LEN}",
       {"pretraining": TRAIN_LEN, "fine-tuning": FT_LEN})

# %% [markdown]
# Forty steps at 256 tokens repair much of the damage, and the three end up closer together than before (compare
# the two tables printed above). Part of every gain, at positions 0-63 especially, is just the extra training
# tokens (printed above), not the longer windows. In this run YaRN is still the lowest at the far positions and
# linear scaling the highest, by margins larger than their standard errors. YaRN's lead over no scaling is much
# smaller than before fine-tuning: a model fine-tuned on 256 positions with plain RoPE has simply learned those
# positions. In the difference plot, YaRN and no scaling are close up to the
# fine-tuning length and part beyond it: positions 256-511 lie past the fine-tuning length for all three, as 128K
# lies past V2's 32K, and that is where the interpolated slow pairs still pay.
#
# What this toy cannot show. With 16 pairs and a 64-token context, YaRN's ramp sits on pairs 0-5 and no pair is
# "fast" in V2's sense; at 4K with 32 pairs, 11 pairs are kept and 9 interpolated (section 2), so the difference
# between YaRN and linear scaling is larger there. The papers' claims (YaRN needs fewer fine-tuning steps; V2
# passes needle-in-a-haystack tests up to 128K) are about models with billions of parameters, and are not
# tested here.

# %% [markdown]
# ## Exercises
#
# 1. **Dynamic NTK** (section 4; needs `rope_frequencies` and `rope_tables`). "NTK-aware" scaling raises the base
#    instead of dividing the positions: `theta' = theta * s^(d / (d - 2))`; the *dynamic* variant recomputes the
#    factor from the current length `T` (say `s = max(1, T / L)`; HF `transformers`' "dynamic" type is a variant).
#    Add both as a `rope_scaling_type`, and add them to the comparison of section 4 without fine-tuning. Where does
#    each sit between extrapolation and YaRN at positions 0-63 and 256-511?
# 2. **YaRN's two limits** (section 2; needs `yarn_correction_range` and `yarn_frequencies`). Find values of
#    `beta_fast` and `beta_slow` for which `yarn_frequencies` equals plain RoPE on every pair, and values for which
#    it equals linear scaling on every pair it can. Which pair can never be interpolated, and which line of
#    `yarn_correction_range` decides that? Does it matter at V2's scale? At the toy's?
# 3. **The slowest pair at 128K** (sections 1 and 2; needs `rope_wavelengths` and `yarn_frequencies`). How many
#    tokens does V2's slowest pair need for one turn after YaRN x40, and what fraction of a turn does it make over
#    128K tokens? Compare with the fraction it made over 4K in pretraining. For each pair, is the largest angle it
#    reaches at 128K (after YaRN) inside the range it saw in pretraining? Which pairs are not, and why is that
#    harmless for the fast ones?
# 4. **Without the temperature** (sections 3 to 5; needs `yarn_mscale` and `rope_tables`). Rerun the comparison
#    with YaRN's `rope_mscale = 0.0` (no temperature) and `1.0` (the YaRN paper's), before and after fine-tuning.
#    Is the difference larger than the standard errors printed? Then make the toy's YaRN fit its scale: with
#    `rope_original_max_seq_len = 64`, which `beta_fast` keeps the pairs that turn more than 4 times, and does it
#    help?
