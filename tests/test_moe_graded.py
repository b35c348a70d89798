"""DeepSeekMoE (DeepSeek-V2 section 2.2): the graded tests of the `moe` assignment.

Run: .venv/bin/pytest tests/test_moe_graded.py -q
Grade a student package: .venv/bin/minicoder assignment grade moe --student DIR

`minicoder/assignments.py` maps each test here to the function it grades. Each function is called on
inputs made here (token features for the gate; scores and chosen experts for the balance losses and
the capacity mask; (token, gate, expert) pairs for the dispatch), so a stub fails its own tests only.
Oracles: direct transcriptions, one token or one pair at a time in float64 or Python floats, of
DeepSeek's own MoEGate (V2, and V3 for sigmoid scoring and the routing bias: `reference_route`), of
section 2.2.3's three balance losses and their gradient (`reference_losses`), of per-expert capacity
(`reference_keep`) and of the mixture itself; HF `transformers`' DeepseekV2TopkRouter and DeepseekV2Moe,
and end to end DeepseekV2ForCausalLM, on the same weights. tests/test_moe.py imports the transcriptions.
The sorted dispatch must also dispatch: each expert runs once, on its own tokens only (a hook sees what
reaches it), so running every expert on every token and masking fails. Sizes are odd: d_model 24,
8 experts of width 10, top-3, 13 or 14 tokens.
"""

import copy
import math

import pytest
import torch

from minicoder.config import ModelConfig
from minicoder.moe import MoE, balance_losses, capacity_mask

ATOL = 1e-5  # float32 against float64, or against transformers: the same maths in a different order
HF_ATOL = 1e-4  # float32 logits of a 3-layer model against transformers'


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def moe_config(**overrides) -> ModelConfig:
    base = dict(vocab_size=11, n_layers=1, d_model=24, n_heads=2, d_ff=8, max_seq_len=16,
                n_routed_experts=8, n_activated_experts=3, moe_d_ff=10)
    return ModelConfig(**{**base, **overrides})


def make_moe(config: ModelConfig, seed: int = 0) -> MoE:
    """A MoE with a decisive random gate (std 0.5, so scores are far from ties)."""
    torch.manual_seed(seed)
    moe = MoE(config)
    torch.nn.init.normal_(moe.gate.weight, std=0.5)
    return moe


def case_id(overrides: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in overrides.items()) or "default"


# ---------------------------------------------------------------- the oracles

