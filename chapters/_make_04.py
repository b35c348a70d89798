"""Build chapters/04_transformer.ipynb from the cells below and execute it in place (outputs stored).

Run from the repository root: OMP_WAIT_POLICY=PASSIVE .venv/bin/python chapters/_make_04.py
The notebook runs with cwd = chapters/, as tests/test_chapters.py runs it. Its training cell stops at a
20 s time limit, so the whole notebook stays under a minute even on a slow machine. (On a 2-core machine
shared with other busy processes, OpenMP's default spin-waiting makes torch several times slower;
OMP_WAIT_POLICY=PASSIVE avoids that, and the stored outputs were made with it.)
"""

import nbformat
from _nbtools import build  # chapters/ is on sys.path when this script runs

md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell

cells = [
    md("""# Chapter 4: The transformer, and how it is trained

DeepSeek-Coder is a LLaMA-style decoder (paper section 3.3): token embeddings, a stack of pre-norm blocks
(RMSNorm, causal self-attention with **rotary position embeddings**, a SwiGLU MLP), a final norm and an output
head. `minicoder/model.py` holds all of it in one file; this chapter looks at the three ideas in it that are
easiest to get subtly wrong, and then trains a small model with DeepSeek's recipe:

1. **RoPE**: how positions enter attention, and why only *relative* position matters.
2. **The causal mask**: a token may look at itself and the past, never the future.
3. **The KV cache**: decoding one token at a time without recomputing the prompt, and why it is exact.
4. **Training**: AdamW, the multi-step learning rate, bits per byte, checkpoints (`minicoder/train.py`).

Everything below imports from `minicoder`; the notebook adds plots, not a second implementation."""),
    code("""import platform, sys
import matplotlib, numpy, torch
import minicoder

print("python    ", sys.version.split()[0], platform.machine())
print("numpy     ", numpy.__version__)
print("torch     ", torch.__version__)
print("matplotlib", matplotlib.__version__)
print("minicoder ", minicoder.__version__)"""),
    code("""import math
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from minicoder.config import ModelConfig
from minicoder.data import default_corpus_dir, prepare_tokens, bits_per_byte
from minicoder.generate import generate_ids
from minicoder.model import KVCache, Transformer
from minicoder.rope import apply_rope, apply_rope_naive, rope_angles, rope_cos_sin, rope_wavelengths
from minicoder.tokenizer import Tokenizer
from minicoder.train import TrainConfig, TRAIN_PRESETS, load_checkpoint, lr_at, param_groups, read_metrics, train

torch.manual_seed(0)"""),
    md("""## 1. Rotary position embeddings

Attention compares a query with keys by dot products, which know nothing about order. RoPE (Su et al., 2021)
puts the position *into* the query and key vectors: split a head's `head_dim` numbers into `head_dim/2` pairs and
turn pair `i` of the vector at position `m` by the angle `m * theta_i`, with `theta_i = base^(-2i/head_dim)`.
Pair 0 turns by one radian per position; the last pair turns very slowly. DeepSeek-Coder uses `base = 100,000`.

minicoder pairs dimension `j` with `j + head_dim/2` ("rotate half", as HF `transformers` does), so DeepSeek's
HF weights load unchanged. Below, one 8-dimensional vector is rotated to positions 0..15 with `apply_rope`, and
we follow two of its four pairs around their circles."""),
    code("""head_dim, T = 8, 16
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
print("the length of every pair is unchanged:", torch.allclose(x_rot.norm(dim=-1), x[0, 0].norm(dim=-1)))"""),
    md("""Each pair is a clock hand running at its own speed. The wavelength of pair `i` (positions per full turn)
runs from `2*pi` up to about `2*pi*base`. DeepSeek-Coder raised the base to 100,000 and, to reach 16K tokens,
divides positions by 4 ("linear scaling", Chen et al., 2023): every hand runs 4 times slower."""),
    code("""fig, ax = plt.subplots(figsize=(7, 3.5))
for base, scale, label in [(1e4, 1.0, "LLaMA: base 10,000"), (1e5, 1.0, "base 100,000"),
                           (1e5, 4.0, "DeepSeek-Coder: base 100,000, linear x4")]:
    kind = "linear" if scale != 1.0 else None
    ax.semilogy(rope_wavelengths(128, base, kind, scale), label=label)
ax.axhline(16384, color="gray", ls="--", lw=1); ax.text(2, 20000, "16K context", color="gray")
ax.set_xlabel("pair i (head_dim 128)"); ax.set_ylabel("wavelength (positions)"); ax.legend(); ax.grid(alpha=0.3)
plt.tight_layout(); plt.show()"""),
    md("""Why rotations? Rotating `q` by `m*theta` and `k` by `n*theta` changes their dot product only through `m - n`:
`<R(m) q, R(n) k> = <q, R(n - m) k>`. So attention scores see relative distance, wherever the pair sits in
the sequence. Check it: the same query/key pair placed 3 apart at three different places gives the same score."""),
    code("""hd = 64
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
      torch.allclose(apply_rope(x, cos[:10], sin[:10]), apply_rope_naive(x, cos[:10], sin[:10]), atol=1e-5))"""),
    md("""## 2. The causal mask

A language model predicts token `t+1` from tokens `0..t`, and all positions are trained at once, so position `t`
must not see positions after it. The attention scores of the future are set to minus infinity before the softmax.
minicoder builds the mask as `key_position <= query_position` (with a KV cache, query positions start at
`start_pos`): the lower triangle."""),
    code("""T = 12
mask = torch.arange(T)[None, :] <= torch.arange(T)[:, None]   # (T, S): the expression in Attention.forward
fig, ax = plt.subplots(figsize=(3.6, 3.6))
ax.imshow(mask, cmap="Greens"); ax.set_xlabel("key position"); ax.set_ylabel("query position")
ax.set_title("may attend (green)"); plt.tight_layout(); plt.show()"""),
    md("""The mask is easy to get wrong (off by one, or aligned to the wrong corner once a cache holds a prefix), and
a model with a leaky mask trains *beautifully*: it just reads the answer. The real test is behavioural: change
one token and see which logits move. Only positions at or after the change may."""),
    code("""config = ModelConfig(vocab_size=512, n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, d_ff=172, max_seq_len=128)
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
plt.tight_layout(); plt.show()"""),
    md("""## 3. The KV cache

Generating token `t+1` needs the keys and values of all earlier positions, and they do not change when a token
is appended (that is exactly what the causal mask guarantees). So `KVCache` keeps them: the prompt is run once
(prefill) and each new token costs one position. With grouped-query attention only the `n_kv_heads` heads are
stored. The cache must give the *same* logits as recomputing everything:"""),
    code("""torch.manual_seed(0)
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
          f"{per_token * 16384 / 2**30:5.1f} GiB for one 16K sequence")"""),
    md("""The 33B model has 56 query heads but caches only 8 KV heads: without GQA its cache would be 7 times larger.
Decoding speed follows: without the cache every new token re-runs the whole prefix."""),
    code("""def time_decode(n_new=100, use_cache=True):
    ids = torch.randint(0, 512, (1, 8)).tolist()[0]
    t = time.perf_counter()
    with torch.no_grad():
        if use_cache:
            generate_ids(model, ids, n_new, temperature=0.0)
        else:
            seq = torch.tensor([ids])
            for _ in range(n_new):
                nxt = model(seq)[:, -1].argmax(-1, keepdim=True)   # recompute all positions every step
                seq = torch.cat([seq, nxt], dim=1)
    return time.perf_counter() - t

time_decode(4)  # warm up
print(f"100 new tokens with the KV cache: {time_decode(use_cache=True) * 1000:.0f} ms, "
      f"recomputing: {time_decode(use_cache=False) * 1000:.0f} ms (tiny model, short context: the gap grows with length)")"""),
    md("""## 4. Training with DeepSeek's recipe

`minicoder/train.py` follows DeepSeek-Coder section 3.4 (and DeepSeek LLM section 2.3): AdamW with
`betas = (0.9, 0.95)` and weight decay 0.1 on matrices only, gradient clipping at 1.0, and a **multi-step**
learning rate: linear warm-up for 2000 steps, constant, then x0.316 after 80% of the training tokens and x0.316
again after 90% (0.316^2 = 10% of the peak). Here is the schedule of the `deepseek-coder-1.3b` preset:"""),
    code("""cfg13 = TrainConfig.from_preset("deepseek-coder-1.3b")
steps = list(range(0, cfg13.max_steps, 500))
fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(steps, [lr_at(s, cfg13) for s in steps])
ax.set_xlabel("step"); ax.set_ylabel("learning rate"); ax.grid(alpha=0.3)
ax.set_title(f"{cfg13.tokens_per_step:,} tokens per step, {cfg13.max_steps:,} steps")
plt.tight_layout(); plt.show()
at80, at90 = round(0.8 * cfg13.max_steps), round(0.9 * cfg13.max_steps)   # the two decay points
print({s: f"{lr_at(s, cfg13):.2e}" for s in (0, 999, 1999, at80 - 1, at80, at90)})

decay, no_decay = param_groups(Transformer(config), 0.1)
print(f"AdamW groups: {len(decay['params'])} matrices decay, {len(no_decay['params'])} RMSNorm gains do not")"""),
    md("""Now a short real run: a BPE tokenizer and a small model trained on a dozen files of this Python's
standard library (`minicoder.data` splits train/validation **by file**, separates files with EOS, and caches the
tokens), for 20 seconds. `train` writes checkpoints, `metrics.jsonl` and `loss.png` to its run directory.

Validation loss is reported in **bits per byte** of source, `loss_nats * tokens / (ln 2 * bytes)`: unlike loss
per token it does not depend on the tokenizer, so it compares models with different vocabularies."""),
    code("""names = ["bisect.py", "calendar.py", "colorsys.py", "copy.py", "csv.py", "fnmatch.py", "fractions.py", "heapq.py",
         "pprint.py", "queue.py", "shlex.py", "string.py", "textwrap.py"]
work = Path(tempfile.mkdtemp(prefix="minicoder-ch4-"))
(work / "corpus").mkdir()
for n in names:
    (work / "corpus" / n).write_bytes((default_corpus_dir() / n).read_bytes())
t = time.perf_counter()
tok = Tokenizer.train([(work / "corpus" / n).read_text() for n in names], vocab_size=512)
data = prepare_tokens(tok, work / "corpus", cache_dir=work / "cache", progress=False)
print(f"tokenizer and tokens in {time.perf_counter() - t:.1f} s; "
      + ", ".join(f"{s}: {v['files']} files, {v['tokens']:,} tokens, {v['bytes']:,} bytes" for s, v in data.meta["splits"].items()))"""),
    code("""model_config = ModelConfig(vocab_size=tok.vocab_size, n_layers=3, d_model=96, n_heads=4, n_kv_heads=2,
                           d_ff=256, max_seq_len=128, rope_theta=100000.0)
train_config = TrainConfig(batch_size=16, seq_len=64, max_steps=300, lr=3e-3, warmup_steps=20, eval_interval=50,
                           eval_iters=4, checkpoint_interval=1000, log_interval=5, out_dir=str(work / "run"),
                           time_limit_s=20)
print(f"{model_config.num_params() / 1e6:.2f}M parameters, {train_config.tokens_per_step} tokens per step")
summary = train(model_config, train_config, data, tok, progress=False)
print(f"{summary['step']} steps in {summary['elapsed_s']:.0f} s ({summary['stopped'] or 'finished'}); "
      f"validation {summary['val_bpb']:.3f} bits per byte")"""),
    code("""metrics = read_metrics(work / "run" / "metrics.jsonl")
train_pts = [(m["step"], m["loss"]) for m in metrics if "loss" in m]
val_pts = [(m["step"], m["val_bpb"]) for m in metrics if "val_bpb" in m]
fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.5))
a1.plot(*zip(*train_pts), label="train loss (nats/token)")
a1.plot([s for s, _ in val_pts], [m["val_loss"] for m in metrics if "val_loss" in m], "o-", label="validation")
a1.set_xlabel("step"); a1.legend(); a1.grid(alpha=0.3)
a2.plot(*zip(*val_pts), "o-", color="C1"); a2.set_xlabel("step"); a2.set_ylabel("validation bits per byte")
a2.grid(alpha=0.3)
lr_ax = a1.twinx(); lr_ax.plot([m["step"] for m in metrics if "lr" in m], [m["lr"] for m in metrics if "lr" in m],
                                color="gray", lw=0.8); lr_ax.set_ylabel("lr", color="gray")
plt.tight_layout(); plt.show()

v = data.splits["val"]
print(f"check: {val_pts[-1][1]:.4f} == {bits_per_byte(metrics[-1]['val_loss'], len(v), v.n_bytes):.4f} "
      f"(= loss * {len(v):,} tokens / (ln 2 * {v.n_bytes:,} bytes))")"""),
    md("""The training set here is only ~80k tokens, so the run passes over it more than once: when the validation
curve flattens while the training loss keeps falling, the model has started to memorise its training files.

The run directory holds one complete checkpoint (written to a temporary directory, fsynced, renamed, and only
then pointed to by the `latest` file, so a crash never leaves a half checkpoint). `load_checkpoint` returns the
model and its tokenizer; let it write a function:"""),
    code("""model, tok2, *_ = load_checkpoint(work / "run")
ids = generate_ids(model, [tok2.eos_id, *tok2.encode("def ")], 40, temperature=0.7, top_k=40, seed=0,
                   stop_ids=[tok2.eos_id])
print("def " + tok2.decode([i for i in ids if i != tok2.eos_id]))"""),
    md("""Twenty seconds on a CPU buy Python-looking text, not working code; `make train-tiny` trains a 5M-parameter
model for ten minutes on the whole standard library and measures how many completed functions parse.

Resuming is **exact**: the checkpoint holds the weights, AdamW's moments, every random generator and the data
sampler's state, so 6 steps straight and 3 + 3 after a resume give bit-identical losses:"""),
    code("""tiny_cfg = dict(batch_size=4, seq_len=32, max_steps=6, warmup_steps=2, eval_interval=3, eval_iters=1,
                checkpoint_interval=3, log_interval=1)
mc = ModelConfig(vocab_size=tok.vocab_size, n_layers=1, d_model=32, n_heads=2, d_ff=64, max_seq_len=32)
straight = train(mc, TrainConfig(**tiny_cfg, out_dir=str(work / "a")), data, tok, progress=False)["losses"]
part1 = train(mc, TrainConfig(**tiny_cfg, out_dir=str(work / "b")), data, tok, stop_after=3, progress=False)["losses"]
part2 = train(mc, TrainConfig(**tiny_cfg, out_dir=str(work / "b")), data, tok, resume=True, progress=False)["losses"]
print("straight:      ", straight)
print("3 + resume + 3:", part1 + part2)
print("bitwise equal: ", straight == part1 + part2)"""),
    md("""## Exercises

1. **Meta's pairing.** LLaMA's original code rotates adjacent dimensions `(0, 1), (2, 3), ...`. Write that
   variant and find the permutation of the rows of `wq` and `wk` that makes it compute the same scores as
   `apply_rope` (this is what HF's LLaMA conversion script does). Check it with `score(m, n)` above.
2. **Sliding windows.** Change the mask so that position `t` sees only the last `W` positions (Mistral). Redo the
   "which logits move" plot: what should it look like now? What does the KV cache need to keep?
3. **Cache budget.** With `cache_bytes_per_token`, how many 16K-token sequences of `deepseek-coder-33b` fit in the
   KV cache of one 80 GB GPU next to the bf16 weights? How many without GQA?
4. **Schedules.** DeepSeek-Coder-V2 uses cosine decay instead of the multi-step schedule. Add it as an option of
   `lr_at`, train the short run above with each for the same number of steps, and compare validation bits per byte.
5. **What decays.** Put the RMSNorm gains into the decayed group and rerun. Why do LLaMA and nanoGPT exempt vectors?
6. **Bits per byte.** Train the short run with `vocab_size=512` and `2048`. Which has the lower loss per token,
   and which the lower bits per byte? Why is only the second comparison fair?"""),
]

build(cells, "04_transformer.ipynb")
