"""HF `transformers`' DeepseekV2ForCausalLM as the oracle for minicoder's V2 model (MLA + DeepSeekMoE + YaRN).

Run: .venv/bin/pytest tests/test_hf_v2.py -q

Every weight is random (RMSNorm gains included), sizes are odd, and sequences run past YaRN's
original context. transformers' port ignores `norm_topk_prob` and has no balance loss, so those
are tested against direct transcriptions in tests/test_moe.py instead. The installed version is
checked: its YaRN softmax-scale correction (`yarn_apply_mscale`) is what makes MLA+YaRN comparable.
"""

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")
from transformers import DeepseekV2Config, DeepseekV2ForCausalLM  # noqa: E402

from minicoder.config import ModelConfig  # noqa: E402
from minicoder.generate import generate_ids  # noqa: E402
from minicoder.hf import config_from_hf, from_hf, name_map, to_hf  # noqa: E402
from minicoder.model import Transformer  # noqa: E402

ATOL = 1e-4  # float32 logits, same weights, different code (the bound)
VOCAB = 97


def test_transformers_has_the_yarn_softmax_scale_fix():
    from transformers import modeling_rope_utils
    assert hasattr(modeling_rope_utils, "yarn_apply_mscale"), (
        f"transformers {transformers.__version__} lacks yarn_apply_mscale (added mid-2026); its DeepseekV2 "
        f"would not scale MLA's softmax under YaRN, so it is not a valid oracle here")


