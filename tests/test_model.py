"""The config presets, RoPE and the Transformer: parameter counts, both attention paths, the KV cache.

Run: .venv/bin/pytest tests/test_model.py -q

The HF `transformers` parity tests live in tests/test_hf.py.
"""

import math

import pytest
import torch

from minicoder.config import PRESETS, ModelConfig
from minicoder.model import KVCache, Transformer
from minicoder.rope import apply_rope, apply_rope_naive, rope_angles, rope_cos_sin, rope_frequencies

ATOL = 1e-5  # float32 paths that differ only in the order of operations


def small_config(**overrides) -> ModelConfig:
    # Odd sizes on purpose: head_dim 12, 6 heads over 3 KV heads, vocab 101.
    base = dict(vocab_size=101, n_layers=2, d_model=72, n_heads=6, n_kv_heads=3, d_ff=100, max_seq_len=64,
                rope_theta=100000.0, rope_scaling_type="linear", rope_scaling_factor=4.0)
    return ModelConfig(**{**base, **overrides})


def make_pair(config: ModelConfig, seed: int = 0) -> tuple[Transformer, Transformer]:
    """The same random weights under attn_impl naive and sdpa."""
    torch.manual_seed(seed)
    naive = Transformer(ModelConfig.from_dict({**config.to_dict(), "attn_impl": "naive"})).eval()
    for block in naive.layers:  # RMSNorm weights start at 1; randomise them so they matter
        block.attn_norm.weight.data.uniform_(0.5, 1.5)
        block.ffn_norm.weight.data.uniform_(0.5, 1.5)
    naive.norm.weight.data.uniform_(0.5, 1.5)
    sdpa = Transformer(ModelConfig.from_dict({**config.to_dict(), "attn_impl": "sdpa"})).eval()
    sdpa.load_state_dict(naive.state_dict())
    return naive, sdpa


# ---------------------------------------------------------------- config and parameter counts

@pytest.mark.parametrize("name, billions", [
    ("deepseek-coder-1.3b", 1.346), ("deepseek-coder-6.7b", 6.741), ("deepseek-coder-33b", 33.343),
])
def test_preset_parameter_counts(name, billions):
    cfg = ModelConfig.from_preset(name)
    assert round(cfg.num_params() / 1e9, 3) == billions
    # Cross-check the formula against the real module, built on the meta device (no memory).
    with torch.device("meta"):
        model = Transformer(cfg)
    assert model.num_params() == cfg.num_params()


def test_deepseek_presets_match_the_paper():
    for name in ("deepseek-coder-1.3b", "deepseek-coder-6.7b", "deepseek-coder-33b"):
        cfg = ModelConfig.from_preset(name)
        assert (cfg.vocab_size, cfg.max_seq_len, cfg.rope_theta) == (32256, 16384, 100000.0)
        assert (cfg.rope_scaling_type, cfg.rope_scaling_factor, cfg.norm_eps) == ("linear", 4.0, 1e-6)
        assert cfg.tie_embeddings is False and cfg.head_dim == 128
    assert ModelConfig.from_preset("deepseek-coder-33b").n_kv_heads == 8


@pytest.mark.parametrize("size", ["1.3b", "6.7b", "33b"])
def test_stage1_presets_follow_section_3_6(size):
    # Stage 1: 4K context, RoPE base 10,000, no scaling, DeepSeek LLM's init; otherwise the released shape.
    stage1 = ModelConfig.from_preset(f"deepseek-coder-{size}-stage1")
    released = ModelConfig.from_preset(f"deepseek-coder-{size}")
    assert (stage1.max_seq_len, stage1.rope_theta, stage1.rope_scaling_type, stage1.rope_scaling_factor) == \
        (4096, 10000.0, None, 1.0)
    assert (stage1.init_scheme, stage1.init_std) == ("deepseek", 0.006)
    shape = ("vocab_size", "n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff", "norm_eps", "tie_embeddings")
    assert all(getattr(stage1, f) == getattr(released, f) for f in shape)
    assert stage1.num_params() == released.num_params()
    assert ModelConfig.from_preset("deepseek-coder-1.3b").n_kv_heads == 16


