"""DeepSeekMoE (minicoder/moe.py): both dispatch paths, the routing, the balance losses, token
dropping and the auxiliary-loss-free bias, against direct transcriptions and HF `transformers`.

Run: .venv/bin/pytest tests/test_moe.py -q
"""

import math

import pytest
import torch
from test_moe_graded import (  # written once
    hf_moe_with_weights_of,
    reference_keep,
    reference_losses,
    reference_route,
)

from minicoder.config import ModelConfig
from minicoder.moe import MoE, balance_losses, capacity_mask

ATOL = 1e-5  # float32 paths that differ only in the order of operations


def moe_config(**overrides) -> ModelConfig:
    # Odd sizes on purpose: d_model 24, 8 experts of width 10, top-3.
    base = dict(vocab_size=11, n_layers=1, d_model=24, n_heads=2, d_ff=8, max_seq_len=16,
                n_routed_experts=8, n_activated_experts=3, moe_d_ff=10)
    return ModelConfig(**{**base, **overrides})


def make_moe(config: ModelConfig, seed: int = 0, impl: str | None = None) -> MoE:
    """A MoE with a decisive random gate (std 0.5, so scores are far from ties)."""
    torch.manual_seed(seed)
    moe = MoE(config)
    torch.nn.init.normal_(moe.gate.weight, std=0.5)
    if impl is not None:
        moe.moe_impl = impl
    return moe


def make_pair(config: ModelConfig, seed: int = 0) -> tuple[MoE, MoE]:
    """The same weights under moe_impl "naive" and "sorted"."""
    naive = make_moe(ModelConfig.from_dict({**config.to_dict(), "moe_impl": "naive"}), seed)
    fast = MoE(ModelConfig.from_dict({**config.to_dict(), "moe_impl": "sorted"}))
    fast.load_state_dict(naive.state_dict())
    return naive, fast


def run_with_grads(moe: MoE, x: torch.Tensor, r: torch.Tensor):
    """Output, stats and the gradients of sum(y * r) + balance_loss w.r.t. x and every parameter."""
    x = x.clone().requires_grad_(True)
    y, stats = moe(x)
    ((y * r).sum() + stats.balance_loss).backward()
    grads = {name: p.grad for name, p in moe.named_parameters()}
    return y, stats, x.grad, grads


def assert_paths_equal(config: ModelConfig, seed: int = 0, tweak=None, x: torch.Tensor | None = None):
    naive, fast = make_pair(config, seed)
    if tweak is not None:
        tweak(naive)
        fast.load_state_dict(naive.state_dict())
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(2, 7, config.d_model, generator=g) if x is None else x
    r = torch.randn(2, 7, config.d_model, generator=g)
    y1, s1, gx1, grads1 = run_with_grads(naive, x, r)
    y2, s2, gx2, grads2 = run_with_grads(fast, x, r)
    torch.testing.assert_close(y2, y1, atol=ATOL, rtol=0)
    torch.testing.assert_close(gx2, gx1, atol=ATOL, rtol=0)
    for name in grads1:
        g1, g2 = grads1[name], grads2[name]
        if g2 is None:  # an expert that received no token gets no gradient in the sorted path
            assert not g1.abs().any(), name
        else:
            torch.testing.assert_close(g2, g1, atol=ATOL, rtol=0, msg=name)
    assert torch.equal(s1.expert_counts, s2.expert_counts) and s1.dropped == s2.dropped
    return naive, s1


# ---------------------------------------------------------------- 1. sorted == naive

