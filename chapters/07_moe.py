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
# # Chapter 7: DeepSeekMoE, routing and load balance
#
# DeepSeek-Coder-V2's second change to the transformer of chapter 4 is in the MLP. After its first block, every
# block replaces the dense SwiGLU by **DeepSeekMoE** (DeepSeek-V2, section 2.2): a few *shared* experts that every
# token passes through, and many small *routed* experts of which a learned router, the gate, picks `K` per token.
# V2 has 2 shared and 160 routed experts and uses 6 of them per token, so a 236B-parameter model multiplies each
# token by about 21B parameters. `minicoder/moe.py` holds all of it; the equations (V2's 20-23) are
#
# $$s_{i,t} = \mathrm{Softmax}_i(u_t^\top e_i), \qquad
#   g_{i,t} = \begin{cases} s_{i,t} & s_{i,t} \in \mathrm{Topk}(\{s_{j,t}\}, K_r) \\ 0 & \text{otherwise}\end{cases},
#   \qquad h'_t = u_t + \sum_{i \le N_s} \mathrm{FFN}^{(s)}_i(u_t) + \sum_{i \le N_r} g_{i,t}\, \mathrm{FFN}^{(r)}_i(u_t).$$
#
# This chapter:
#
# 1. **Routing by hand**: scores, top-K, the two ways of weighting the chosen experts, and group-limited routing.
# 2. **Shared and routed experts**: where V2's parameters are, and what fine-grained experts buy.
# 3. **The balance losses**: `L_ExpBal`, `L_DevBal`, `L_CommBal` on a collapsed and a balanced routing.
# 4. **Expert load over training**: tiny-moe trained with and without the balance loss (a committed benchmark).
# 5. **What group-limited routing saves**: how many devices a token's experts live on, at V2's size.
# 6. **Capacity**: dropping the tokens an overloaded expert cannot take.
#
# Everything below imports from `minicoder`. Section 1 spells out the group-limited steps with a few tensor
# operations to show them, and checks them against `Gate`; section 4 reads a JSON written by
# `benchmarks/moe_balance.py` and trains nothing.

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
import json
import math

import matplotlib.pyplot as plt
import torch

from minicoder.config import ModelConfig
from minicoder.moe import Gate, MoE, balance_losses, capacity_mask

BENCHMARK = Path.cwd().parent / "benchmarks" / "results" / "moe-balance-cpu.json"


def toy_config(**overrides) -> ModelConfig:
    """A one-layer MoE config small enough to read: 8 routed experts, each token uses 2."""
    fields = dict(vocab_size=8, n_layers=1, d_model=8, n_heads=1, d_ff=8, max_seq_len=8,
                  n_routed_experts=8, n_activated_experts=2, moe_d_ff=4)
    return ModelConfig(**{**fields, **overrides})


def fmt(values, width=6, digits=3) -> str:
    return " ".join(f"{v:{width}.{digits}f}" for v in values)


# %% [markdown]
# ## 1. Routing by hand
#
# The gate is one matrix `e` of shape `(N_r, d_model)`, one row per routed expert (HF's `gate.weight`). A token's
# affinity to expert `i` is `softmax(u_t^T e)_i`. To read the routing directly, the gate below is the identity
# (`d_model = N_r = 8`), so a token's vector *is* its row of logits. Three tokens: a confident one, an unsure
# one, and one torn between two experts.

# %%
config = toy_config(routed_scaling_factor=2.0)
gate = Gate(config)
gate.weight.data = torch.eye(8)                                   # logits = x
x = torch.tensor([[2.0, 1.0, 0.5, 0.0, 0.0, 0.0, -1.0, 0.0],     # confident: expert 0, then 1
                  [0.1, 0.2, 0.0, 0.1, 0.0, 0.3, 0.2, 0.1],       # unsure: nearly uniform
                  [0.0, 0.0, 3.0, 2.9, 0.0, 0.0, 0.0, 0.0]])      # torn between experts 2 and 3
weights, indices, scores = gate(x)                                # (3, K), (3, K), (3, N_r)
gate.norm_topk_prob = True
weights_norm, _, _ = gate(x)                                      # the same experts, renormalised weights

print("scores s_{i,t} = softmax over the 8 experts")
print("token  " + " ".join(f"{'e' + str(i):>6s}" for i in range(8)) + "   top-2  g x 2.0 (scaled)   g normalised")
for t in range(3):
    print(f"  {t}    {fmt(scores[t])}   {str(indices[t].tolist()):6s} {fmt(weights[t], 5, 2)} "
          f"(sum {weights[t].sum():.2f})   {fmt(weights_norm[t], 5, 2)}")