@pytest.mark.parametrize("name, total, active", [
    # DeepSeek-V2 table/section 3.1: Lite 15.7B total, 2.4B activated; V2 236B and 21B. Active = everything a
    # token is multiplied by (attention, norms, dense MLPs, router, shared and its 6 routed experts, the head),
    # not the input embedding, which it only reads a row of (ModelConfig.num_active_params).
    ("deepseek-coder-v2-lite", 15.7, 2.4), ("deepseek-coder-v2", 236, 21),
])
def test_v2_presets_match_the_papers_parameter_counts(name, total, active):
    cfg = ModelConfig.from_preset(name)
    assert cfg.num_params() / 1e9 == pytest.approx(total, rel=0.01)
    assert cfg.num_active_params() / 1e9 == pytest.approx(active, rel=0.03)
    with torch.device("meta"):
        model = Transformer(cfg)
    assert model.num_params() == cfg.num_params()
    routed = [p for n, p in model.named_parameters() if ".experts." in n]
    per_token_routed = sum(p.numel() for p in routed) // cfg.n_routed_experts * cfg.n_activated_experts
    embed = cfg.vocab_size * cfg.d_model
    assert cfg.num_active_params() == cfg.num_params() - embed - sum(p.numel() for p in routed) + per_token_routed


def test_v2_presets_follow_the_released_configs():
    lite, v2 = ModelConfig.from_preset("deepseek-coder-v2-lite"), ModelConfig.from_preset("deepseek-coder-v2")
    for cfg in (lite, v2):
        assert (cfg.vocab_size, cfg.max_seq_len, cfg.kv_lora_rank, cfg.qk_nope_head_dim, cfg.qk_rope_head_dim,
                cfg.v_head_dim) == (102400, 163840, 512, 128, 64, 128)
        assert (cfg.rope_scaling_type, cfg.rope_scaling_factor, cfg.rope_original_max_seq_len, cfg.rope_beta_fast,
                cfg.rope_beta_slow, cfg.rope_mscale, cfg.rope_mscale_all_dim) == ("yarn", 40.0, 4096, 32.0, 1.0, 0.707, 0.707)
        assert (cfg.n_shared_experts, cfg.n_activated_experts, cfg.first_k_dense_replace) == (2, 6, 1)
    assert (lite.n_layers, lite.d_model, lite.n_heads, lite.q_lora_rank, lite.n_routed_experts, lite.moe_d_ff,
            lite.d_ff, lite.topk_method) == (27, 2048, 16, None, 64, 1408, 10944, "greedy")
    assert (v2.n_layers, v2.d_model, v2.n_heads, v2.q_lora_rank, v2.n_routed_experts, v2.moe_d_ff, v2.d_ff,
            v2.topk_method, v2.n_group, v2.topk_group, v2.routed_scaling_factor) == \
        (60, 5120, 128, 1536, 160, 1536, 12288, "group_limited_greedy", 8, 3, 16.0)


def tiny_v2(**overrides) -> ModelConfig:
    base = dict(vocab_size=101, n_layers=3, d_model=40, n_heads=5, d_ff=52, max_seq_len=64, kv_lora_rank=20,
                qk_nope_head_dim=10, qk_rope_head_dim=6, v_head_dim=14, n_routed_experts=8, n_shared_experts=2,
                n_activated_experts=3, moe_d_ff=18, first_k_dense_replace=1)
    return ModelConfig(**{**base, **overrides})


@pytest.mark.parametrize("overrides", [{}, {"q_lora_rank": 24}, {"n_shared_experts": 0}, {"first_k_dense_replace": 0},
                                       {"n_routed_experts": 0, "n_shared_experts": 0, "n_activated_experts": 0},
                                       {"tie_embeddings": True}])
