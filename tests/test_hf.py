"""HF `transformers` as the oracle: LlamaForCausalLM checkpoints load into our Transformer and back.

Run: .venv/bin/pytest tests/test_hf.py -q
"""

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

from minicoder.config import ModelConfig  # noqa: E402
from minicoder.hf import config_from_hf, from_hf, name_map, to_hf  # noqa: E402
from minicoder.model import Transformer  # noqa: E402

ATOL = 1e-5  # float32 logits, same weights, different code


def random_llama(n_kv_heads: int, tie: bool = False, seed: int = 0):
    """A small random LlamaForCausalLM with odd sizes, linear RoPE scaling and random RMSNorm weights."""
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(
        vocab_size=301, hidden_size=72, intermediate_size=100, num_hidden_layers=2, num_attention_heads=6,
        num_key_value_heads=n_kv_heads, max_position_embeddings=64, rope_theta=100000.0,
        rope_scaling={"type": "linear", "factor": 4.0}, rms_norm_eps=1e-6, tie_word_embeddings=tie,
    )
    model = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    return model


def random_ids(T: int = 37, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 301, (2, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("attn_impl", ["naive", "sdpa"])
@pytest.mark.parametrize("n_kv_heads", [6, 2])  # plain multi-head, and GQA with 3 query heads per KV head
def test_from_hf_matches_transformers(tmp_path, attn_impl, n_kv_heads):
    hf = random_llama(n_kv_heads)
    hf.save_pretrained(tmp_path)
    ours = from_hf(tmp_path, attn_impl=attn_impl)
    assert ours.config.n_kv_heads == n_kv_heads and ours.config.rope_scaling_factor == 4.0
    idx = random_ids()
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), hf(idx).logits, atol=ATOL, rtol=0)


@pytest.mark.parametrize("attn_impl", ["naive", "sdpa"])
@pytest.mark.parametrize("tie", [False, True])
def test_to_hf_loads_in_transformers(tmp_path, attn_impl, tie):
    cfg = ModelConfig(vocab_size=301, n_layers=2, d_model=72, n_heads=6, n_kv_heads=2, d_ff=100, max_seq_len=64,
                      rope_theta=100000.0, rope_scaling_type="linear", rope_scaling_factor=4.0,
                      tie_embeddings=tie, attn_impl=attn_impl)
    torch.manual_seed(2)
    ours = Transformer(cfg).eval()
    with torch.no_grad():
        for name, p in ours.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    to_hf(ours, tmp_path / "export")
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["config.json", "model.safetensors"]
    hf = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "export").eval()
    assert hf.config.tie_word_embeddings == tie
    idx = random_ids()
    with torch.no_grad():
        torch.testing.assert_close(hf(idx).logits, ours(idx), atol=ATOL, rtol=0)
    back = from_hf(tmp_path / "export", attn_impl=attn_impl)  # and the round trip is exact
    assert back.config == cfg
    for name, tensor in ours.state_dict().items():
        assert torch.equal(back.state_dict()[name], tensor), name
    assert (back.head.weight is back.embed.weight) == tie


def test_sharded_safetensors_and_pytorch_bin(tmp_path):
    hf = random_llama(2, seed=3)
    hf.save_pretrained(tmp_path / "sharded", max_shard_size="100KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    # The pre-safetensors format, as transformers 4.x wrote it (with the old per-layer inv_freq buffers).
    (tmp_path / "bin").mkdir()
    state = dict(hf.state_dict())
    state["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(6)
    torch.save(state, tmp_path / "bin" / "pytorch_model.bin")
    (tmp_path / "bin" / "config.json").write_text((tmp_path / "sharded" / "config.json").read_text())
    idx = random_ids(T=19)
    with torch.no_grad():
        expected = hf(idx).logits
        for sub in ("sharded", "bin"):
            torch.testing.assert_close(from_hf(tmp_path / sub)(idx), expected, atol=ATOL, rtol=0)


def test_bfloat16_checkpoints_keep_their_dtype_unless_asked(tmp_path):
    hf = random_llama(2, seed=4).to(torch.bfloat16)
    hf.save_pretrained(tmp_path)
    ours = from_hf(tmp_path)
    assert ours.embed.weight.dtype == torch.bfloat16
    assert torch.equal(ours.layers[1].ffn.w3.weight, hf.model.layers[1].mlp.up_proj.weight)
    as_fp32 = from_hf(tmp_path, dtype=torch.float32)
    assert torch.equal(as_fp32.head.weight, hf.lm_head.weight.float())
    to_hf(ours, tmp_path / "export")
    assert json.loads((tmp_path / "export" / "config.json").read_text())["torch_dtype"] == "bfloat16"


def test_deepseek_coder_config_json_maps_to_the_preset():
    # deepseek-ai/deepseek-coder-1.3b-base config.json as published (transformers 4.33 layout).
    published = {
        "architectures": ["LlamaForCausalLM"], "bos_token_id": 32013, "eos_token_id": 32014,
        "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 5504,
        "max_position_embeddings": 16384, "model_type": "llama", "num_attention_heads": 16,
        "num_hidden_layers": 24, "num_key_value_heads": 16, "pretraining_tp": 1, "rms_norm_eps": 1e-06,
        "rope_scaling": {"factor": 4.0, "type": "linear"}, "rope_theta": 100000, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16", "transformers_version": "4.33.1", "use_cache": True, "vocab_size": 32256,
    }
    assert config_from_hf(published) == ModelConfig.from_preset("deepseek-coder-1.3b")


def test_name_map_is_complete():
    cfg = ModelConfig.from_preset("tiny")
    names = name_map(cfg)
    with torch.device("meta"):
        assert set(names) == set(Transformer(cfg).state_dict())
    assert names["layers.3.ffn.w1.weight"] == "model.layers.3.mlp.gate_proj.weight"


def test_bad_directories_give_one_line_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist or is not a directory"):
        from_hf(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="has no config.json; is it a Hugging Face model directory"):
        from_hf(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 64}))
    with pytest.raises(ValueError) as e:
        from_hf(tmp_path)
    assert str(e.value) == ("config.json has model_type 'gpt2', but minicoder reads only LlamaForCausalLM "
                            "(model_type 'llama', DeepSeek-Coder v1) and DeepseekV2ForCausalLM ('deepseek_v2', "
                            "DeepSeek-Coder-V2) checkpoints")
    hf = random_llama(2)
    hf.save_pretrained(tmp_path / "llama")
    cfg = json.loads((tmp_path / "llama" / "config.json").read_text())
    (tmp_path / "llama" / "config.json").write_text(json.dumps({**cfg, "num_hidden_layers": 3}))
    with pytest.raises(ValueError, match=r"lacks 9 tensor\(s\) .* e.g. model.layers.2"):
        from_hf(tmp_path / "llama")
    (tmp_path / "llama" / "config.json").write_text(json.dumps({**cfg, "num_hidden_layers": 1}))
    with pytest.raises(ValueError, match=r"has 9 tensor\(s\) that a LlamaForCausalLM with this config.json"):
        from_hf(tmp_path / "llama")
    (tmp_path / "llama" / "config.json").write_text(json.dumps({**cfg, "intermediate_size": 99}))
    with pytest.raises(ValueError, match=r"has shape \(100, 72\) but config.json implies \(99, 72\)"):
        from_hf(tmp_path / "llama")
    (tmp_path / "llama" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="has no model.safetensors"):
        from_hf(tmp_path / "llama")
    with pytest.raises(ValueError, match="RoPE scaling 'yarn'"):
        config_from_hf({**cfg, "rope_parameters": {"rope_type": "yarn", "factor": 4.0}})