@pytest.mark.parametrize("overrides", [
    dict(),
    dict(norm_topk_prob=True, n_shared_experts=2),
    dict(routed_scaling_factor=2.5, n_shared_experts=2, topk_method="group_limited_greedy", n_group=4, topk_group=2),
    dict(norm_topk_prob=True, topk_method="group_limited_greedy", n_group=4, topk_group=2),
    dict(n_activated_experts=1, norm_topk_prob=True, routed_scaling_factor=2.0),  # K = 1: scaled, not normalised
    dict(scoring_func="sigmoid", norm_topk_prob=True, routed_scaling_factor=2.5, n_shared_experts=2),
    dict(scoring_func="sigmoid", routed_scaling_factor=1.5, topk_method="group_limited_greedy", n_group=4,
         topk_group=2),
    dict(balance_alpha1=0.01, balance_alpha2=0.05, balance_alpha3=0.02, n_devices=4, n_shared_experts=1),
], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_sorted_equals_naive(overrides):
    assert_paths_equal(moe_config(**overrides))


@pytest.mark.parametrize("method", ["greedy", "group_limited_greedy"])
def test_sorted_equals_naive_with_tied_scores(method):
    def duplicate_rows(moe):  # experts 0 and 1 (and 5 and 6) get identical scores for every token
        moe.gate.weight.data[1] = moe.gate.weight.data[0]
        moe.gate.weight.data[6] = moe.gate.weight.data[5]
    naive, _ = assert_paths_equal(moe_config(topk_method=method, n_group=4, topk_group=2, n_shared_experts=2),
                                  tweak=duplicate_rows)
    _, _, scores = naive.gate(torch.randn(5, 24))
    assert torch.equal(scores[:, 0], scores[:, 1])


def test_sorted_equals_naive_when_experts_get_no_token():
    def starve_first_half(moe):  # x > 0: experts 0-3 have negative logits, 4-7 positive
        w = moe.gate.weight.data.abs()
        w[:4] *= -1
        moe.gate.weight.data = w
    x = torch.randn(2, 7, 24, generator=torch.Generator().manual_seed(5)).abs()
    _, stats = assert_paths_equal(moe_config(n_activated_experts=2), tweak=starve_first_half, x=x)
    assert stats.expert_counts[:4].sum() == 0 and stats.expert_counts[4:].sum() == 2 * 7 * 2


@pytest.mark.parametrize("impl", ["naive", "sorted"])
def test_runs_in_the_input_dtype(impl):
    moe = make_moe(moe_config(n_shared_experts=1), impl=impl).to(torch.bfloat16)
    x = torch.randn(2, 7, 24).to(torch.bfloat16)
    y, _ = moe(x)
    assert y.dtype == torch.bfloat16
    reference = make_moe(moe_config(n_shared_experts=1), impl=impl)
    reference.load_state_dict({k: v.float() for k, v in moe.state_dict().items()})
    torch.testing.assert_close(y.float(), reference(x.float())[0], atol=0.05, rtol=0.05)


# ---------------------------------------------------------------- 2. routing: DeepSeek's V2 code, transformers

ROUTING_CASES = [
    dict(),
    dict(norm_topk_prob=True, n_shared_experts=2),
    dict(routed_scaling_factor=2.5, topk_method="group_limited_greedy", n_group=4, topk_group=2, n_shared_experts=1),
    dict(norm_topk_prob=True, topk_method="group_limited_greedy", n_group=2, topk_group=1),
    dict(n_activated_experts=1, norm_topk_prob=True, routed_scaling_factor=3.0),
    dict(scoring_func="sigmoid", norm_topk_prob=True, routed_scaling_factor=2.5),
    dict(scoring_func="sigmoid", topk_method="group_limited_greedy", n_group=4, topk_group=3, n_shared_experts=2),
]


@pytest.mark.parametrize("overrides", ROUTING_CASES,
                         ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_routing_and_output_match_a_direct_transcription(overrides):
    cfg = moe_config(**overrides)
    moe = make_moe(cfg, seed=3)
    x = torch.randn(2, 7, 24, generator=torch.Generator().manual_seed(4))
    weights, indices, _ = moe.gate(x.view(-1, 24))
    ref_w, ref_i = reference_route(x.view(-1, 24), moe.gate.weight.detach(), cfg)
    assert torch.equal(indices, ref_i)
    torch.testing.assert_close(weights.double(), ref_w, atol=ATOL, rtol=0)

    # The whole layer, token by token: shared(x_t) + sum_k w_k expert_{i_k}(x_t), in float64.
    moe64 = make_moe(cfg, seed=3).double()
    y_ref = torch.zeros(14, 24, dtype=torch.float64)
    for t, xt in enumerate(x.view(-1, 24).double()):
        if moe64.shared_experts is not None:
            y_ref[t] += moe64.shared_experts(xt)
        for w, i in zip(ref_w[t], ref_i[t]):
            y_ref[t] += w * moe64.experts[int(i)](xt)
    for impl in ("naive", "sorted"):
        moe.moe_impl = impl
        torch.testing.assert_close(moe(x)[0].double().view(-1, 24), y_ref.detach(), atol=ATOL, rtol=0)


@pytest.mark.parametrize("overrides", [
    dict(n_shared_experts=2, routed_scaling_factor=2.5),
    dict(n_shared_experts=1, topk_method="group_limited_greedy", n_group=4, topk_group=2, routed_scaling_factor=16.0),
    dict(n_shared_experts=1, n_routed_experts=12, n_activated_experts=2, topk_method="group_limited_greedy",
         n_group=3, topk_group=1),
])
@pytest.mark.parametrize("impl", ["naive", "sorted"])
def test_matches_transformers_deepseek_v2_moe(overrides, impl):
    pytest.importorskip("transformers.models.deepseek_v2.modeling_deepseek_v2")
    from transformers import DeepseekV2Config

    cfg = moe_config(**overrides)  # softmax, norm_topk_prob False: what transformers implements
    moe = make_moe(cfg, seed=7, impl=impl)
    hf_cfg = DeepseekV2Config(
        hidden_size=cfg.d_model, n_routed_experts=cfg.n_routed_experts, num_experts_per_tok=cfg.n_activated_experts,
        moe_intermediate_size=cfg.moe_d_ff, n_shared_experts=cfg.n_shared_experts, topk_method=cfg.topk_method,
        n_group=cfg.n_group, topk_group=cfg.topk_group, routed_scaling_factor=cfg.routed_scaling_factor,
        num_attention_heads=cfg.n_heads, num_key_value_heads=cfg.n_heads,  # unused; must divide hidden_size
    )
    hf = hf_moe_with_weights_of(moe, hf_cfg)
    x = torch.randn(2, 7, cfg.d_model, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        torch.testing.assert_close(moe(x)[0], hf(x), atol=ATOL, rtol=0)


# ---------------------------------------------------------------- 3. balance losses

@pytest.mark.parametrize("overrides", [
    dict(n_routed_experts=12, n_devices=4, m_devices=2),
    dict(n_routed_experts=12, n_activated_experts=2, topk_method="group_limited_greedy", n_group=6, topk_group=2),
    dict(scoring_func="sigmoid", n_devices=2),
])
def test_balance_losses_match_the_equations(overrides):
    cfg = moe_config(**overrides)
    g = torch.Generator().manual_seed(11)
    B, T, E, K = 2, 7, cfg.n_routed_experts, cfg.n_activated_experts
    logits = torch.randn(B * T, E, generator=g)
    scores = logits.softmax(-1) if cfg.scoring_func == "softmax" else logits.sigmoid()
    indices = torch.stack([torch.randperm(E, generator=g)[:K] for _ in range(B * T)])  # random routing
    got = [loss.item() for loss in balance_losses(scores, indices, cfg, B, T)]
    assert got == pytest.approx(reference_losses(scores, indices, cfg, B, T), abs=1e-6)


def test_balance_loss_is_weighted_and_reaches_the_gate():
    cfg = moe_config(balance_alpha1=0.003, balance_alpha2=0.05, balance_alpha3=0.02, n_devices=4, m_devices=3,
                     topk_method="group_limited_greedy", n_group=4, topk_group=3)
    moe = make_moe(cfg).train()
    x = torch.randn(2, 7, 24, generator=torch.Generator().manual_seed(12))
    _, stats = moe(x)
    _, indices, scores = moe.gate(x.view(-1, 24))
    expected = reference_losses(scores.detach(), indices, cfg, 2, 7)
    got = [stats.expert_loss.item(), stats.device_loss.item(), stats.comm_loss.item()]
    assert got == pytest.approx(expected, abs=1e-6)
    assert stats.balance_loss.item() == pytest.approx(0.003 * got[0] + 0.05 * got[1] + 0.02 * got[2], abs=1e-7)
    stats.balance_loss.backward()
    assert moe.gate.weight.grad is not None and moe.gate.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in moe.experts.parameters())  # the loss reaches the gate only
    assert moe(x)[1].balance_loss.dim() == 0


def test_balance_loss_is_zero_without_alphas():
    _, stats = make_moe(moe_config())(torch.randn(2, 7, 24))
    assert stats.balance_loss.item() == 0.0 and stats.expert_loss.item() > 0


def test_perfectly_balanced_routing_gives_one():
    cfg = moe_config(n_routed_experts=8, n_activated_experts=2, n_devices=4, m_devices=1)
    B, T = 2, 4
    scores = torch.full((B * T, 8), 1 / 8)
    indices = torch.tensor([[2 * t, 2 * t + 1] for t in range(T)] * B)  # each expert once per sequence
    expert_loss, device_loss, comm_loss = balance_losses(scores, indices, cfg, B, T)
    assert (expert_loss.item(), device_loss.item(), comm_loss.item()) == pytest.approx((1.0, 1.0, 1.0))
    # Every token on experts 0 and 1, which also hold all the affinity: f = 4 there, P = 1/2.
    skewed = torch.zeros(B * T, 8)
    skewed[:, :2] = 0.5
    collapsed = balance_losses(skewed, torch.tensor([[0, 1]] * (B * T)), cfg, B, T)[0]
    assert collapsed.item() == pytest.approx(4.0)


# ---------------------------------------------------------------- 4. capacity (token dropping)

def test_capacity_mask_keeps_the_highest_priority_pairs():
    g = torch.Generator().manual_seed(13)
    indices = torch.stack([torch.randperm(8, generator=g)[:3] for _ in range(20)])
    priority = torch.randint(0, 4, (20, 3), generator=g).float()  # many ties
    for capacity in (1, 3, 5, 100):
        assert torch.equal(capacity_mask(indices, priority, capacity, 8), reference_keep(indices, priority, capacity))


@pytest.mark.parametrize("impl", ["naive", "sorted"])
@pytest.mark.parametrize("overrides", [dict(), dict(norm_topk_prob=True, n_shared_experts=2)])
def test_capacity_drops_the_lowest_affinity_pairs_in_training_only(impl, overrides):
    cfg = moe_config(n_activated_experts=2, capacity_factor=0.5, **overrides)
    moe = make_moe(cfg, seed=14, impl=impl).train()
    x = torch.randn(2, 7, 24, generator=torch.Generator().manual_seed(15))
    capacity = math.ceil(0.5 * 14 * 2 / 8)  # 2 pairs per expert
    y, stats = moe(x)
    assert stats.expert_counts.max() <= capacity and stats.dropped > 0
    assert stats.expert_counts.sum() + stats.dropped == 14 * 2

    weights, indices, scores = moe.gate(x.view(-1, 24))
    keep = reference_keep(indices, scores.gather(1, indices), capacity)
    assert stats.dropped == int((~keep).sum())
    assert torch.equal(stats.expert_counts, torch.bincount(indices[keep], minlength=8).float())
    if not cfg.norm_topk_prob:  # gates are affinities times a constant: the kept pairs are the highest-weight ones
        assert torch.equal(keep, reference_keep(indices, weights, capacity))
    y_ref = torch.zeros(14, 24)
    x_flat = x.view(-1, 24)
    for n, k in keep.nonzero().tolist():
        y_ref[n] += weights[n, k] * moe.experts[int(indices[n, k])](x_flat[n])
    if moe.shared_experts is not None:
        y_ref += moe.shared_experts(x_flat)  # the shared experts still see every token
    torch.testing.assert_close(y.view(-1, 24), y_ref, atol=ATOL, rtol=0)

    moe.eval()
    _, stats = moe(x)
    assert stats.dropped == 0 and stats.expert_counts.sum() == 14 * 2


def test_capacity_paths_agree_with_gradients():
    assert_paths_equal(moe_config(capacity_factor=0.7, n_shared_experts=1, balance_alpha1=0.01))


# ---------------------------------------------------------------- 5. auxiliary-loss-free bias (DeepSeek-V3)

@pytest.mark.parametrize("overrides", [
    dict(),
    dict(scoring_func="sigmoid", norm_topk_prob=True, routed_scaling_factor=2.5, topk_method="group_limited_greedy",
         n_group=4, topk_group=2),
])
def test_bias_steers_selection_but_not_the_weights(overrides):
    cfg = moe_config(bias_update_speed=0.01, **overrides)
    moe = make_moe(cfg, seed=16)
    x = torch.randn(14, 24, generator=torch.Generator().manual_seed(17))
    _, plain_indices, _ = moe.gate(x)
    assert not (plain_indices == 5).any(dim=1).all()
    moe.gate.expert_bias[5] = 10.0  # expert 5 now wins every token
    weights, indices, scores = moe.gate(x)
    assert (indices == 5).any(dim=1).all()
    chosen = scores.gather(1, indices)  # the unbiased affinities of the chosen experts
    if cfg.norm_topk_prob:
        chosen = chosen / chosen.sum(-1, keepdim=True)
    torch.testing.assert_close(weights, chosen * cfg.routed_scaling_factor, atol=1e-6, rtol=0)
    assert (weights < 5).all()  # no trace of the +10


def test_update_bias_moves_toward_underloaded_experts():
    moe = make_moe(moe_config(n_routed_experts=4, bias_update_speed=0.25))
    assert "gate.expert_bias" in moe.state_dict()  # saved with the model
    moe.update_bias(torch.tensor([9.0, 1.0, 5.0, 5.0]))  # mean 5
    assert moe.gate.expert_bias.tolist() == [-0.25, 0.25, 0.0, 0.0]
    moe.update_bias(torch.tensor([9.0, 1.0, 6.0, 4.0]))
    assert moe.gate.expert_bias.tolist() == [-0.5, 0.5, -0.25, 0.25]
    assert moe.gate.expert_bias.dtype == torch.float32 and not moe.gate.expert_bias.requires_grad

    # Repeated updates balance a skewed gate: the loads of the last steps are closer to even.
    moe = make_moe(moe_config(n_activated_experts=2, bias_update_speed=0.02), seed=18)
    x = torch.randn(4, 16, 24, generator=torch.Generator().manual_seed(19)) + 1.0  # a shared direction skews routing
    with torch.no_grad():
        first = moe(x)[1].expert_counts
        for _ in range(50):
            moe.update_bias(moe(x)[1].expert_counts)
        last = moe(x)[1].expert_counts
    assert last.max() - last.min() < first.max() - first.min()


def test_update_bias_is_a_no_op_when_off():
    moe = make_moe(moe_config())
    assert moe.gate.expert_bias is None and "gate.expert_bias" not in moe.state_dict()
    moe.update_bias(torch.ones(8))  # no error, nothing to change
    assert moe.gate.expert_bias is None


# ---------------------------------------------------------------- 6. expert counts

@pytest.mark.parametrize("impl", ["naive", "sorted"])
def test_expert_counts_sum_to_tokens_times_k(impl):
    cfg = moe_config(topk_method="group_limited_greedy", n_group=4, topk_group=2)
    moe = make_moe(cfg, impl=impl).train()
    x = torch.randn(2, 7, 24)
    _, stats = moe(x)
    _, indices, _ = moe.gate(x.view(-1, 24))
    assert stats.expert_counts.shape == (8,) and stats.expert_counts.dtype == torch.float32
    assert stats.expert_counts.sum().item() == 2 * 7 * 3 and stats.dropped == 0
    assert torch.equal(stats.expert_counts, torch.bincount(indices.flatten(), minlength=8).float())