def test_v2_analytic_count_matches_built_model(overrides):
    cfg = tiny_v2(**overrides)
    assert Transformer(cfg).num_params() == cfg.num_params()


@pytest.mark.parametrize("make, message", [
    (lambda: tiny_v2(n_activated_experts=9), "n_activated_experts=9 (top-k) is larger than n_routed_experts=8"),
    (lambda: tiny_v2(topk_method="group_limited_greedy", n_group=3, topk_group=1), "n_group=3 does not divide n_routed_experts=8"),
    (lambda: tiny_v2(topk_method="group_limited_greedy", n_group=4, topk_group=5), "topk_group=5 is larger than n_group=4"),
    (lambda: tiny_v2(topk_method="group_limited_greedy", n_group=4, topk_group=1), "hold fewer than n_activated_experts=3; raise topk_group"),
    (lambda: tiny_v2(qk_rope_head_dim=7), "qk_rope_head_dim=7 is odd, but RoPE rotates pairs"),
    (lambda: tiny_v2(rope_scaling_type="yarn", rope_scaling_factor=4.0), "needs rope_original_max_seq_len"),
    (lambda: tiny_v2(v_head_dim=None), "MLA (kv_lora_rank set) needs v_head_dim to be a positive integer"),
    (lambda: tiny_v2(mla_impl="flash"), "unknown mla_impl 'flash'; choose one of: naive, absorb"),
    (lambda: tiny_v2(moe_impl="loop"), "unknown moe_impl 'loop'; choose one of: naive, sorted"),
    (lambda: tiny_v2(topk_method="best"), "unknown topk_method 'best'"),
    (lambda: tiny_v2(n_devices=3), "n_devices=3 does not divide n_routed_experts=8"),
    (lambda: tiny_v2(kv_lora_rank=None, q_lora_rank=8), "q_lora_rank is set but kv_lora_rank is None"),
    (lambda: tiny_v2(capacity_factor=0.0), "capacity_factor must be positive"),
])
def test_bad_v2_configs_give_one_line_errors(make, message):
    with pytest.raises(ValueError) as e:
        make()
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("overrides", [{}, {"tie_embeddings": True}, {"n_kv_heads": 6}, {"n_kv_heads": 1}])
def test_analytic_count_matches_built_model(overrides):
    cfg = small_config(**overrides)
    assert Transformer(cfg).num_params() == cfg.num_params()


def test_tiny_preset_builds_and_vocab_is_overridable():
    cfg = ModelConfig.from_preset("tiny", vocab_size=4105)
    assert cfg.vocab_size == 4105 and cfg.n_kv_heads < cfg.n_heads
    assert Transformer(cfg).num_params() == cfg.num_params()
    assert set(PRESETS) >= {"tiny", "deepseek-coder-1.3b", "deepseek-coder-6.7b", "deepseek-coder-33b"}


def test_config_dict_round_trip_and_default_kv_heads():
    cfg = small_config(n_kv_heads=None)
    assert cfg.n_kv_heads == cfg.n_heads
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("make, message", [
    (lambda: ModelConfig.from_preset("gpt-5"),
     "unknown preset 'gpt-5'; choose one of: tiny, deepseek-coder-1.3b, deepseek-coder-6.7b, deepseek-coder-33b"),
    (lambda: small_config(n_heads=7, n_kv_heads=7),
     "n_heads=7 does not divide d_model=72; choose n_heads among the divisors of d_model or change d_model"),
    (lambda: small_config(n_kv_heads=4), "n_kv_heads=4 does not divide n_heads=6"),
    (lambda: small_config(n_heads=8, n_kv_heads=8), "head_dim = d_model // n_heads = 9 is odd"),
    (lambda: small_config(attn_impl="flash"), "unknown attn_impl 'flash'; choose one of: naive, sdpa"),
    (lambda: small_config(rope_scaling_type="yarn"), "rope_scaling_type='yarn' needs rope_original_max_seq_len"),
    (lambda: small_config(rope_scaling_type=None), "rope_scaling_factor=4.0 has no effect without a scaling type"),
    (lambda: small_config(n_layers=0), "n_layers must be a positive integer, got 0"),
    (lambda: small_config(d_ff=-5), "d_ff must be a positive integer, got -5"),
    (lambda: ModelConfig.from_dict({**small_config().to_dict(), "dim": 3}), "unknown ModelConfig field(s) ['dim']"),
])
def test_bad_configs_give_one_line_errors(make, message):
    with pytest.raises(ValueError) as e:
        make()
    assert message in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------- RoPE