# %% [markdown]
# Two conventions weight the chosen experts (`Gate.forward`):
#
# - `norm_topk_prob=False` (V2, V2-Lite): `g = s * routed_scaling_factor`. The routed output keeps the router's
#   confidence: the unsure token's two experts get small weights and its output is mostly the shared experts'.
#   With 160 experts the top-6 softmax scores are small, which is why V2 multiplies them by 16.
# - `norm_topk_prob=True`: `g = s / sum(s over the top-K)`, always summing to 1 (the flag is in V2's config.json,
#   off; V3 renormalises its sigmoid scores and then multiplies them by its routed_scaling_factor, 2.5).
#
# Note the torn token: experts 2 and 3 are within 0.1 in logit, and a tiny change in the input flips which one is
# first. With `K = 2` both are used anyway, and their weights change smoothly as the two trade places.
#
# ### Group-limited routing
#
# V2 spreads its 160 routed experts over 8 devices (20 each). Plain top-6 ("greedy") may pick experts on 6
# different devices, and the token's hidden state must be sent to each. **Group-limited greedy** routing (section
# 2.2.2) first picks `topk_group` devices, then the top-K experts among theirs. Step by step, for 8 experts in
# `n_group = 4` groups of 2, keeping `topk_group = 2` groups, `K = 3`:

# %%
group_config = toy_config(n_activated_experts=3, topk_method="group_limited_greedy", n_group=4, topk_group=2)
token = torch.tensor([[3.0, 1.0, 2.8, 2.7, 2.9, 0.5, 0.0, 0.0]])  # logits; groups {0,1} {2,3} {4,5} {6,7}
gates = {}
for name, overrides in (("greedy", dict(topk_method="greedy")), ("V2 group-limited", {}),
                        ("V3 group-limited (sigmoid)", dict(scoring_func="sigmoid"))):
    gates[name] = Gate(ModelConfig(**{**group_config.to_dict(), **overrides}))
    gates[name].weight.data = torch.eye(8)