def reference_route(x: torch.Tensor, W: torch.Tensor, cfg: ModelConfig, bias: torch.Tensor | None = None):
    """DeepSeek's MoEGate (V2; V3 for sigmoid and the bias), one token at a time in float64:
    (weights (N, K) float64, indices (N, K)), the chosen experts best first by score plus bias."""
    E, K, G = cfg.n_routed_experts, cfg.n_activated_experts, cfg.n_group
    size = E // G
    all_w, all_i = [], []
    for xt in x.double():
        logits = [float(W[i].double() @ xt) for i in range(E)]
        if cfg.scoring_func == "softmax":
            exps = [math.exp(v - max(logits)) for v in logits]
            s = [v / sum(exps) for v in exps]
        else:
            s = [1 / (1 + math.exp(-v)) for v in logits]
        choice = [s[i] + (float(bias[i]) if bias is not None else 0.0) for i in range(E)]  # selection only
        allowed = list(range(E))
        if cfg.topk_method == "group_limited_greedy":
            group_scores = []
            for g in range(G):
                members = sorted(choice[g * size:(g + 1) * size], reverse=True)
                group_scores.append(members[0] if cfg.scoring_func == "softmax" else sum(members[:2]))
            best = sorted(range(G), key=lambda g: -group_scores[g])[:cfg.topk_group]
            allowed = [i for i in range(E) if i // size in best]
        chosen = sorted(allowed, key=lambda i: -choice[i])[:K]
        w = [s[i] for i in chosen]
        if cfg.scoring_func == "sigmoid":
            if cfg.norm_topk_prob:
                w = [v / sum(w) for v in w]
            w = [v * cfg.routed_scaling_factor for v in w]
        elif cfg.norm_topk_prob and K > 1:
            w = [v / sum(w) for v in w]
        else:
            w = [v * cfg.routed_scaling_factor for v in w]
        all_w.append(w)
        all_i.append(chosen)
    return torch.tensor(all_w, dtype=torch.float64), torch.tensor(all_i)


def reference_frequencies(indices: torch.Tensor, cfg: ModelConfig, B: int, T: int):
    """Per sequence b, section 2.2.3's f_i, f'_d and f''_d, counted with loops: three lists of B lists."""
    E, K, D, M = cfg.n_routed_experts, cfg.n_activated_experts, cfg.balance_devices, cfg.balance_m_devices
    size = E // D
    fs, f_devs, f_comms = [], [], []
    for b in range(B):
        f, f_comm = [0.0] * E, [0.0] * D
        for t in range(T):
            chosen = indices[b * T + t].tolist()
            for i in chosen:
                f[i] += E / (K * T)
            for d in {i // size for i in chosen}:
                f_comm[d] += D / (M * T)
        fs.append(f)
        f_devs.append([sum(f[d * size:(d + 1) * size]) / size for d in range(D)])
        f_comms.append(f_comm)
    return fs, f_devs, f_comms


def reference_losses(scores, indices, cfg: ModelConfig, B: int, T: int):
    """Section 2.2.3's L_ExpBal, L_DevBal, L_CommBal with explicit loops, averaged over the B sequences."""
    E, D = cfg.n_routed_experts, cfg.balance_devices
    size = E // D
    s = scores.double().tolist()
    if cfg.scoring_func == "sigmoid":
        s = [[v / sum(row) for v in row] for row in s]
    fs, f_devs, f_comms = reference_frequencies(indices, cfg, B, T)
    totals = [0.0, 0.0, 0.0]
    for b in range(B):
        P = [sum(s[b * T + t][i] for t in range(T)) / T for i in range(E)]
        P_dev = [sum(P[d * size:(d + 1) * size]) for d in range(D)]
        totals[0] += sum(fs[b][i] * P[i] for i in range(E)) / B
        totals[1] += sum(f_devs[b][d] * P_dev[d] for d in range(D)) / B
        totals[2] += sum(f_comms[b][d] * P_dev[d] for d in range(D)) / B
    return totals


def reference_keep(indices, priority, capacity: int):
    """Per expert, the `capacity` pairs of highest priority (ties: the earlier pair), by sorting lists."""
    keep = torch.zeros_like(indices, dtype=torch.bool)
    pairs = [(n, k) for n in range(indices.shape[0]) for k in range(indices.shape[1])]
    for e in range(int(indices.max()) + 1):
        mine = [p for p in pairs if indices[p] == e]
        for p in sorted(mine, key=lambda p: -float(priority[p].detach()))[:capacity]:
            keep[p] = True
    return keep


# ---------------------------------------------------------------- Gate.forward

GATE_CASES = [
    dict(),
    dict(routed_scaling_factor=2.5),
    dict(norm_topk_prob=True),
    dict(n_activated_experts=1, norm_topk_prob=True, routed_scaling_factor=3.0),  # K = 1: scaled, not normalised
    dict(topk_method="group_limited_greedy", n_group=4, topk_group=2, routed_scaling_factor=2.5),
    dict(norm_topk_prob=True, topk_method="group_limited_greedy", n_group=2, topk_group=1),
    dict(scoring_func="sigmoid", routed_scaling_factor=1.5),
    dict(scoring_func="sigmoid", norm_topk_prob=True, routed_scaling_factor=2.5),
    dict(scoring_func="sigmoid", topk_method="group_limited_greedy", n_group=4, topk_group=3),
    dict(scoring_func="sigmoid", topk_method="group_limited_greedy", n_group=8, topk_group=3),  # groups of one
]


@pytest.mark.parametrize("overrides", GATE_CASES, ids=case_id)
def test_gate_equals_deepseeks_routing_in_float64(overrides):
    cfg = moe_config(**overrides)
    gate = make_moe(cfg, seed=21).gate
    x = torch.randn(14, 24, generator=gen(22))
    weights, indices, scores = gate(x)
    K = cfg.n_activated_experts
    assert weights.shape == indices.shape == (14, K) and scores.shape == (14, 8)
    assert weights.dtype == scores.dtype == torch.float32 and indices.dtype == torch.int64
    ref_w, ref_i = reference_route(x, gate.weight.detach(), cfg)
    assert torch.equal(indices, ref_i), "each token's K experts, best first"
    torch.testing.assert_close(weights.double(), ref_w, atol=1e-6, rtol=0)
    logits = x.double() @ gate.weight.detach().double().T
    s = logits.softmax(-1) if cfg.scoring_func == "softmax" else logits.sigmoid()
    torch.testing.assert_close(scores.double(), s, atol=1e-6, rtol=0)  # every expert's affinity, no mask


@pytest.mark.parametrize("overrides, shift", [
    (dict(), 0.0),
    (dict(scoring_func="sigmoid", norm_topk_prob=True, routed_scaling_factor=2.5, topk_method="group_limited_greedy",
          n_group=4, topk_group=2), 0.0),
    # every biased score below 0: an expert outside the kept groups must still never be chosen
    (dict(scoring_func="sigmoid", routed_scaling_factor=2.5, topk_method="group_limited_greedy", n_group=4,
          topk_group=2), -3.0),
], ids=["softmax-greedy", "sigmoid-group", "sigmoid-group-negative"])
def test_gate_bias_steers_the_choice_but_not_the_weights(overrides, shift):
    cfg = moe_config(bias_update_speed=0.01, **overrides)
    gate = make_moe(cfg, seed=23).gate
    x = torch.randn(14, 24, generator=gen(24))
    bias = 0.3 * torch.randn(8, generator=gen(25)) + shift
    gate.expert_bias.copy_(bias)
    weights, indices, scores = gate(x)
    ref_w, ref_i = reference_route(x, gate.weight.detach(), cfg, bias)
    assert not torch.equal(ref_i, reference_route(x, gate.weight.detach(), cfg)[1])  # the bias matters here
    assert torch.equal(indices, ref_i), "choose by score + bias"
    torch.testing.assert_close(weights.double(), ref_w, atol=1e-6, rtol=0)  # weigh by the unbiased score
    logits = x.double() @ gate.weight.detach().double().T
    s = logits.softmax(-1) if cfg.scoring_func == "softmax" else logits.sigmoid()
    torch.testing.assert_close(scores.double(), s, atol=1e-6, rtol=0)  # the scores carry no bias


def test_gate_routes_in_float32_whatever_the_input_dtype():
    cfg = moe_config(topk_method="group_limited_greedy", n_group=4, topk_group=2)
    gate = make_moe(cfg, seed=26).gate.to(torch.bfloat16)
    x = torch.randn(14, 24, generator=gen(27)).to(torch.bfloat16)
    weights, indices, scores = gate(x)
    assert weights.dtype == scores.dtype == torch.float32
    ref_w, ref_i = reference_route(x.float(), gate.weight.detach().float(), cfg)
    assert torch.equal(indices, ref_i)
    torch.testing.assert_close(weights.double(), ref_w, atol=1e-6, rtol=0)


@pytest.mark.parametrize("overrides", [
    dict(routed_scaling_factor=2.5),
    dict(topk_method="group_limited_greedy", n_group=4, topk_group=2, routed_scaling_factor=16.0),
    dict(n_routed_experts=12, n_activated_experts=2, topk_method="group_limited_greedy", n_group=3, topk_group=1),
], ids=case_id)
def test_gate_equals_transformers_router(overrides):
    hf_v2 = pytest.importorskip("transformers.models.deepseek_v2.modeling_deepseek_v2")
    from transformers import DeepseekV2Config

    cfg = moe_config(**overrides)  # softmax, norm_topk_prob False: what transformers implements
    gate = make_moe(cfg, seed=28).gate
    group = dict(n_group=cfg.n_group, topk_group=cfg.topk_group) if cfg.topk_method != "greedy" else {}
    router = hf_v2.DeepseekV2TopkRouter(DeepseekV2Config(
        hidden_size=24, n_routed_experts=cfg.n_routed_experts, num_experts_per_tok=cfg.n_activated_experts,
        topk_method=cfg.topk_method, routed_scaling_factor=cfg.routed_scaling_factor, num_attention_heads=2,
        num_key_value_heads=2, **group))
    with torch.no_grad():
        router.weight.copy_(gate.weight)
    x = torch.randn(14, 24, generator=gen(29))
    weights, indices, _ = gate(x)
    _, hf_weights, hf_indices = router(x)
    ours, theirs = indices.argsort(-1), hf_indices.argsort(-1)  # transformers leaves its top-k unsorted
    assert torch.equal(indices.gather(1, ours), hf_indices.gather(1, theirs))
    torch.testing.assert_close(weights.gather(1, ours), hf_weights.gather(1, theirs), atol=1e-6, rtol=0)


# ---------------------------------------------------------------- balance_losses

def random_routing(cfg: ModelConfig, B: int, T: int, seed: int):
    g = gen(seed)
    logits = torch.randn(B * T, cfg.n_routed_experts, generator=g)
    scores = logits.softmax(-1) if cfg.scoring_func == "softmax" else logits.sigmoid()
    indices = torch.stack([torch.randperm(cfg.n_routed_experts, generator=g)[:cfg.n_activated_experts]
                           for _ in range(B * T)])
    return scores, indices


@pytest.mark.parametrize("overrides", [
    dict(n_routed_experts=12, n_devices=4, m_devices=2),
    dict(n_routed_experts=12, n_activated_experts=2, topk_method="group_limited_greedy", n_group=6, topk_group=2),
    dict(scoring_func="sigmoid", n_devices=2),
    dict(n_devices=8, m_devices=3),
], ids=case_id)
def test_balance_losses_equal_the_equations(overrides):
    cfg = moe_config(**overrides)
    B, T = 3, 5
    scores, indices = random_routing(cfg, B, T, seed=31)
    losses = balance_losses(scores, indices, cfg, B, T)
    assert len(losses) == 3 and all(loss.dim() == 0 and loss.dtype == torch.float32 for loss in losses)
    assert [loss.item() for loss in losses] == pytest.approx(reference_losses(scores, indices, cfg, B, T), abs=1e-6)


def test_balance_losses_by_hand():
    cfg = moe_config(n_routed_experts=8, n_activated_experts=2, n_devices=4, m_devices=1)
    B, T = 2, 4
    scores = torch.full((B * T, 8), 1 / 8)
    indices = torch.tensor([[2 * t, 2 * t + 1] for t in range(T)] * B)  # each expert once per sequence
    got = [loss.item() for loss in balance_losses(scores, indices, cfg, B, T)]
    assert got == pytest.approx([1.0, 1.0, 1.0])  # perfect balance: each loss is 1
    skewed = torch.zeros(B * T, 8)
    skewed[:, :2] = 0.5  # every token on experts 0 and 1, which also hold all the affinity: f = 4, P = 1/2
    assert balance_losses(skewed, torch.tensor([[0, 1]] * (B * T)), cfg, B, T)[0].item() == pytest.approx(4.0)


def test_balance_losses_send_their_gradient_through_the_scores():
    """f counts choices (a constant); P averages the scores. So d(a1 L_ExpBal + a2 L_DevBal + a3 L_CommBal)
    / d s_{t,i} = (a1 f_i + a2 f'_d + a3 f''_d) / (T B) for token t of sequence b, expert i on device d."""
    cfg = moe_config(n_routed_experts=12, n_activated_experts=2, n_devices=4, m_devices=2)
    B, T, E, D = 3, 5, 12, 4
    scores, indices = random_routing(cfg, B, T, seed=32)
    scores = scores.clone().requires_grad_(True)
    alphas = (0.3, 0.7, 1.1)
    losses = balance_losses(scores, indices, cfg, B, T)
    sum(a * loss for a, loss in zip(alphas, losses)).backward()
    fs, f_devs, f_comms = reference_frequencies(indices, cfg, B, T)
    want = torch.tensor([[(alphas[0] * fs[n // T][i] + alphas[1] * f_devs[n // T][i // (E // D)]
                           + alphas[2] * f_comms[n // T][i // (E // D)]) / (T * B) for i in range(E)]
                         for n in range(B * T)], dtype=torch.float64)
    torch.testing.assert_close(scores.grad.double(), want, atol=1e-6, rtol=0)


# ---------------------------------------------------------------- capacity_mask

def test_capacity_mask_by_hand():
    indices = torch.tensor([[0, 1], [0, 2], [0, 1], [2, 0]])
    priority = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.7, 0.3], [0.2, 0.5]])  # expert 0: 0.9, 0.5, 0.7, 0.5
    expected = {
        0: [[False, False], [False, False], [False, False], [False, False]],
        1: [[True, False], [False, True], [False, True], [False, False]],
        2: [[True, True], [False, True], [True, True], [True, False]],  # expert 0 keeps 0.9 and 0.7
        3: [[True, True], [True, True], [True, True], [True, False]],  # the tied 0.5s: the earlier token
        4: [[True, True], [True, True], [True, True], [True, True]],
    }
    for capacity, keep in expected.items():
        got = capacity_mask(indices, priority, capacity, n_experts=4)  # expert 3 receives nothing
        assert got.dtype == torch.bool and got.tolist() == keep, capacity


@pytest.mark.parametrize("capacity", [1, 2, 3, 5, 100])
def test_capacity_mask_keeps_the_highest_priority_pairs(capacity):
    g = gen(33)
    indices = torch.stack([torch.randperm(6, generator=g)[:3] for _ in range(21)])  # experts 6, 7 get nothing
    priority = torch.randint(0, 4, (21, 3), generator=g).float()  # many ties
    got = capacity_mask(indices, priority, capacity, n_experts=8)
    assert got.shape == (21, 3) and got.dtype == torch.bool
    assert torch.equal(got, reference_keep(indices, priority, capacity))


# ---------------------------------------------------------------- MoE._forward_sorted

def dispatch_case(seed: int):
    """A MoE and 13 tokens' kept (token, gate, expert) pairs, shuffled: expert 7 is never chosen, token 4
    keeps no pair, some tokens keep fewer than 3 (as after capacity dropping)."""
    moe = make_moe(moe_config(), seed)
    g = gen(seed + 1)
    x = torch.randn(13, 24, generator=g)
    indices = torch.stack([torch.randperm(7, generator=g)[:3] for _ in range(13)])  # (13, 3)
    weights = torch.rand(13, 3, generator=g) + 0.5
    keep = torch.rand(13, 3, generator=g) > 0.25
    keep[4] = False
    tokens = torch.arange(13)[:, None].expand(13, 3)
    order = torch.randperm(int(keep.sum()), generator=g)  # the pairs in any order
    return moe, x, tokens[keep][order], weights[keep][order], indices[keep][order]


@pytest.mark.parametrize("seed", [34, 35])
def test_forward_sorted_equals_float64_pair_by_pair(seed):
    moe, x, tokens, weights, indices = dispatch_case(seed)
    x, weights = x.clone().requires_grad_(True), weights.clone().requires_grad_(True)
    y = moe._forward_sorted(x, tokens, weights, indices)
    assert y.shape == (13, 24) and y.dtype == torch.float32
    r = torch.randn(13, 24, generator=gen(seed + 2))
    (y * r).sum().backward()

    moe64 = copy.deepcopy(moe).double()
    x64, w64 = x.detach().double().requires_grad_(True), weights.detach().double().requires_grad_(True)
    rows = [torch.zeros(24, dtype=torch.float64) for _ in range(13)]
    for a in range(len(tokens)):  # y_t = sum over t's pairs of g * expert(x_t)
        t, e = int(tokens[a]), int(indices[a])
        rows[t] = rows[t] + w64[a] * moe64.experts[e](x64[t])
    y64 = torch.stack(rows)
    (y64 * r.double()).sum().backward()
    torch.testing.assert_close(y.double(), y64, atol=ATOL, rtol=0)
    assert not y[4].any()  # a token without pairs gets zeros
    torch.testing.assert_close(x.grad.double(), x64.grad, atol=ATOL, rtol=0)
    torch.testing.assert_close(weights.grad.double(), w64.grad, atol=ATOL, rtol=0)
    for (name, p), p64 in zip(moe.experts.named_parameters(), moe64.experts.parameters()):
        if p64.grad is None:  # expert 7: no token, no gradient
            assert p.grad is None or not p.grad.any(), name
        else:
            torch.testing.assert_close(p.grad.double(), p64.grad, atol=ATOL, rtol=0, msg=name)


@pytest.mark.parametrize("seed", [36, 37])
def test_forward_sorted_runs_each_expert_once_on_its_own_tokens(seed):
    moe, x, tokens, weights, indices = dispatch_case(seed)
    seen = {e: [] for e in range(8)}
    hooks = [expert.w1.register_forward_hook(lambda mod, inp, out, e=e: seen[e].append(inp[0].detach().clone()))
             for e, expert in enumerate(moe.experts)]
    try:
        with torch.no_grad():
            moe._forward_sorted(x, tokens, weights, indices)
    finally:
        for h in hooks:
            h.remove()
    assert any(seen.values()), "no expert ran: run the Expert modules, expert(x_e), so their tokens can be seen"
    for e in range(8):
        mine = tokens[indices == e]  # this expert's tokens
        calls = [rows.reshape(-1, 24) for rows in seen[e] if rows.numel()]
        if not len(mine):
            assert not calls, f"expert {e} has no pair but ran on {calls[0].shape[0]} rows"
            continue
        assert len(calls) == 1, f"expert {e} ran {len(calls)} times; run it once, on all of its tokens together"
        assert calls[0].shape[0] == len(mine), (f"expert {e} ran on {calls[0].shape[0]} rows but has {len(mine)} "
                                                f"pairs: give each expert its own tokens only")
        assert sorted(map(tuple, calls[0].tolist())) == sorted(map(tuple, x[mine].tolist())), \
            f"expert {e} ran on other tokens than its own"


def test_forward_sorted_runs_in_the_input_dtype():
    moe, x, tokens, weights, indices = dispatch_case(38)
    y64 = torch.zeros(13, 24, dtype=torch.float64)
    moe64 = copy.deepcopy(moe).double()
    with torch.no_grad():
        for a in range(len(tokens)):
            y64[tokens[a]] += weights[a].double() * moe64.experts[int(indices[a])](x[tokens[a]].double())
        y = moe.to(torch.bfloat16)._forward_sorted(x.to(torch.bfloat16), tokens, weights, indices)
    assert y.dtype == torch.bfloat16 and y.shape == (13, 24)
    torch.testing.assert_close(y.double(), y64, atol=0.05, rtol=0.05)


def hf_moe_with_weights_of(moe, hf_cfg):
    """transformers' DeepseekV2Moe for hf_cfg holding `moe`'s weights (its experts fused into 3-D tensors)."""
    from transformers.models.deepseek_v2.modeling_deepseek_v2 import DeepseekV2Moe

    hf_cfg._experts_implementation = "eager"  # the per-expert loop; grouped_mm wants 16-byte strides
    hf = DeepseekV2Moe(hf_cfg)
    with torch.no_grad():
        hf.gate.weight.copy_(moe.gate.weight)
        for e, expert in enumerate(moe.experts):  # fused: gate_up_proj (E, 2I, C), down_proj (E, C, I)
            hf.experts.gate_up_proj[e].copy_(torch.cat([expert.w1.weight, expert.w3.weight], dim=0))
            hf.experts.down_proj[e].copy_(expert.w2.weight)
        hf.shared_experts.gate_proj.weight.copy_(moe.shared_experts.w1.weight)
        hf.shared_experts.up_proj.weight.copy_(moe.shared_experts.w3.weight)
        hf.shared_experts.down_proj.weight.copy_(moe.shared_experts.w2.weight)
    return hf


# ---------------------------------------------------------------- end to end

@pytest.mark.parametrize("impl", ["naive", "sorted"])
@pytest.mark.parametrize("overrides", [
    dict(n_shared_experts=2, routed_scaling_factor=2.5),
    dict(n_shared_experts=1, n_routed_experts=12, n_activated_experts=2, topk_method="group_limited_greedy",
         n_group=3, topk_group=1),
], ids=case_id)
def test_moe_layer_equals_transformers(overrides, impl):
    pytest.importorskip("transformers.models.deepseek_v2.modeling_deepseek_v2")
    from transformers import DeepseekV2Config

    cfg = moe_config(moe_impl=impl, **overrides)
    moe = make_moe(cfg, seed=39)
    group = dict(n_group=cfg.n_group, topk_group=cfg.topk_group) if cfg.topk_method != "greedy" else {}
    hf_cfg = DeepseekV2Config(
        hidden_size=24, n_routed_experts=cfg.n_routed_experts, num_experts_per_tok=cfg.n_activated_experts,
        moe_intermediate_size=10, n_shared_experts=cfg.n_shared_experts, topk_method=cfg.topk_method,
        routed_scaling_factor=cfg.routed_scaling_factor, num_attention_heads=2, num_key_value_heads=2, **group)
    hf = hf_moe_with_weights_of(moe, hf_cfg)
    x = torch.randn(2, 7, 24, generator=gen(40))
    with torch.no_grad():
        torch.testing.assert_close(moe(x)[0], hf(x), atol=ATOL, rtol=0)


@pytest.mark.parametrize("impl", ["naive", "sorted"])
@pytest.mark.parametrize("overrides", [
    dict(norm_topk_prob=True, n_shared_experts=2, n_devices=4, m_devices=2),
    dict(scoring_func="sigmoid", norm_topk_prob=True, routed_scaling_factor=2.5, topk_method="group_limited_greedy",
         n_group=4, topk_group=2, n_shared_experts=1),
], ids=case_id)
def test_moe_layer_in_training_drops_and_balances_as_the_paper_says(overrides, impl):
    """MoE.forward in training with capacity_factor 0.5 and the three alphas: its output, expert counts,
    drops and losses against the transcriptions, token by token in float64."""
    cfg = moe_config(moe_impl=impl, n_activated_experts=2, capacity_factor=0.5, balance_alpha1=0.003,
                     balance_alpha2=0.05, balance_alpha3=0.02, **overrides)
    moe = make_moe(cfg, seed=41).train()
    x = torch.randn(2, 7, 24, generator=gen(42))
    y, stats = moe(x)
    x_flat = x.view(14, 24)
    ref_w, ref_i = reference_route(x_flat, moe.gate.weight.detach(), cfg)
    logits = x_flat.double() @ moe.gate.weight.detach().double().T
    s = logits.softmax(-1) if cfg.scoring_func == "softmax" else logits.sigmoid()
    capacity = math.ceil(0.5 * 14 * 2 / 8)  # 2 pairs per expert
    keep = reference_keep(ref_i, s.gather(1, ref_i), capacity)
    moe64 = copy.deepcopy(moe).double()
    y64 = moe64.shared_experts(x_flat.double()).detach()
    with torch.no_grad():
        for n, k in keep.nonzero().tolist():
            y64[n] += ref_w[n, k] * moe64.experts[int(ref_i[n, k])](x_flat[n].double())
    torch.testing.assert_close(y.view(14, 24).double(), y64, atol=ATOL, rtol=0)
    assert stats.dropped == int((~keep).sum()) > 0
    assert torch.equal(stats.expert_counts, torch.bincount(ref_i[keep], minlength=8).float())
    losses = reference_losses(s, ref_i, cfg, 2, 7)  # on every choice, dropped or not
    got = [stats.expert_loss.item(), stats.device_loss.item(), stats.comm_loss.item()]
    assert got == pytest.approx(losses, abs=1e-6)
    assert stats.balance_loss.item() == pytest.approx(0.003 * losses[0] + 0.05 * losses[1] + 0.02 * losses[2],
                                                      abs=1e-6)


@pytest.mark.parametrize("moe_impl", ["naive", "sorted"])
def test_v2_model_equals_transformers(moe_impl, tmp_path):
    """A 3-layer DeepSeek-V2 with random weights (a dense block, then two DeepSeekMoE blocks with group-limited
    routing, 2 shared experts and routed_scaling_factor 2.5), read by `from_hf`: logits within 1e-4 of
    transformers'."""
    transformers = pytest.importorskip("transformers")
    from minicoder.hf import from_hf

    hf_cfg = transformers.DeepseekV2Config(
        vocab_size=53, hidden_size=40, intermediate_size=44, num_hidden_layers=3, num_attention_heads=5,
        q_lora_rank=None, kv_lora_rank=20, qk_nope_head_dim=10, qk_rope_head_dim=6, v_head_dim=14,
        n_routed_experts=8, n_shared_experts=2, num_experts_per_tok=3, moe_intermediate_size=18,
        first_k_dense_replace=1, max_position_embeddings=64, rope_theta=10000.0, rms_norm_eps=1e-6,
        topk_method="group_limited_greedy", n_group=4, topk_group=2, routed_scaling_factor=2.5,
    )
    hf_cfg._experts_implementation = "eager"  # the per-expert loop; grouped_mm wants 16-byte strides
    torch.manual_seed(43)
    hf = transformers.DeepseekV2ForCausalLM(hf_cfg).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0.0, 0.15)
    hf.save_pretrained(tmp_path)
    ours = from_hf(tmp_path, attn_impl="naive")
    for module in ours.modules():
        if isinstance(module, MoE):
            module.moe_impl = moe_impl
    idx = torch.randint(0, 53, (2, 19), generator=gen(44))
    with torch.no_grad():
        logits, stats = ours(idx, return_router_stats=True)
        torch.testing.assert_close(logits, hf(idx).logits, atol=HF_ATOL, rtol=0)
    assert len(stats) == 2 and all(s.expert_counts.sum() == 2 * 19 * 3 for s in stats)
