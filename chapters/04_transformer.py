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
# # Chapter 4: The transformer, and how it is trained
#
# DeepSeek-Coder is a LLaMA-style decoder (paper section 3.3): token embeddings, a stack of pre-norm blocks
# (RMSNorm, causal self-attention with **rotary position embeddings**, a SwiGLU MLP), a final norm and an output
# head. `minicoder/model.py` holds all of it in one file; this chapter looks at the three ideas in it that are
# easiest to get subtly wrong, and then trains a small model with DeepSeek's recipe:
#
# 1. **RoPE**: how positions enter attention, and why only *relative* position matters.
# 2. **The causal mask**: a token may look at itself and the past, never the future.
# 3. **The KV cache**: decoding one token at a time without recomputing the prompt, why it is exact, and
#    what it saves.
# 4. **The learning rate**: DeepSeek's multi-step schedule (`minicoder/train.py`).
# 5. **A short training run**: AdamW's parameter groups, bits per byte, the schedule's drops, checkpoints.
#
# Everything below imports from `minicoder`; the notebook adds plots, not a second implementation. Each section
# runs on its own after the two set-up cells, so an exercise needs only the functions its section uses.

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
import tempfile
import time

import matplotlib.pyplot as plt
import torch

from minicoder.config import ModelConfig
from minicoder.data import default_corpus_dir, prepare_tokens, bits_per_byte
from minicoder.generate import generate_ids
from minicoder.model import KVCache, Transformer
from minicoder.rope import apply_rope, apply_rope_naive, rope_angles, rope_cos_sin, rope_wavelengths
from minicoder.tokenizer import Tokenizer
from minicoder.train import TrainConfig, load_checkpoint, lr_at, param_groups, read_metrics, train

# A small model for sections 2 and 3: 4 query heads share 2 KV heads (grouped-query attention).
config = ModelConfig(vocab_size=512, n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, d_ff=172, max_seq_len=128)
torch.manual_seed(0)

# %% [markdown]
# ## 1. Rotary position embeddings
#
# Attention compares a query with keys by dot products, which know nothing about order. RoPE (Su et al., 2021)
# puts the position *into* the query and key vectors: split a head's `head_dim` numbers into `head_dim/2` pairs and
# turn pair `i` of the vector at position `m` by the angle `m * theta_i`, with `theta_i = base^(-2i/head_dim)`.
# Pair 0 turns by one radian per position; the last pair turns very slowly. DeepSeek-Coder uses `base = 100,000`.
#
# minicoder pairs dimension `j` with `j + head_dim/2` ("rotate half", as HF `transformers` does), so DeepSeek's HF
# weights load unchanged: `rotate_half` maps the halves `[x1, x2]` to `[-x2, x1]`, and `apply_rope` computes
# `x * cos + rotate_half(x) * sin` from the tables of `rope_cos_sin` (built from `rope_angles`, the positions times
# the speeds of `rope_frequencies`); `apply_rope_naive` does the same with complex numbers. Below, one
# 8-dimensional vector is rotated to positions 0..15 with `apply_rope`, and we follow two of its four pairs around
# their circles.

# %%
head_dim, T = 8, 16
cos, sin = rope_cos_sin(head_dim, T, theta=100.0)       # (T, hd) tables, small base so the slow pairs move visibly
x = torch.tensor([1.0, 0.5, 0.8, 0.3, 0.0, 0.5, 0.2, 0.6]).expand(1, 1, T, head_dim)  # the same vector at every position
x_rot = apply_rope(x, cos, sin)[0, 0]                   # (T, hd)

fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
for ax, i in zip(axes, (0, 1)):
    a, b = x_rot[:, i], x_rot[:, i + head_dim // 2]     # pair i lives in dims (i, i + hd/2)
    ax.plot(a, b, "o-", ms=4)
    for m in (0, 1, 2, 5, 15):
        ax.annotate(f"m={m}", (a[m], b[m]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    freq = rope_angles(head_dim, torch.tensor([1]), theta=100.0)[0, i].item()
    ax.set_title(f"pair {i}: {freq:.3f} rad per position")
    ax.set_aspect("equal"); ax.grid(alpha=0.3)
fig.suptitle("one vector, rotated to positions 0..15 (apply_rope)")
plt.tight_layout(); plt.show()
print("the length of every pair is unchanged:", torch.allclose(x_rot.norm(dim=-1), x[0, 0].norm(dim=-1)))

# %% [markdown]
# Each pair is a clock hand running at its own speed. The wavelength of pair `i` (positions per full turn)
# runs from `2*pi` up to about `2*pi*base`. DeepSeek-Coder raised the base to 100,000 and, to reach 16K tokens,
# divides positions by 4 ("linear scaling", Chen et al., 2023): every hand runs 4 times slower.

# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
for base, scale, label in [(1e4, 1.0, "LLaMA: base 10,000"), (1e5, 1.0, "base 100,000"),
                           (1e5, 4.0, "DeepSeek-Coder: base 100,000, linear x4")]:
    kind = "linear" if scale != 1.0 else None
    ax.semilogy(rope_wavelengths(128, base, kind, scale), label=label)
ax.axhline(16384, color="gray", ls="--", lw=1); ax.text(2, 20000, "16K context", color="gray")
ax.set_xlabel("pair i (head_dim 128)"); ax.set_ylabel("wavelength (positions)"); ax.legend(); ax.grid(alpha=0.3)
plt.tight_layout(); plt.show()

# %% [markdown]
# Why rotations? Rotating `q` by `m*theta` and `k` by `n*theta` changes their dot product only through `m - n`:
# `<R(m) q, R(n) k> = <q, R(n - m) k>`. So attention scores see relative distance, wherever the pair sits in
# the sequence. Check it: the same query/key pair placed 3 apart at three different places gives the same score.

# %%
hd = 64
cos, sin = rope_cos_sin(hd, 4096, theta=100000.0)
q, k = torch.randn(hd), torch.randn(hd)

def score(m, n):
    qm = apply_rope(q.view(1, 1, 1, hd), cos[m:m + 1], sin[m:m + 1])
    kn = apply_rope(k.view(1, 1, 1, hd), cos[n:n + 1], sin[n:n + 1])
    return (qm * kn).sum().item()

for m, n in [(5, 2), (105, 102), (4000, 3997), (5, 8)]:
    print(f"q at {m:4d}, k at {n:4d} (m - n = {m - n:+d}): score {score(m, n):+.5f}")

x = torch.randn(2, 4, 10, hd)
print("rotate-half path == complex-number path:",
      torch.allclose(apply_rope(x, cos[:10], sin[:10]), apply_rope_naive(x, cos[:10], sin[:10]), atol=1e-5))

# %% [markdown]
# ## 2. The causal mask
#
# A language model predicts token `t+1` from tokens `0..t`, and all positions are trained at once, so position `t`
# must not see positions after it. The attention scores of the future are set to minus infinity before the softmax.
# minicoder builds the mask as `key_position <= query_position` (with a KV cache, query positions start at
# `start_pos`): the lower triangle.

# %%
T = 12
mask = torch.arange(T)[None, :] <= torch.arange(T)[:, None]   # (T, S): the expression in Attention.forward
fig, ax = plt.subplots(figsize=(3.6, 3.6))
ax.imshow(mask, cmap="Greens"); ax.set_xlabel("key position"); ax.set_ylabel("query position")
ax.set_title("may attend (green)"); plt.tight_layout(); plt.show()

# %% [markdown]
# The mask is easy to get wrong (off by one, or aligned to the wrong corner once a cache holds a prefix), and
# a model with a leaky mask trains *beautifully*: it just reads the answer. The real test is behavioural: change
# one token and see which logits move. Only positions at or after the change may.

# %%
fig, ax = plt.subplots(figsize=(7, 3))
for impl in ("naive", "sdpa"):
    torch.manual_seed(0)
    model = Transformer(ModelConfig.from_dict({**config.to_dict(), "attn_impl": impl})).eval()
    idx = torch.randint(0, 512, (1, 32))
    edited = idx.clone(); edited[0, 20] = (idx[0, 20] + 1) % 512
    with torch.no_grad():
        change = (model(idx) - model(edited)).abs().amax(dim=-1)[0]   # (T,) largest logit change per position
    ax.semilogy(change + 1e-12, "o-" if impl == "naive" else "x--", label=f"attn_impl={impl}")
    print(f"{impl}: largest change before position 20: {change[:20].max().item():.1e}, at/after: {change[20:].min().item():.1e}")
ax.axvline(20, color="gray", lw=1); ax.set_xlabel("position"); ax.set_ylabel("max |logit change|"); ax.legend()
plt.tight_layout(); plt.show()

# %% [markdown]
# ## 3. The KV cache
#
# Generating token `t+1` needs the keys and values of all earlier positions, and they do not change when a token
# is appended (that is exactly what the causal mask guarantees). So `KVCache` keeps them: the prompt is run once
# (prefill) and each new token costs one position. With grouped-query attention only the `n_kv_heads` heads are
# stored. The cache must give the *same* logits as recomputing everything:

# %%
torch.manual_seed(0)
model = Transformer(config).eval()
idx = torch.randint(0, 512, (1, 40))
with torch.no_grad():
    full = model(idx)                                   # (1, 40, V): everything at once
    cache = KVCache(config, batch_size=1)
    steps = [model(idx[:, :30], cache, 0)]              # prefill 30 positions
    for t in range(30, 40):                             # then one position at a time
        steps.append(model(idx[:, t:t + 1], cache, t))
    cached = torch.cat(steps, dim=1)                    # (1, 40, V)
print("max |cached - recomputed| =", (cached - full).abs().max().item())

def cache_bytes_per_token(c: ModelConfig, bytes_per_value=2):
    return 2 * c.n_layers * c.n_kv_heads * c.head_dim * bytes_per_value   # K and V, every layer, bf16

for name in ("deepseek-coder-1.3b", "deepseek-coder-6.7b", "deepseek-coder-33b"):
    c = ModelConfig.from_preset(name)
    per_token = cache_bytes_per_token(c)
    print(f"{name:20s} {c.n_kv_heads:2d} KV heads: {per_token / 1024:6.0f} KiB/token, "
          f"{per_token * 16384 / 2**30:5.1f} GiB for one 16K sequence")


# %% [markdown]
# The 33B model has 56 query heads but caches only 8 KV heads: without GQA its cache would be 7 times larger.
#
# What the cache saves: without it, every new token re-runs the whole prefix, so step `t` costs about `t`
# positions and `n` new tokens cost about `n^2/2`; with it, each step costs one position (plus attention over the
# cached keys). The difference only shows once the prefix is long and the model is big enough for arithmetic,
# not Python's per-call overhead, to dominate. Below, a 2-layer model of width 192 continues a 16-token prompt by
# 368 tokens, greedily, both ways: the same loop, the same model, the same argmax; only the cache differs. Each
# way runs once to warm up and is then timed token by token, twice: each token keeps the faster of its two times,
# which filters out most of whatever else the machine is doing.

# %%
demo_config = ModelConfig(vocab_size=512, n_layers=2, d_model=192, n_heads=4, n_kv_heads=2, d_ff=512, max_seq_len=384)
torch.manual_seed(0)
demo = Transformer(demo_config).eval()
prompt = torch.randint(0, 512, (1, 16))


def decode(n_new, use_cache):
    """Greedy decoding of n_new tokens after `prompt`; returns the ids and the seconds each new token took."""
    seq, seconds = prompt, []
    cache = KVCache(demo_config, batch_size=1) if use_cache else None
    with torch.inference_mode():
        t = time.perf_counter()
        logits = demo(seq, cache, 0)[:, -1]                             # prefill: (1, V)
        for _ in range(n_new):
            seq = torch.cat([seq, logits.argmax(-1, keepdim=True)], dim=1)
            seconds.append(time.perf_counter() - t)
            t = time.perf_counter()
            if use_cache:
                logits = demo(seq[:, -1:], cache, seq.shape[1] - 1)[:, -1]  # one new position
            else:
                logits = demo(seq)[:, -1]                               # every position again
    return seq, seconds


n_new = 368
for use_cache in (True, False):
    decode(8, use_cache)                                                # warm up
(ids_cached, s_cached), (_, s_cached2) = decode(n_new, use_cache=True), decode(n_new, use_cache=True)
(ids_full, s_full), (_, s_full2) = decode(n_new, use_cache=False), decode(n_new, use_cache=False)
s_cached, s_full = list(map(min, s_cached, s_cached2)), list(map(min, s_full, s_full2))
print(f"{n_new} new tokens after a {prompt.shape[1]}-token prompt: with the KV cache {sum(s_cached) * 1000:.0f} ms, "
      f"recomputing the prefix {sum(s_full) * 1000:.0f} ms: {sum(s_full) / sum(s_cached):.1f}x faster with the cache")
print(f"the last 32 tokens (lengths {prompt.shape[1] + n_new - 32} to {prompt.shape[1] + n_new}): "
      f"{sum(s_full[-32:]) / sum(s_cached[-32:]):.1f}x; the same tokens both ways: {torch.equal(ids_cached, ids_full)}")

fig, ax = plt.subplots(figsize=(7, 3))
positions = range(prompt.shape[1], prompt.shape[1] + n_new)
ax.plot(positions, [s * 1000 for s in s_full], label="recompute the prefix")
ax.plot(positions, [s * 1000 for s in s_cached], label="KV cache")
ax.set_xlabel("sequence length"); ax.set_ylabel("ms per new token"); ax.set_ylim(bottom=0)
ax.legend(); ax.grid(alpha=0.3)
plt.tight_layout(); plt.show()

# %% [markdown]
# Recomputing costs more with every token, in proportion to the length of the sequence, while the cached step
# stays flat, so the ratio grows with the length: over a 16K context it
# would be in the thousands.

# %% [markdown]
# ## 4. The learning rate
#
# `minicoder/train.py` follows DeepSeek-Coder section 3.4 (and DeepSeek LLM section 2.3): AdamW with
# `betas = (0.9, 0.95)` and weight decay 0.1 on matrices only, gradient clipping at 1.0, and a **multi-step**
# learning rate: linear warm-up for 2000 steps, constant, then x0.316 after 80% of the training tokens and x0.316
# again after 90% (0.316^2 = 10% of the peak). `lr_at(step, cfg)` gives the rate of one step. Here is the
# schedule of the `deepseek-coder-1.3b` preset:

# %%
cfg13 = TrainConfig.from_preset("deepseek-coder-1.3b")
steps = list(range(0, cfg13.max_steps, 500))
fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(steps, [lr_at(s, cfg13) for s in steps])
ax.set_xlabel("step"); ax.set_ylabel("learning rate"); ax.grid(alpha=0.3)
ax.set_title(f"{cfg13.tokens_per_step:,} tokens per step, {cfg13.max_steps:,} steps")
plt.tight_layout(); plt.show()
at80, at90 = round(0.8 * cfg13.max_steps), round(0.9 * cfg13.max_steps)   # the two decay points
print({s: f"{lr_at(s, cfg13):.2e}" for s in (0, 999, 1999, at80 - 1, at80, at90)})

# %% [markdown]
# ## 5. A short training run
#
# Now a real run: a BPE tokenizer and a small model trained on a dozen files of this Python's standard library
# (`minicoder.data` splits train/validation **by file**, separates files with EOS, and caches the tokens).
# `train` writes checkpoints, `metrics.jsonl` and `loss.png` to its run directory. The run is sized to finish,
# so that the schedule does what it does in DeepSeek's runs: 150 steps, warm-up for 15, and the two drops at
# steps 120 (80%) and 135 (90%). It takes 10 to 30 seconds on a laptop's CPU.
#
# AdamW decays only the matrices; `param_groups` leaves the RMSNorm gains out of weight decay. Validation loss is
# reported in **bits per byte** of source, `loss_nats * tokens / (ln 2 * bytes)`: unlike loss per token it does not
# depend on the tokenizer, so it compares models with different vocabularies.

# %%
names = ["bisect.py", "calendar.py", "colorsys.py", "copy.py", "csv.py", "fnmatch.py", "fractions.py", "heapq.py",
         "pprint.py", "queue.py", "shlex.py", "string.py", "textwrap.py"]
work = Path(tempfile.mkdtemp(prefix="minicoder-ch4-"))
(work / "corpus").mkdir()
for n in names:
    (work / "corpus" / n).write_bytes((default_corpus_dir() / n).read_bytes())
t = time.perf_counter()
tok = Tokenizer.train([(work / "corpus" / n).read_text() for n in names], vocab_size=512)
data = prepare_tokens(tok, work / "corpus", cache_dir=work / "cache", progress=False)
print(f"tokenizer and tokens in {time.perf_counter() - t:.1f} s; "
      + ", ".join(f"{s}: {v['files']} files, {v['tokens']:,} tokens, {v['bytes']:,} bytes" for s, v in data.meta["splits"].items()))

# %%
model_config = ModelConfig(vocab_size=tok.vocab_size, n_layers=3, d_model=96, n_heads=4, n_kv_heads=2,
                           d_ff=256, max_seq_len=128, rope_theta=100000.0)
train_config = TrainConfig(batch_size=16, seq_len=64, max_steps=150, lr=3e-3, warmup_steps=15, eval_interval=15,
                           eval_iters=4, checkpoint_interval=1000, log_interval=3, out_dir=str(work / "run"))
decay, no_decay = param_groups(Transformer(model_config), train_config.weight_decay)
print(f"{model_config.num_params() / 1e6:.2f}M parameters, {train_config.tokens_per_step} tokens per step; AdamW "
      f"groups: {len(decay['params'])} matrices decay, {len(no_decay['params'])} RMSNorm gains do not")
summary = train(model_config, train_config, data, tok, progress=False)
print(f"{summary['step']} of {train_config.max_steps} steps in {summary['elapsed_s']:.0f} s "
      f"({summary['stopped'] or 'finished'}); validation {summary['val_bpb_full']:.3f} bits per byte (every token scored once)")

# %%
metrics = read_metrics(work / "run" / "metrics.jsonl")
drops = [round(share * train_config.max_steps) for share in train_config.decay_at]   # [120, 135]
logged = [m for m in metrics if "loss" in m]
evals = [m for m in metrics if "val_bpb" in m]
fig, (a0, a1, a2) = plt.subplots(1, 3, figsize=(13, 3.5), sharex=True)
a0.plot([m["step"] for m in logged], [m["lr"] for m in logged], color="gray")
a0.set_ylabel("learning rate (as logged)")
a1.plot([m["step"] for m in logged], [m["loss"] for m in logged], label="train (nats/token)")
a1.plot([m["step"] for m in evals], [m["val_loss"] for m in evals], "o-", label="validation")
a1.set_ylim(top=logged[len(logged) // 5]["loss"]); a1.legend(loc="lower left")   # the first fifth is off the top
a2.plot([m["step"] for m in evals], [m["val_bpb"] for m in evals], "o-", color="C1")
a2.set_ylabel("validation bits per byte"); a2.set_ylim(top=evals[2]["val_bpb"])
for ax in (a0, a1, a2):
    for d in drops:
        ax.axvline(d, color="C3", ls=":", lw=1)
    ax.set_xlabel("step"); ax.grid(alpha=0.3)
a0.set_title("dotted: the two drops")
plt.tight_layout(); plt.show()

lr_of = {m["step"]: m["lr"] for m in logged}   # logged after each 3rd step: the rate that step used
print("learning rate after step:", {s: f"{lr_of[s]:.2e}" for s in range(drops[0] - 3, drops[1] + 7, 3)})
bpb = {m["step"]: m["val_bpb"] for m in evals}
gains = [bpb[s - 15] - bpb[s] for s in sorted(bpb)[1:]]
print("validation bits per byte gained in each 15 steps:",
      ", ".join(f"{s}: {g:+.3f}" for s, g in zip(sorted(bpb)[1:], gains)))
n_tokens, n_bytes = summary["val_tokens_full"], data.splits["val"].n_bytes   # every validation token scored once
print(f"check: {summary['val_bpb_full']:.4f} == {bits_per_byte(summary['val_loss_full'], n_tokens, n_bytes):.4f} "
      f"(= {summary['val_loss_full']:.3f} nats * {n_tokens:,} tokens / (ln 2 * {n_bytes:,} bytes))")

# %% [markdown]
# Both drops act: the rate falls to 31.6% of the peak for the 121st step and to 10% for the 136th (metrics count
# completed steps). Before the first drop the validation curve had nearly flattened; compare the gains printed
# above in the 15 steps before and after each drop. Lowering the rate late is what the multi-step schedule (like
# a cosine's tail) is there for: a high rate makes fast, noisy progress, a low one settles into a minimum.
# The training set here is only ~80k tokens and the run sees about 150k, so it passes over its files about twice;
# where the validation curve flattens while the training loss keeps falling, the model is memorising.
#
# The run directory holds one complete checkpoint (written to a temporary directory, fsynced, renamed, and only
# then pointed to by the `latest` file, so a crash never leaves a half checkpoint). `load_checkpoint` returns the
# model and its tokenizer; let it write a function:

# %%
model, tok2, *_ = load_checkpoint(work / "run")
ids = generate_ids(model, [tok2.eos_id, *tok2.encode("def ")], 40, temperature=0.7, top_k=40, seed=0,
                   stop_ids=[tok2.eos_id])
print("def " + tok2.decode([i for i in ids if i != tok2.eos_id]))

# %% [markdown]
# Half a minute on a CPU buys Python-looking text, not working code; `make train-tiny` trains a 5M-parameter
# model for ten minutes on the whole standard library and measures how many completed functions parse.
#
# Resuming is **exact**: the checkpoint holds the weights, AdamW's moments, every random generator and the data
# sampler's state, so 6 steps straight and 3 + 3 after a resume give bit-identical losses:

# %%
tiny_cfg = dict(batch_size=4, seq_len=32, max_steps=6, warmup_steps=2, eval_interval=3, eval_iters=1,
                checkpoint_interval=3, log_interval=1)
mc = ModelConfig(vocab_size=tok.vocab_size, n_layers=1, d_model=32, n_heads=2, d_ff=64, max_seq_len=32)
straight = train(mc, TrainConfig(**tiny_cfg, out_dir=str(work / "a")), data, tok, progress=False)["losses"]
part1 = train(mc, TrainConfig(**tiny_cfg, out_dir=str(work / "b")), data, tok, stop_after=3, progress=False)["losses"]
part2 = train(mc, TrainConfig(**tiny_cfg, out_dir=str(work / "b")), data, tok, resume=True, progress=False)["losses"]
print("straight:      ", straight)
print("3 + resume + 3:", part1 + part2)
print("bitwise equal: ", straight == part1 + part2)

# %% [markdown]
# ## Exercises
#
# Each exercise names the functions of minicoder it needs; in a student copy of the assignment, the chapter's
# two set-up cells and the section it names run as soon as those are written.
#
# 1. **Meta's pairing** (section 1; needs `rope_frequencies`, `rope_angles`, `rope_cos_sin`, `rotate_half`,
#    `apply_rope` and `apply_rope_naive`). LLaMA's original code rotates adjacent dimensions `(0, 1), (2, 3), ...`.
#    Write that variant and find the permutation of the rows of `wq` and `wk` that makes it compute the same scores
#    as `apply_rope` (this is what HF's LLaMA conversion script does). Check it with `score(m, n)`.
# 2. **Sliding windows** (section 2; needs the whole transformer). Change the mask so that position `t` sees only
#    the last `W` positions (Mistral). Redo the "which logits move" plot: what should it look like now? What does
#    the KV cache need to keep?
# 3. **Cache budget** (section 3; needs the whole transformer). With `cache_bytes_per_token`, how many 16K-token
#    sequences of `deepseek-coder-33b` fit in the KV cache of one 80 GB GPU next to the bf16 weights? How many
#    without GQA? Then time `decode` for prompts of 64, 128 and 192 tokens: how does the ratio grow?
# 4. **Schedules** (section 4; needs only `lr_at`, then section 5 for the run). DeepSeek-Coder-V2 uses cosine
#    decay instead of the multi-step schedule. Add it as an option of `lr_at`, plot both, train the short run
#    with each for the same number of steps, and compare validation bits per byte.
# 5. **What decays** (section 5; needs `param_groups`, and `lr_at` and `bits_per_byte` for the run; the
#    transformer's functions and the sampling ones, `top_k_filter` and `sample_next`, come solved in the `training`
#    package). Put the RMSNorm gains into the decayed group and rerun. Why do LLaMA and nanoGPT exempt vectors?
# 6. **Bits per byte** (section 5; needs `bits_per_byte`, and `lr_at` and `param_groups` for the run). Train the
#    short run with `vocab_size=512` and `2048`. Which has the lower loss per token, and which the lower bits per
#    byte? Why is only the second comparison fair?