s = token.softmax(-1)                                            # (1, 8) the affinities
grouped = s.view(1, 4, 2)                                        # (1, groups, experts per group)
group_scores = grouped.amax(-1)                                  # (1, 4) V2: a group is as good as its best expert
kept = group_scores.topk(2, dim=-1).indices                      # (1, 2) the topk_group best groups
mask = torch.zeros(1, 4, dtype=torch.bool).scatter_(1, kept, True)
masked = grouped.masked_fill(~mask[..., None], 0.0).flatten(1)   # (1, 8) experts of the other groups zeroed
chosen = masked.topk(3, dim=-1).indices                          # (1, 3)
print("expert        " + " ".join(f"{i:>6d}" for i in range(8)))
print("group         " + " ".join(f"{i // 2:>6d}" for i in range(8)))
print("s             " + fmt(s[0]))
print("group score   " + " ".join(f"{group_scores[0, i // 2]:6.3f}" for i in range(8)), " (best expert of the group)")
print("kept groups   ", sorted(kept[0].tolist()))
print("after mask    " + fmt(masked[0]))
print("top-3         ", chosen[0].tolist())
print()
for name, g in gates.items():
    w, i, _ = g(token)
    groups = sorted({e // 2 for e in i[0].tolist()})
    print(f"{name:27s} experts {str(i[0].tolist()):10s} on groups {str(groups):10s} weights {fmt(w[0], 5, 3)}")
assert gates["V2 group-limited"](token)[1][0].tolist() == chosen[0].tolist()

# %% [markdown]
# Greedy takes experts 0, 4 and 2 (the three best), on three groups. V2's rule scores each group by its best
# expert, so group 2 (best 2.9) beats group 1 (best 2.8) even though group 1 holds two strong experts; inside
# groups 0 and 2, the third pick is expert 1, weaker than the experts 2 and 3 it displaced. DeepSeek-V3 scores a
# group by the *sum of its best two* (sigmoid) scores, which prefers group 1 here. The price of the limit is the
# affinity given up; section 5 measures the other side, the devices it saves.

# %% [markdown]
# ## 2. Shared and routed experts
#
# Each MoE block has `N_s` shared experts (`minicoder` fuses them into one SwiGLU of width `N_s * moe_d_ff`, as
# DeepSeek's code does), `N_r` routed experts of width `moe_d_ff`, and the gate. `ModelConfig.num_params()` and
# `num_active_params()` count them from the shapes, allocating nothing:

# %%
print(f"{'':24s} {'total':>9s} {'active':>8s} {'routed experts':>15s} {'shared':>8s} {'gate':>7s} "
      f"{'attention':>10s} {'dense MLP':>10s}")
for name in ("deepseek-coder-v2-lite", "deepseek-coder-v2"):
    c = ModelConfig.from_preset(name)
    n_moe = sum(c.is_moe_layer(i) for i in range(c.n_layers))
    expert = 3 * c.d_model * c.moe_d_ff                          # w1, w2, w3 of one expert
    routed, shared = n_moe * c.n_routed_experts * expert, n_moe * c.n_shared_experts * expert
    gate_params = n_moe * c.n_routed_experts * c.d_model
    attention = c.n_layers * c._attn_params()
    dense = (c.n_layers - n_moe) * 3 * c.d_model * c.d_ff
    print(f"{name:24s} {c.num_params() / 1e9:8.2f}B {c.num_active_params() / 1e9:7.2f}B "
          f"{routed / 1e9:14.2f}B {shared / 1e9:7.2f}B {gate_params / 1e9:6.3f}B {attention / 1e9:9.2f}B "
          f"{dense / 1e9:9.2f}B")
    print(f"{'':24s} {n_moe} MoE blocks x ({c.n_shared_experts} shared + {c.n_routed_experts} routed experts of "
          f"{c.moe_d_ff}), {c.n_activated_experts} routed per token; routed experts are "
          f"{routed / c.num_params():.0%} of the weights and "
          f"{n_moe * c.n_activated_experts * expert / c.num_active_params():.0%} of the active ones")

# %% [markdown]
# Almost all of V2's weights are routed experts, and a token touches 6/160 of them. The rest (attention, the
# shared experts, the embeddings and head) is what every token pays for.
#
# **Fine-grained experts.** DeepSeekMoE's other idea (Dai et al., 2024) is to cut each expert into `m` narrower
# ones and route to `m` times as many: the same parameters and the same compute per token, but far more ways to
# combine experts. Starting from a conventional layer of 16 experts and top-2:

# %%
print(f"{'segments m':>10s} {'experts N':>10s} {'top-K':>6s} {'width':>7s} {'combinations C(N, K)':>22s}")
for m in (1, 2, 4, 8):
    print(f"{m:10d} {16 * m:10d} {2 * m:6d} {'1/' + str(m):>7s} {math.comb(16 * m, 2 * m):22,d}")
for name in ("deepseek-coder-v2-lite", "deepseek-coder-v2"):
    c = ModelConfig.from_preset(name)
    print(f"{name}: C({c.n_routed_experts}, {c.n_activated_experts}) = "
          f"{math.comb(c.n_routed_experts, c.n_activated_experts):.3g}, plus {c.n_shared_experts} shared")

# %% [markdown]
# From 120 ways to pick 2 of 16 to 4.4 billion ways to pick 8 of 64: each token can get a much more specific
# mixture, so each expert can specialise more narrowly. The shared experts ("shared expert isolation") hold what
# every token needs, so the routed ones need not each relearn it.
#
# In the module, `MoE.forward` is exactly the equation: the shared output plus the gated sum of the chosen
# experts. On a toy layer with one shared expert:

# %%
torch.manual_seed(0)
moe = MoE(toy_config(n_shared_experts=1)).eval()
u = torch.randn(1, 3, 8)                                          # (B, T, d_model)
y, stats = moe(u)                                                 # (1, 3, 8)
w, idx, _ = moe.gate(u[0])                                        # (3, 2) each
by_hand = moe.shared_experts(u[0]) + torch.stack(
    [sum(w[t, k] * moe.experts[idx[t, k]](u[0, t]) for k in range(2)) for t in range(3)])
print("experts per token:", idx.tolist(), " loads:", stats.expert_counts.tolist())
print(f"max |MoE - (shared + sum_k g_k expert_k)| = {(y[0] - by_hand).abs().max():.1e}")

# %% [markdown]
# ## 3. The balance losses
#
# Left alone, a router collapses: experts that happen to be chosen early get trained, become better, get chosen
# more. Section 4 shows it happening. V2 adds three losses (section 2.2.3), computed per sequence of `T` tokens
# and averaged over the batch (`balance_losses`):
#
# $$\mathcal{L}_\text{ExpBal} = \sum_{i=1}^{N_r} f_i P_i, \qquad f_i = \frac{N_r}{K_r T}\sum_t \mathbb{1}(t \text{ chose } i),
#   \qquad P_i = \frac1T \sum_t s_{i,t}$$
#
# `f_i` is expert `i`'s share of the choices, scaled so that a balanced routing has every `f_i = 1`; it is a count
# and carries no gradient. `P_i` is the mean affinity and carries the gradient into the gate. `L_DevBal` does the
# same per device (`f'` the mean `f` of a device's experts, `P'` their summed `P`), and `L_CommBal` counts, per
# device, the tokens *sent* to it (a token with three experts on one device is sent there once), with `M` the
# devices a token may reach. Below, 8 experts on 4 devices, `M = 2`, one sequence of 16 tokens routed three ways:

# %%
bal_config = toy_config(topk_method="group_limited_greedy", n_group=4, topk_group=2)  # D = 4 devices, M = 2
T = 16
collapsed_scores = torch.full((T, 8), 0.02).index_fill_(1, torch.tensor([0, 1]), 0.44)  # all mass on 0 and 1
collapsed_idx = torch.tensor([[0, 1]] * T)
uniform = torch.full((T, 8), 1 / 8)
balanced_idx = torch.tensor([[(2 * t) % 8, (2 * t + 1) % 8] for t in range(T)])        # pairs on one device
spread_idx = torch.tensor([[t % 8, (t + 4) % 8] for t in range(T)])                    # pairs on two devices

print(f"{'routing':48s} {'L_ExpBal':>9s} {'L_DevBal':>9s} {'L_CommBal':>10s}")
for label, sc, idx in (("collapsed: every token on experts 0 and 1", collapsed_scores, collapsed_idx),
                       ("balanced, each token's 2 experts on one device", uniform, balanced_idx),
                       ("balanced, each token's 2 experts on two devices", uniform, spread_idx)):
    losses = balance_losses(sc, idx, bal_config, batch_size=1, seq_len=T)
    print(f"{label:48s} " + " ".join(f"{v.item():9.3f}" for v in losses))

# %% [markdown]
# A perfectly balanced routing scores `L_ExpBal = 1` whatever the affinities: every `f_i = 1`, so the loss is
# `sum_i P_i = 1`. A collapse onto `K` experts approaches `N_r / K` (here 4) as the affinities concentrate on
# them. The communication loss tells the last two routings apart: both load the experts and devices equally, but
# the third sends every token to two devices.
#
# Is 1 the minimum? Not strictly: `f` counts only the chosen experts and `P` averages all affinities, so a batch
# whose tokens put much affinity on experts they did *not* choose can score a little below 1. Random routings,
# from uniform to sharply biased toward a few experts (softmax of random logits plus a bias toward expert 0):

# %%
gen = torch.Generator().manual_seed(0)
points = []
for bias in torch.linspace(0, 4, 21):
    for temperature in (0.3, 1.0, 3.0):
        logits = torch.randn(T * 8, 8, generator=gen) * temperature   # 8 sequences of T tokens
        logits[:, 0] += bias
        logits[:, 1] += bias / 2
        sc = logits.softmax(-1)
        idx = sc.topk(2, dim=-1).indices
        load = torch.bincount(idx.flatten(), minlength=8).float()
        points.append((load.max() / load.mean(), balance_losses(sc, idx, bal_config, 8, T)[0]))
load_ratio, expbal = torch.tensor(points).T
# the hand-made dip below 1: two tokens choose expert 0 on near-uniform scores, a third sits between 1 and 2
dip = torch.tensor([[0.34, 0.33, 0.33], [0.34, 0.33, 0.33], [0.02, 0.50, 0.48]])
dip_config = ModelConfig(**{**toy_config().to_dict(), "n_routed_experts": 3, "n_activated_experts": 1})
dip_loss = balance_losses(dip, dip.topk(1, dim=-1).indices, dip_config, 1, 3)[0]

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.scatter(load_ratio, expbal, s=12)
ax.axhline(1.0, color="gray", ls="--", lw=1)
ax.set_xlabel("max / mean expert load"); ax.set_ylabel("L_ExpBal"); ax.grid(alpha=0.3)
ax.set_title("L_ExpBal grows with the imbalance (8 experts, top-2)")
plt.tight_layout(); plt.show()
print(f"smallest L_ExpBal among the random routings: {expbal.min():.3f}; "
      f"the hand-made case (3 experts, top-1, 2 of 3 tokens on expert 0): {dip_loss:.3f}")

# %% [markdown]
# The gradient is what balances. `f` is a constant in the backward pass, so `dL/dP_i = f_i`: the loss pushes
# hardest on the affinities of the most-loaded experts. On the collapsed routing, the gradient of `L_ExpBal` with
# respect to the logits (mean over tokens) is positive for the overloaded experts, and gradient descent lowers them:

# %%
logits = torch.log(collapsed_scores).requires_grad_()            # softmax(log s) = s
expert_loss, _, _ = balance_losses(logits.softmax(-1), collapsed_idx, bal_config, batch_size=1, seq_len=T)
expert_loss.backward()
print("dL_ExpBal/dlogit, mean over tokens:", fmt(logits.grad.mean(0), 7, 4))

# %% [markdown]
# How much of each loss goes into the objective is `balance_alpha1/2/3`. The presets carry the papers' values:
# small, because the losses must balance the load without overriding what the router learns. `MoE.forward`
# returns `RouterStats.balance_loss`, their weighted sum, and `train()` adds it to the language-model loss.

# %%
for name in ("deepseek-coder-v2-lite", "deepseek-coder-v2", "tiny-moe"):
    c = ModelConfig.from_preset(name)
    devices = f" over D = {c.balance_devices} devices, M = {c.balance_m_devices}" if c.balance_alpha3 else ""
    print(f"{name:24s} alpha1 {c.balance_alpha1:<6g} alpha2 {c.balance_alpha2:<6g} "
          f"alpha3 {c.balance_alpha3:<6g}{devices}")

# %% [markdown]
# ## 4. Expert load over training
#
# Does `alpha1` matter at toy scale? `benchmarks/moe_balance.py` trains the `tiny-moe` preset (8 routed experts,
# top-2, one shared, three MoE blocks) on `make train-tiny`'s data several times from the same seed: without any
# balance loss, with the preset's `alpha1 = 0.01`, with `alpha1 = 0.1`, and with DeepSeek-V3's auxiliary-loss-free
# bias (sigmoid scores and a per-expert bias nudged toward the under-loaded experts after every step,
# `MoE.update_bias`). `train()` logs every expert's load per MoE block every 10 steps. This section reads the
# committed result and retrains nothing; the benchmark's command is in its docstring.

# %%
result = json.loads(BENCHMARK.read_text()) if BENCHMARK.is_file() else None
if result is None:
    print(f"{BENCHMARK} is missing: run .venv/bin/python benchmarks/moe_balance.py to write it (15-25 minutes)")
else:
    m = result["machine"]
    print(f"{result['command']}\n{m['cpu_count']} CPUs, torch {m['torch']}, run {result['started']}\n")
    print(f"{'run':14s} {'seconds':>7s}  overrides of the tiny-moe preset")
    for name, run in result["runs"].items():
        overrides = ", ".join(f"{k}={v}" for k, v in run["overrides"].items())
        print(f"{name:14s} {run['elapsed_s']:7.0f}  {overrides}")

# %%
if result is not None:
    runs = result["runs"]
    n_layers = len(next(iter(runs.values()))["log"][0]["expert_counts"])
    fig, axes = plt.subplots(len(runs), n_layers, figsize=(3.3 * n_layers, 1.9 * len(runs)), sharex=True,
                             squeeze=False)
    for r, (name, run) in enumerate(runs.items()):
        steps = [line["step"] for line in run["log"]]
        counts = torch.tensor([line["expert_counts"] for line in run["log"]])  # (lines, layers, experts)
        share = counts / counts.sum(-1, keepdim=True)                         # each expert's share of the slots
        for layer in range(n_layers):
            ax = axes[r, layer]
            im = ax.imshow(share[:, layer].T, aspect="auto", cmap="viridis", vmin=0, vmax=0.5, interpolation="nearest",
                           extent=(steps[0] - 5, steps[-1] + 5, share.shape[-1] - 0.5, -0.5))
            ax.set_yticks(range(share.shape[-1]))
            ax.tick_params(labelsize=7)
            if r == 0:
                ax.set_title(f"MoE block {layer + 1}", fontsize=9)
            if layer == 0:
                ax.set_ylabel(f"{name}\nexpert", fontsize=8)
            if r == len(runs) - 1:
                ax.set_xlabel("step", fontsize=8)
    fig.colorbar(im, ax=axes, shrink=0.6, label="share of the token-slots (balanced: 1/8)")
    fig.suptitle("expert load over training, tiny-moe (top-2 of 8: a share of 0.5 is an expert every token uses)")
    plt.show()

# %% [markdown]
# Each panel is one MoE block of one run: a row per expert, a column per 10 steps, brighter where the expert
# received more of the (token, expert) slots. With 8 experts and top-2, a balanced block is an even 1/8 everywhere;
# an expert that every token chooses takes 1/2, the brightest colour. Look for bright bands: an expert that takes
# far more than its share for many steps, and dark ones, experts that are starved (and so barely trained). In the
# runs without balance pressure the bands can also wander, as the router moves the tokens from one favourite to
# another. The same data as max / mean load per block (1.0 is perfect balance, 4.0 a collapse onto two experts):

# %%
if result is not None:
    fig, axes = plt.subplots(1, n_layers, figsize=(4 * n_layers, 3.2), sharey=True)
    for name, run in runs.items():
        steps = [line["step"] for line in run["log"]]
        for layer, ax in enumerate(axes):
            ax.plot(steps, [line["load_max_over_mean"][layer] for line in run["log"]], label=name)
    for layer, ax in enumerate(axes):
        ax.axhline(1.0, color="gray", ls="--", lw=1)
        ax.set_title(f"MoE block {layer + 1}"); ax.set_xlabel("step"); ax.grid(alpha=0.3)
    axes[0].set_ylabel("max / mean expert load (per 10 steps)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=len(runs), fontsize=8)
    plt.tight_layout(rect=(0, 0.07, 1, 1)); plt.show()

    tail = next(iter(runs.values()))["tail"]["tail_steps"]
    print(f"mean over the last {tail} steps, per MoE block and averaged over the blocks; validation over the "
          f"whole held-out split at the end")
    print(f"{'run':14s} {'max/mean load':>24s} {'CV of the loads':>24s} {'L_ExpBal':>9s} {'train loss':>10s} "
          f"{'val bits/byte':>13s}")
    for name, run in runs.items():
        t = run["tail"]
        print(f"{name:14s} {fmt(t['max_over_mean_per_layer'], 5, 2)} ({t['max_over_mean']:4.2f}) "
              f"{fmt(t['cv_per_layer'], 5, 2)} ({t['cv']:4.2f}) {t['expert_loss']:9.3f} {t['train_loss']:10.3f} "
              f"{run['final']['val_bpb_full']:13.4f}")
    base = runs.get("alpha0")
    for name, run in runs.items():
        if base is not None and name != "alpha0":
            ratio = run["tail"]["max_over_mean"] / base["tail"]["max_over_mean"]
            print(f"{name}: max/mean load {run['tail']['max_over_mean']:.2f} against alpha0's "
                  f"{base['tail']['max_over_mean']:.2f} ({ratio - 1:+.0%}); validation "
                  f"{run['final']['val_bpb_full'] - base['final']['val_bpb_full']:+.4f} bits/byte")

# %% [markdown]
# How to read it (the figures are the JSON's, printed above; a rerun on another machine may change them a little,
# and one seed cannot separate differences in bits per byte of a few thousandths from noise):
#
# - The max/mean figure is taken over the window of one metrics line (10 steps of 2,048 tokens), so even a
#   perfect router shows a little noise above 1.0. The coefficient of variation (std/mean of the 8 loads) weighs
#   every expert, not just the busiest.
# - `alpha0` has no balance pressure at all: compare every run with it. `L_ExpBal` enters the objective times
#   `alpha1`, so its gradient can only pull the loads together as far as it outweighs the language-model loss's
#   pull toward the experts the router already prefers; the `alpha0.1` run shows what ten times the weight does,
#   and the validation column whether the balance cost anything in quality over this short run.
# - The aux-free runs balance with no loss term at all: after each step every expert's bias moves by
#   `bias_update_speed` (gamma) toward balance. Over the whole run a bias can move at most `gamma * steps`
#   (printed below), and it only changes which experts are chosen once it has closed the gap between their
#   scores. V3's gamma of 0.001 was set for hundreds of thousands of steps; this run has 300. An aux-free run's
#   `L_ExpBal` (logged, not trained on) can stay above 1 while its loads look balanced: the loss is computed per
#   sequence, and the bias balances the loads of the whole batch, not of each sequence.

# %%
if result is not None:
    for name, run in runs.items():
        gamma = run["model_config"]["bias_update_speed"]
        if gamma > 0:
            print(f"{name}: gamma = {gamma:g}, so after {run['steps']} steps a bias has moved by at most "
                  f"{gamma * run['steps']:.2f} (sigmoid scores lie in 0..1)")

# %% [markdown]
# At this scale imbalance costs only time on one CPU. At V2's it is the difference between 8 devices working in
# parallel and 7 waiting for the busiest one, and a collapsed expert wastes its share of 236B parameters.

# %% [markdown]
# ## 5. What group-limited routing saves
#
# In expert parallelism each device holds some experts (V2: 8 devices, 20 experts each, one group per device),
# and each MoE block runs two all-to-all exchanges: every token's hidden state goes to the devices of its
# experts (dispatch) and the outputs come back (combine). A token whose 6 experts sit on `d` devices costs `d`
# copies each way. Below, a V2 gate (160 experts in 8 groups, top-3 groups, top-6) on random inputs; only `d_model`
# is shrunk, which changes nothing about the routing rule. The gate's weights are drawn at a scale where the
# logits spread by about 1, as a trained router's do.

# %%
v2_small = dict(d_model=64, n_layers=1, n_heads=1)                # the router only: V2's experts, groups and top-K
gates_v2 = {method: Gate(ModelConfig.from_preset("deepseek-coder-v2", topk_method=method, **v2_small))
            for method in ("greedy", "group_limited_greedy")}
torch.manual_seed(0)
weight = torch.randn(160, 64) / 8                                 # logits ~ N(0, 1) for x ~ N(0, I)
for g in gates_v2.values():
    g.weight.data = weight
x = torch.randn(20_000, 64)
per_device = 160 // 8
print(f"6 experts drawn at random touch 8 (1 - C(140, 6) / C(160, 6)) = "
      f"{8 * (1 - math.comb(140, 6) / math.comb(160, 6)):.2f} of the 8 devices on average")
devices, kept_mass = {}, {}
for method, g in gates_v2.items():
    w, idx, sc = g(x)                                             # (N, 6), (N, 6), (N, 160)
    devices[method] = torch.tensor([len(set(row)) for row in (idx // per_device).tolist()])  # (N,)
    kept_mass[method] = sc.gather(1, idx).sum(-1)                 # (N,) affinity of the chosen experts
    print(f"{method:21s} devices per token: mean {devices[method].float().mean():.2f}, max {devices[method].max()}; "
          f"sum of the top-6 scores {kept_mass[method].mean():.3f}, x routed_scaling_factor "
          f"{g.routed_scaling_factor:g} = {(w.sum(-1)).mean():.2f}")
loss = 1 - kept_mass["group_limited_greedy"] / kept_mass["greedy"]
print(f"group-limited keeps {1 - loss.mean():.1%} of the greedy top-6 affinity on average "
      f"(the worst token {1 - loss.max():.1%})")

fig, ax = plt.subplots(figsize=(6, 3.2))
for shift, (method, d) in zip((-0.2, 0.2), devices.items()):
    share = torch.bincount(d, minlength=7)[1:] / len(d)          # (6,) tokens on 1..6 devices
    ax.bar(torch.arange(1, 7) + shift, share, width=0.4, label=f"{method} (mean {d.float().mean():.2f})")
ax.set_xlabel("devices a token's 6 experts live on (of 8)"); ax.set_ylabel("share of the tokens")
ax.legend(loc="upper left"); ax.grid(alpha=0.3)
plt.tight_layout(); plt.show()

# %% [markdown]
# With random scores, plain top-6 lands on more than 4 of the 8 devices on average, and often on 5 or 6, as
# drawing 6 experts at random would; group-limited routing never reaches more than `topk_group = 3`. The dispatch
# and the combine traffic per token (each copy a `d_model = 5120` vector, 10 KiB in bf16) fall by the same ratio as
# the mean number of devices, and no device has to receive from every token. The cost is the affinity given up by
# restricting the choice to 3 groups, printed above; for random scores it is a pessimistic figure, since a trained
# router can learn to keep a token's experts together. `L_CommBal` (section 3) then balances the traffic each
# device receives. DeepSeek-V3 does the same across nodes: its 256 experts span 8 nodes, and each token may use
# at most 4.

# %% [markdown]
# ## 6. Capacity: dropping what an expert cannot take
#
# On real hardware each expert gets a buffer of fixed size: capacity `= ceil(capacity_factor * N * K / N_r)`
# (token, expert) pairs for `N` tokens, the balanced share times a factor. V2 trains with a factor of 1.0
# (section 2.2.4): an overloaded expert keeps its pairs of highest affinity and drops the rest, and a dropped pair
# contributes nothing (the shared experts still see the token). `capacity_mask` is the rule; 6 tokens, top-2 of 4
# experts, capacity 3:

# %%
indices = torch.tensor([[0, 1], [0, 2], [0, 1], [0, 3], [2, 0], [1, 3]])      # expert 0 is wanted 5 times
priority = torch.tensor([[0.5, 0.2], [0.3, 0.3], [0.6, 0.1], [0.2, 0.2], [0.4, 0.35], [0.3, 0.3]])
keep = capacity_mask(indices, priority, capacity=3, n_experts=4)
for t in range(6):
    pairs = ", ".join(f"e{e} ({p:.2f}) {'kept' if k else 'DROPPED'}"
                      for e, p, k in zip(indices[t].tolist(), priority[t].tolist(), keep[t].tolist()))
    print(f"token {t}: {pairs}")

# %% [markdown]
# `MoE.forward` applies it in training mode only; at evaluation nothing is dropped. On a toy layer whose router
# favours expert 0 (its gate row scaled up), the dropped fraction against the capacity factor:

# %%
torch.manual_seed(0)
u = torch.randn(4, 64, 8)                                         # (B, T, d_model): 256 tokens, 512 pairs
u[..., 0] = 1.0                                                   # a constant feature ...
router = torch.randn(8, 8)
router[:, 0] = 0.0
router[0, 0] = 1.5                                                # ... that only expert 0's gate row reads
print(f"{'capacity_factor':>15s} {'capacity':>8s} {'dropped, train':>15s} {'dropped, eval':>14s}   loads in training")
for factor in (0.5, 1.0, 1.25, 1.5, 2.0, 4.0):
    torch.manual_seed(0)
    layer = MoE(toy_config(capacity_factor=factor))              # the same experts for every factor
    layer.gate.weight.data = router
    _, train_stats = layer.train()(u)
    _, eval_stats = layer.eval()(u)
    pairs = u.shape[0] * u.shape[1] * 2
    print(f"{factor:15.2f} {math.ceil(factor * pairs / 8):8d} {train_stats.dropped / pairs:15.1%} "
          f"{eval_stats.dropped / pairs:14.1%}   {train_stats.expert_counts.int().tolist()}")
print(f"{'':15s} {'':8s} {'':15s} {'':14s}   {eval_stats.expert_counts.int().tolist()} (eval: the router's wish)")

# %% [markdown]
# A factor of 1.0 leaves no slack: any imbalance drops pairs, which is why V2 pairs it with the balance losses and,
# as the paper says, keeps about 10% of the training sequences free of dropping so the model also learns to run
# without it (left out of minicoder). At inference dropping is optional; minicoder never drops in eval mode.

# %% [markdown]
# ## Exercises
#
# Each exercise names the section it builds on and what of `minicoder` it needs.
#
# 1. **V3's sequence-wise balance loss** (section 3; needs `balance_losses`). DeepSeek-V3 (section 2.1.2)
#    drops V2's three losses for the aux-free bias plus one small *complementary* loss per sequence, with the
#    sigmoid affinities normalised to sum to 1 per token. Write it from the V3 paper's equations 17-20 and check it
#    against `balance_losses` on a sigmoid config. Then build a batch that is perfectly balanced as a whole but
#    collapsed within each sequence: what do a sequence-wise and a batch-wise `L_ExpBal` say about it, and which
#    one should a model trained on code from different languages want?
# 2. **How much alpha** (section 4; needs `benchmarks/moe_balance.py`). Add runs with V2's own weights,
#    `alpha1 = 0.003` and `0.001`, and a larger one, `1.0`, to `RUNS`, and run them (`--runs`). Plot the final
#    validation bits per byte against the tail max/mean load. Where does the balance stop being free?
# 3. **The aux-free bias speed** (section 4; needs `MoE.update_bias`). Run the `aux-free` configuration with
#    `bias_update_speed` 0.0001, 0.001 and 0.01 (keep the runs with `--work-dir`, load their last checkpoints and
#    read `gate.expert_bias`). How many steps does each need to balance, and how far does each oscillate once it
#    has? Relate both to the gap in logits between the experts at the start.
# 4. **All-to-all counts** (section 5; needs `Gate`). For V2 on 8 devices, 4,096 tokens per device and a
#    `d_model` of 5120 in bf16, count the bytes each device sends in one MoE block's dispatch and combine, for
#    greedy and group-limited routing, (a) if a token goes once per *expert* and (b) once per *device*. Repeat
#    with DeepSeek-V3's node limit (256 experts on 8 nodes, 4 nodes per token, 8 experts per token).