def randomise(model):
    """Every weight random: RMSNorm gains uniform in [0.5, 1.5], the rest normal(0, 0.15)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0.0, 0.15)
    return model


def hf_config(q_lora: bool, routing: str, yarn: str | None, norm_topk: bool = False) -> DeepseekV2Config:
    rope = None
    if yarn is not None:
        mscale, mscale_all = {"deepseek": (0.707, 0.707), "unequal": (0.707, 1.0), "plain": (1.0, 0.0)}[yarn]
        rope = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16, "beta_fast": 32,
                "beta_slow": 1, "mscale": mscale, "mscale_all_dim": mscale_all}
    group = dict(topk_method="group_limited_greedy", n_group=4, topk_group=2, routed_scaling_factor=2.5) \
        if routing == "group" else dict(topk_method="greedy", n_group=None, topk_group=None)
    return DeepseekV2Config(
        vocab_size=VOCAB, hidden_size=40, intermediate_size=52, num_hidden_layers=3, num_attention_heads=5,
        q_lora_rank=24 if q_lora else None, kv_lora_rank=20, qk_nope_head_dim=10, qk_rope_head_dim=6,
        v_head_dim=14, n_routed_experts=8, n_shared_experts=2, num_experts_per_tok=3, moe_intermediate_size=18,
        first_k_dense_replace=1, max_position_embeddings=64, rope_theta=10000.0, rope_scaling=rope,
        norm_topk_prob=norm_topk, rms_norm_eps=1e-6, **group,
    )


def random_hf(config: DeepseekV2Config, seed: int = 0) -> DeepseekV2ForCausalLM:
    torch.manual_seed(seed)
    config._experts_implementation = "eager"  # the per-expert loop; grouped_mm needs 16-byte strides
    return randomise(DeepseekV2ForCausalLM(config).eval())


def random_ids(T: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, T), generator=torch.Generator().manual_seed(seed))


CASES = [  # (q_lora, routing, yarn)
    (False, "greedy", None),
    (True, "greedy", None),
    (False, "group", "deepseek"),
    (True, "group", "deepseek"),
    (True, "greedy", "unequal"),
    (False, "greedy", "plain"),
]


@pytest.mark.parametrize("mla_impl", ["naive", "absorb"])
@pytest.mark.parametrize("q_lora,routing,yarn", CASES)
def test_from_hf_matches_transformers(tmp_path, q_lora, routing, yarn, mla_impl):
    hf = random_hf(hf_config(q_lora, routing, yarn))
    hf.save_pretrained(tmp_path)  # per-expert keys, the released layout
    ours = from_hf(tmp_path, attn_impl="naive", mla_impl=mla_impl)
    assert ours.config.is_mla and ours.config.is_moe and ours.config.q_lora_rank == (24 if q_lora else None)
    idx = random_ids(41)  # 41 > 16 = the original context under YaRN
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), hf(idx).logits, atol=ATOL, rtol=0)


def fresh(config: ModelConfig, seed: int = 3) -> Transformer:
    torch.manual_seed(seed)
    return randomise(Transformer(config).eval())


def tiny_v2(**overrides) -> ModelConfig:
    base = dict(vocab_size=VOCAB, n_layers=3, d_model=40, n_heads=5, d_ff=52, max_seq_len=64,
                kv_lora_rank=20, q_lora_rank=24, qk_nope_head_dim=10, qk_rope_head_dim=6, v_head_dim=14,
                n_routed_experts=8, n_shared_experts=2, n_activated_experts=3, moe_d_ff=18, first_k_dense_replace=1,
                topk_method="group_limited_greedy", n_group=4, topk_group=2, routed_scaling_factor=2.5,
                rope_scaling_type="yarn", rope_scaling_factor=4.0, rope_original_max_seq_len=16,
                rope_mscale=0.707, rope_mscale_all_dim=0.707)
    return ModelConfig(**{**base, **overrides})


@pytest.mark.parametrize("mla_impl", ["naive", "absorb"])
def test_to_hf_reloads_in_transformers_and_back(tmp_path, mla_impl):
    ours = fresh(tiny_v2(mla_impl=mla_impl))
    to_hf(ours, tmp_path / "export")
    saved = json.loads((tmp_path / "export" / "config.json").read_text())
    assert saved["model_type"] == "deepseek_v2" and saved["rope_scaling"]["type"] == "yarn"
    hf = DeepseekV2ForCausalLM.from_pretrained(tmp_path / "export", experts_implementation="eager").eval()
    idx = random_ids(37, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(hf(idx).logits, ours(idx), atol=ATOL, rtol=0)
    again = from_hf(tmp_path / "export")
    for (name, a), b in zip(ours.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name


def test_naive_and_absorb_give_equal_logits_and_greedy_generations():
    naive = fresh(tiny_v2(mla_impl="naive"))
    absorb = Transformer(tiny_v2(mla_impl="absorb")).eval()
    absorb.load_state_dict(naive.state_dict())
    idx = random_ids(29, seed=7)
    with torch.no_grad():
        torch.testing.assert_close(absorb(idx), naive(idx), atol=1e-5, rtol=0)
    prompt = idx[0, :9].tolist()
    a, b = generate_ids(naive, prompt, max_new_tokens=30), generate_ids(absorb, prompt, max_new_tokens=30)
    assert a == b and len(a) == 30  # greedy, through each path's own cache, 39 > 16 positions


@pytest.mark.parametrize("tie", [False, True])
def test_with_mla_impl_shares_the_weights_and_computes_the_same(tie):
    naive = fresh(tiny_v2(mla_impl="naive", tie_embeddings=tie))
    absorb = naive.with_mla_impl("absorb")
    assert absorb.config.mla_impl == "absorb" and naive.with_mla_impl("naive") is naive
    assert all(a.data_ptr() == b.data_ptr() for a, b in zip(naive.parameters(), absorb.parameters()))
    assert (absorb.head.weight is absorb.embed.weight) == tie
    idx = random_ids(23, seed=9)
    with torch.no_grad():
        torch.testing.assert_close(absorb(idx), naive(idx), atol=1e-5, rtol=0)


def test_name_map_covers_every_parameter_both_query_layouts():
    for q_lora in (None, 24):
        cfg = tiny_v2(q_lora_rank=q_lora)
        with torch.device("meta"):
            model = Transformer(cfg)
        names = name_map(cfg)
        assert set(names) == set(model.state_dict())
        assert names["layers.2.ffn.experts.7.w2.weight"] == "model.layers.2.mlp.experts.7.down_proj.weight"
        assert names["layers.0.ffn.w1.weight"] == "model.layers.0.mlp.gate_proj.weight"  # the dense first block


def test_released_lite_config_json_maps_to_the_preset():
    # deepseek-ai/DeepSeek-Coder-V2-Lite-Base config.json as published (the fields minicoder reads).
    published = {
        "architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2", "aux_loss_alpha": 0.001,
        "bos_token_id": 100000, "eos_token_id": 100001, "first_k_dense_replace": 1, "hidden_act": "silu",
        "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 10944, "kv_lora_rank": 512,
        "max_position_embeddings": 163840, "moe_intermediate_size": 1408, "moe_layer_freq": 1, "n_group": 1,
        "n_routed_experts": 64, "n_shared_experts": 2, "norm_topk_prob": False, "num_attention_heads": 16,
        "num_experts_per_tok": 6, "num_hidden_layers": 27, "num_key_value_heads": 16, "q_lora_rank": None,
        "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "rms_norm_eps": 1e-06,
        "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 0.707, "mscale_all_dim": 0.707,
                         "original_max_position_embeddings": 4096, "type": "yarn"},
        "rope_theta": 10000, "routed_scaling_factor": 1.0, "scoring_func": "softmax", "seq_aux": True,
        "tie_word_embeddings": False, "topk_group": 1, "topk_method": "greedy", "torch_dtype": "bfloat16",
        "v_head_dim": 128, "vocab_size": 102400,
    }
    ours = config_from_hf(published)
    preset = ModelConfig.from_preset("deepseek-coder-v2-lite")
    ignore = {"attn_impl": None, "mla_impl": None, "init_std": None}
    assert {**ours.to_dict(), **ignore} == {**preset.to_dict(), **ignore}


def test_missing_expert_tensor_is_a_one_line_error(tmp_path):
    from safetensors.torch import load_file, save_file
    hf = random_hf(hf_config(False, "greedy", None))
    hf.save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    del tensors["model.layers.2.mlp.experts.5.up_proj.weight"]
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError) as e:
        from_hf(tmp_path)
    assert "lacks 1 tensor(s)" in str(e.value) and "experts.5.up_proj" in str(e.value) and "\n" not in str(e.value)
