"""Multi-head Latent Attention: both paths, the paper's equations in float64, the latent cache.

Run: .venv/bin/pytest tests/test_mla.py -q

The oracle is `paper_mla` (in tests/test_mla_graded.py): DeepSeek-V2's equations (9)-(19) transcribed
one token and one head at a time in float64, with each RoPE pair turned by an explicit 2x2 matrix and
each query's causal softmax written out. It reads the weights by the released layout (wkv_a =
[W_DKV; W_KR], wkv_b and wq_b per head [nope | rest]), so it also pins that layout, which hf.py relies on.
"""

import pytest
import torch
from test_mla_graded import make_mla, mla_config, paper_mla  # the oracle and fixtures, written once
from torch.overrides import TorchFunctionMode

from minicoder.config import ModelConfig
from minicoder.mla import MLA, MLACache
from minicoder.rope import rope_tables

ATOL = 1e-5  # float32 paths that differ only in the order of operations
ORACLE_ATOL = 1e-6  # float32 module against the float64 transcription



def twin(mla: MLA, config: ModelConfig, **overrides) -> MLA:
    """The same weights under other impl settings."""
    other = MLA(ModelConfig.from_dict({**config.to_dict(), **overrides}), layer=mla.layer).eval()
    other.load_state_dict(mla.state_dict())
    return other


def inputs(config: ModelConfig, B: int = 2, T: int = 13, seed: int = 1):
    torch.manual_seed(seed)
    cos, sin = rope_tables(config, config.max_seq_len)  # (max_seq_len, rope) each
    return torch.randn(B, T, config.d_model), cos, sin


# ---------------------------------------------------------------- the two paths and the oracle

@pytest.mark.parametrize("yarn", [False, True])
@pytest.mark.parametrize("q_lora_rank", [None, 16])
@pytest.mark.parametrize("attn_impl", ["naive", "sdpa"])
def test_naive_equals_absorb(attn_impl, q_lora_rank, yarn):
    cfg = mla_config(yarn, q_lora_rank=q_lora_rank, attn_impl=attn_impl, mla_impl="naive")
    naive = make_mla(cfg)
    absorb = twin(naive, cfg, mla_impl="absorb")
    x, cos, sin = inputs(cfg)
    with torch.no_grad():
        y = naive(x, cos[:13], sin[:13])
        torch.testing.assert_close(absorb(x, cos[:13], sin[:13]), y, atol=ATOL, rtol=0)
    assert y.shape == (2, 13, 48) and y.abs().max() > 0.1  # not a trivially small output


@pytest.mark.parametrize("yarn", [False, True])
@pytest.mark.parametrize("q_lora_rank", [None, 16])
@pytest.mark.parametrize("mla_impl, attn_impl", [("naive", "naive"), ("naive", "sdpa"), ("absorb", "sdpa")])
def test_matches_the_papers_equations_in_float64(mla_impl, attn_impl, q_lora_rank, yarn):
    cfg = mla_config(yarn, q_lora_rank=q_lora_rank, attn_impl=attn_impl, mla_impl=mla_impl)
    mla = make_mla(cfg, seed=2)
    x, cos, sin = inputs(cfg, T=9, seed=3)
    with torch.no_grad():
        y = mla(x, cos[:9], sin[:9])
        expected = paper_mla(mla, cfg, x, cos[:9], sin[:9]).float()
    torch.testing.assert_close(y, expected, atol=ORACLE_ATOL, rtol=0)


# ---------------------------------------------------------------- the cache

@pytest.mark.parametrize("q_lora_rank", [None, 16])
@pytest.mark.parametrize("mla_impl, attn_impl", [("naive", "naive"), ("naive", "sdpa"), ("absorb", "sdpa")])
def test_prefill_then_decode_equals_full_forward(mla_impl, attn_impl, q_lora_rank):
    cfg = mla_config(True, q_lora_rank=q_lora_rank, attn_impl=attn_impl, mla_impl=mla_impl)
    mla = make_mla(cfg)
    x, cos, sin = inputs(cfg)
    cache = MLACache(cfg, batch_size=2, max_seq_len=20)
    with torch.no_grad():
        full = mla(x, cos[:13], sin[:13])
        # prefill 7, then one token at a time to 10, then a chunk of 3 (a query block after a prefix)
        steps = [(0, 7), (7, 8), (8, 9), (9, 10), (10, 13)]
        parts = [mla(x[:, a:b], cos[a:b], sin[a:b], kv_cache=cache, start_pos=a) for a, b in steps]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=ATOL, rtol=0)
    layer0 = cache.c_kv[0] if mla_impl == "absorb" else cache.k[0]
    assert not layer0.any()  # block 1 wrote only its own layer


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("mla_impl", ["naive", "absorb"])
def test_bytes_per_token(mla_impl, dtype):
    cfg = mla_config(mla_impl=mla_impl)
    cache = MLACache(cfg, batch_size=2, max_seq_len=5, dtype=dtype)
    per_layer = 20 + 6 if mla_impl == "absorb" else 3 * (12 + 6 + 10)
    assert MLACache.values_per_token_per_layer(cfg) == per_layer
    assert cache.bytes_per_token() == per_layer * 2 * dtype.itemsize
    tensors = [t for ts in (cache.c_kv, cache.k_pe, cache.k, cache.v) if ts is not None for t in ts]
    allocated = sum(t.numel() * t.element_size() for t in tensors)
    assert cache.bytes_per_token() == allocated // (2 * 5)