def rope_reference(x: torch.Tensor, theta: float, factor: float) -> torch.Tensor:
    """float64, one explicit 2x2 rotation matrix per (position, pair), pairs (i, i + hd/2)."""
    B, H, T, D = x.shape
    out = torch.empty_like(x, dtype=torch.float64)
    for m in range(T):
        for i in range(D // 2):
            a = (m / factor) * theta ** (-2 * i / D)
            R = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)
            pair = torch.stack((x[..., m, i], x[..., m, i + D // 2]), dim=-1).double()  # (B, H, 2)
            turned = pair @ R.T  # (B, H, 2)
            out[..., m, i], out[..., m, i + D // 2] = turned[..., 0], turned[..., 1]
    return out


@pytest.mark.parametrize("scaling, factor", [(None, 1.0), ("linear", 4.0)])
def test_rope_fast_and_naive_match_2x2_rotations(scaling, factor):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 11, 8)
    cos, sin = rope_cos_sin(8, 11, 100.0, scaling, factor)
    ref = rope_reference(x, 100.0, factor).float()
    torch.testing.assert_close(apply_rope(x, cos, sin), ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(apply_rope_naive(x, cos, sin), ref, atol=1e-5, rtol=0)


def test_rope_scores_depend_only_on_relative_position():
    torch.manual_seed(1)
    q, k = torch.randn(16), torch.randn(16)
    cos, sin = rope_cos_sin(16, 40, 10000.0)

    def at(v, m):
        return apply_rope(v.view(1, 1, 1, 16), cos[m:m + 1], sin[m:m + 1]).flatten()

    assert torch.allclose(at(q, 5) @ at(k, 2), at(q, 35) @ at(k, 32), atol=1e-5)
    assert not torch.allclose(at(q, 5) @ at(k, 2), at(q, 5) @ at(k, 4), atol=1e-3)


def test_rope_linear_scaling_divides_positions():
    scaled = rope_angles(8, torch.arange(16), 100.0, "linear", 4.0)
    plain = rope_angles(8, torch.arange(16, dtype=torch.float64) / 4.0, 100.0)
    torch.testing.assert_close(scaled, plain.float(), atol=1e-6, rtol=0)
    torch.testing.assert_close(rope_frequencies(4, 100.0), torch.tensor([1.0, 0.1]))


# ---------------------------------------------------------------- the Transformer

@pytest.mark.parametrize("n_kv_heads", [6, 3, 1])
@pytest.mark.parametrize("T", [1, 13, 37])
def test_naive_equals_sdpa(n_kv_heads, T):
    naive, sdpa = make_pair(small_config(n_kv_heads=n_kv_heads))
    idx = torch.randint(0, 101, (3, T), generator=torch.Generator().manual_seed(T))
    with torch.no_grad():
        a, b = naive(idx), sdpa(idx)
    assert a.shape == (3, T, 101) and a.dtype == torch.float32
    torch.testing.assert_close(a, b, atol=ATOL, rtol=0)


@pytest.mark.parametrize("attn_impl", ["naive", "sdpa"])
def test_future_tokens_do_not_change_past_logits(attn_impl):
    model = make_pair(small_config(attn_impl=attn_impl))[attn_impl == "sdpa"]
    g = torch.Generator().manual_seed(3)
    idx = torch.randint(0, 101, (2, 29), generator=g)
    changed = idx.clone()
    changed[:, 17:] = torch.randint(0, 101, (2, 12), generator=g)
    with torch.no_grad():
        a, b = model(idx), model(changed)
    torch.testing.assert_close(a[:, :17], b[:, :17], atol=ATOL, rtol=0)
    assert (a[:, 17:] - b[:, 17:]).abs().max() > 1e-3  # the change is visible where it should be


@pytest.mark.parametrize("attn_impl", ["naive", "sdpa"])
def test_kv_cache_decoding_equals_full_recomputation(attn_impl):
    model = make_pair(small_config())[attn_impl == "sdpa"]
    idx = torch.randint(0, 101, (2, 31), generator=torch.Generator().manual_seed(4))
    cache = KVCache(model.config, batch_size=2, max_seq_len=40)
    with torch.no_grad():
        full = model(idx)  # (2, 31, V)
        pieces = [model(idx[:, :11], cache, 0)]  # prefill
        pieces.append(model(idx[:, 11:18], cache, 11))  # a chunk after a prefix: the explicit-mask branch
        pieces += [model(idx[:, t:t + 1], cache, t) for t in range(18, 31)]  # one token at a time
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=ATOL, rtol=0)


def test_tied_embeddings_share_one_matrix():
    model = Transformer(small_config(tie_embeddings=True))
    assert model.head.weight is model.embed.weight


def test_init_scales_residual_projections():
    cfg = ModelConfig(vocab_size=512, n_layers=8, d_model=256, n_heads=4, d_ff=512, max_seq_len=16)
    assert cfg.init_scheme == "gpt2" and ModelConfig.from_preset("tiny").init_scheme == "gpt2"
    torch.manual_seed(0)
    model = Transformer(cfg)
    assert abs(model.layers[0].attn.wq.weight.std().item() - 0.02) < 0.001
    scaled = 0.02 / math.sqrt(2 * 8)
    assert abs(model.layers[3].attn.wo.weight.std().item() - scaled) < 0.0005
    assert abs(model.layers[5].ffn.w2.weight.std().item() - scaled) < 0.0005
    assert torch.equal(model.norm.weight, torch.ones(256))


def test_deepseek_init_draws_every_matrix_with_one_std():
    # DeepSeek LLM section 2.3: std 0.006 everywhere, no depth scaling. 512 x 256 draws per matrix: the
    # sample std is within ~0.2% of 0.006 (1 / sqrt(2 * 131072) relative), so 2% is a wide margin.
    cfg = ModelConfig(vocab_size=512, n_layers=8, d_model=256, n_heads=4, d_ff=512, max_seq_len=16,
                      init_scheme="deepseek", init_std=0.006)
    torch.manual_seed(0)
    model = Transformer(cfg)
    for name, p in model.named_parameters():
        if p.dim() == 2:
            assert abs(p.std().item() - 0.006) < 0.006 * 0.02, name
            assert abs(p.mean().item()) < 0.006 * 0.02, name
        else:
            assert torch.equal(p, torch.ones_like(p)), name  # RMSNorm gains
    with pytest.raises(ValueError, match="unknown init_scheme 'xavier'; choose one of: gpt2, deepseek"):
        ModelConfig(**{**cfg.to_dict(), "init_scheme": "xavier"})


def test_input_longer_than_context_is_a_clear_error():
    model = Transformer(small_config())
    with pytest.raises(ValueError, match="positions up to 65 exceed the model's context 64"):
        model(torch.zeros(1, 65, dtype=torch.long))
    with pytest.raises(ValueError, match="start_pos > 0 needs the kv_cache"):
        model(torch.zeros(1, 3, dtype=torch.long), start_pos=2)
    with pytest.raises(ValueError, match=r"positions up to 12 do not fit the KV cache \(10\)"):
        model(torch.zeros(1, 3, dtype=torch.long), KVCache(model.config, 1, max_seq_len=10), start_pos=9)