def test_v2_cache_sizes():
    # Only the configs: the model itself would be 236B parameters.
    absorb = ModelConfig.from_preset("deepseek-coder-v2", mla_impl="absorb")
    naive = ModelConfig.from_preset("deepseek-coder-v2", mla_impl="naive")
    assert MLACache.values_per_token_per_layer(absorb) == 512 + 64 == 576
    assert MLACache.values_per_token_per_layer(naive) == 128 * (192 + 128) == 40960


def test_absorb_caches_only_the_latents_and_forms_no_per_head_keys():
    cfg = mla_config(mla_impl="absorb")
    mla = make_mla(cfg)
    x, cos, sin = inputs(cfg, B=2, T=9)
    cache = MLACache(cfg, batch_size=2, max_seq_len=11)
    assert cache.k is None and cache.v is None
    assert sum(t.numel() for t in (cache.c_kv[1], cache.k_pe[1])) == 2 * 11 * (20 + 6)

    class Shapes(TorchFunctionMode):  # records the shape of every tensor any torch function returns
        def __init__(self):
            super().__init__()
            self.seen = set()

        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor):
                    self.seen.add(tuple(t.shape))
            return out

    def decode_shapes(model, cache):
        with torch.no_grad():
            model(x[:, :8], cos[:8], sin[:8], kv_cache=cache, start_pos=0)
            with Shapes() as mode:  # one new token against 8 cached ones
                model(x[:, 8:9], cos[8:9], sin[8:9], kv_cache=cache, start_pos=8)
        return mode.seen

    per_head_kv = {(2, 3, 9, d) for d in (12, 12 + 6, 10)}  # (B, nh, S, nope / qk / v)
    assert not per_head_kv & decode_shapes(mla, cache)
    naive_cfg = mla_config(mla_impl="naive")  # the check can fail: the naive path does form them
    assert per_head_kv & decode_shapes(twin(mla, cfg, mla_impl="naive"), MLACache(naive_cfg, 2, max_seq_len=11))


# ---------------------------------------------------------------- causality and errors

@pytest.mark.parametrize("mla_impl, attn_impl", [("naive", "naive"), ("naive", "sdpa"), ("absorb", "sdpa")])
def test_later_tokens_do_not_change_earlier_outputs(mla_impl, attn_impl):
    cfg = mla_config(mla_impl=mla_impl, attn_impl=attn_impl, q_lora_rank=16)
    mla = make_mla(cfg)
    x, cos, sin = inputs(cfg)
    x2 = x.clone()
    x2[:, 9] += torch.randn(2, 48)
    with torch.no_grad():
        y, y2 = mla(x, cos[:13], sin[:13]), mla(x2, cos[:13], sin[:13])
    torch.testing.assert_close(y2[:, :9], y[:, :9], atol=1e-6, rtol=0)
    assert (y2[:, 9:] - y[:, 9:]).abs().amax(dim=-1).min() > 1e-4  # position 9 and every later one moved


def test_errors():
    cfg = mla_config(mla_impl="absorb")
    with pytest.raises(ValueError, match="exceeds the model's context 32"):
        MLACache(cfg, batch_size=1, max_seq_len=33)
    with pytest.raises(ValueError, match="is odd"):
        mla_config(qk_rope_head_dim=5)
    with pytest.raises(ValueError, match="needs an MLA config"):
        MLACache(ModelConfig(vocab_size=11, n_layers=1, d_model=48, n_heads=3, d_ff=40, max_seq_len=32), 1)
    mla = make_mla(cfg)
    x, cos, sin = inputs(cfg, T=3)
    with pytest.raises(ValueError, match="mla_impl='absorb' to cache the latents"):
        mla(x, cos[:3], sin[:3], kv_cache=MLACache(mla_config(mla_impl="naive"), batch_size=2))
    with pytest.raises(ValueError, match="mla_impl='naive' to cache per-head"):
        twin(mla, cfg, mla_impl="naive")(x, cos[:3], sin[:3], kv_cache=MLACache(cfg, batch_size=2))
    with pytest.raises(ValueError, match="start_pos=4 needs the MLACache"):
        mla(x, cos[4:7], sin[4:7], start_pos=4)
