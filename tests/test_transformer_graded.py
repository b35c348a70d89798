"""The graded tests of the `transformer` assignment (model.py, rope.py): a group per function.

Run: .venv/bin/pytest tests/test_transformer_graded.py -q
Grade a student package: .venv/bin/minicoder assignment grade transformer --student DIR

`minicoder/assignments.py` maps each test here to the function it grades. Oracles: float64
references written out in the test, HF `transformers`' LLaMA pieces on the same weights
(LlamaRMSNorm, LlamaRotaryEmbedding, rotate_half, apply_rotary_pos_emb, repeat_kv, LlamaMLP,
LlamaAttention, LlamaForCausalLM; each such test is skipped where transformers is not installed, and
every function keeps a float64 test), and `F.scaled_dot_product_attention`. RoPE tables and masks
that a test needs are built here, not with the assigned functions, so a stub fails its own tests
only. The naive attention paths run with `F.scaled_dot_product_attention` made to raise, so
delegating them to torch's fused kernel fails. Shapes are small and odd (head_dim 6, 3 query heads
per KV head, lengths 1, 7, 13) so that nothing lines up by accident.
"""

import math

import pytest
import torch
import torch.nn.functional as F

import minicoder.rope as rope_mod
from minicoder.config import ModelConfig
from minicoder.model import (
    Attention,
    FeedForward,
    KVCache,
    RMSNorm,
    attention_naive,
    causal_mask,
    repeat_kv,
)
from minicoder.rope import (
    apply_rope,
    apply_rope_naive,
    rope_angles,
    rope_cos_sin,
    rope_frequencies,
    rotate_half,
)

ATOL = 1e-5  # float32 against float64 or against HF: the same maths in a different order


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def hf_llama():
    """transformers' LLaMA module, or skip (the float64 tests of the same function still grade it)."""
    return pytest.importorskip("transformers.models.llama.modeling_llama")


def hf_config(n_heads=6, n_kv_heads=2, d_model=36, d_ff=22, max_pos=64, theta=1000.0, factor=None):
    transformers = pytest.importorskip("transformers")
    rope = {"rope_scaling": {"type": "linear", "factor": factor}} if factor else {}
    return transformers.LlamaConfig(
        vocab_size=53, hidden_size=d_model, intermediate_size=d_ff, num_hidden_layers=1, num_attention_heads=n_heads,
        num_key_value_heads=n_kv_heads, max_position_embeddings=max_pos, rope_theta=theta, rms_norm_eps=1e-6,
        attn_implementation="eager", **rope)


def tables64(head_dim: int, positions, theta: float, factor: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 cos, sin (T, hd) in rotate-half layout: angle of pair i at position m = m / factor * theta^(-2i/hd)."""
    i = torch.arange(head_dim // 2, dtype=torch.float64)
    freq = theta ** (-2 * i / head_dim) / factor  # (hd/2,)
    ang = torch.as_tensor(positions, dtype=torch.float64)[:, None] * freq[None, :]  # (T, hd/2)
    ang = torch.cat((ang, ang), dim=-1)  # (T, hd)
    return ang.cos(), ang.sin()


def rotate64(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Each pair (x[i], x[i + hd/2]) times the 2x2 rotation matrix of its angle, in float64."""
    x = x.double()
    half = x.shape[-1] // 2
    c, s = cos[:, :half].double(), sin[:, :half].double()  # (T, hd/2)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * c - x2 * s, x1 * s + x2 * c), dim=-1)


def mask64(T: int, S: int, start_pos: int) -> torch.Tensor:
    return torch.tensor([[s <= start_pos + t for s in range(S)] for t in range(T)])


def attention64(q, k, v, mask) -> torch.Tensor:
    """softmax(q k^T / sqrt(hd) + (-inf off the mask)) v in float64, heads already repeated."""
    q, k, v = q.double(), k.double(), v.double()
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1) @ v


def refuse_sdpa(monkeypatch, message: str) -> None:
    """Make torch's fused attention raise for the rest of the test: a naive path must not call it."""
    def refuse(*args, **kwargs):
        raise AssertionError(message)
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", refuse)


# ---------------------------------------------------------------- RMSNorm

@pytest.mark.parametrize("shape, dtype, eps", [((3, 5, 7), torch.float32, 1e-6), ((2, 11), torch.float32, 1e-2),
                                               ((1, 4, 9), torch.bfloat16, 1e-5)])
def test_rmsnorm_equals_float64_and_hf(shape, dtype, eps):
    g = gen(1)
    x = (torch.randn(shape, generator=g) * 3 + 0.5).to(dtype)
    w = torch.rand(shape[-1], generator=g) + 0.5
    norm = RMSNorm(shape[-1], eps)
    norm.weight.data.copy_(w)
    got = norm(x)
    x64 = x.double()
    want = w.double() * (x64 / torch.sqrt(x64.pow(2).mean(-1, keepdim=True) + eps)).to(dtype).double()
    assert got.shape == x.shape
    tol = ATOL if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(got.double(), want, atol=tol, rtol=0)
    llama = hf_llama()
    ref = llama.LlamaRMSNorm(shape[-1], eps=eps)
    ref.weight.data.copy_(w)
    torch.testing.assert_close(got, ref(x), atol=ATOL, rtol=0)  # same dtype, same float32 statistics


# ---------------------------------------------------------------- RoPE tables

@pytest.mark.parametrize("head_dim, theta, scaling, factor", [(6, 10000.0, None, 1.0), (10, 100000.0, "linear", 4.0),
                                                             (128, 10000.0, "linear", 4.0)])
def test_rope_frequencies_equal_float64_and_hf(head_dim, theta, scaling, factor):
    got = rope_frequencies(head_dim, theta, scaling, factor)
    assert got.shape == (head_dim // 2,) and got.dtype == torch.float32
    want = theta ** (-2 * torch.arange(head_dim // 2, dtype=torch.float64) / head_dim) / factor
    torch.testing.assert_close(got.double(), want, atol=0, rtol=1e-6)
    cfg = hf_config(n_heads=1, n_kv_heads=1, d_model=head_dim, theta=theta, factor=factor if scaling else None)
    hf = hf_llama().LlamaRotaryEmbedding(cfg)
    torch.testing.assert_close(got, hf.inv_freq, atol=0, rtol=1e-7)  # computed as HF does: equal to float32
    with pytest.raises(ValueError, match="unknown RoPE scaling"):
        rope_frequencies(head_dim, theta, "yarn", 2.0)


@pytest.mark.parametrize("scaling, factor", [(None, 1.0), ("linear", 4.0)])
def test_rope_angles_equal_float64(scaling, factor):
    positions = torch.tensor([0, 1, 2, 7, 100, 16383])
    got = rope_angles(10, positions, 100000.0, scaling, factor)
    assert got.shape == (6, 5) and got.dtype == torch.float32
    want = positions.double()[:, None] * (100000.0 ** (-2 * torch.arange(5, dtype=torch.float64) / 10) / factor)
    torch.testing.assert_close(got.double(), want, atol=0, rtol=1e-6)


@pytest.mark.parametrize("head_dim, seq_len, theta, scaling, factor", [(6, 13, 10000.0, None, 1.0),
                                                                       (10, 37, 100000.0, "linear", 4.0)])
def test_rope_cos_sin_equal_float64_and_hf(head_dim, seq_len, theta, scaling, factor):
    cos, sin = rope_cos_sin(head_dim, seq_len, theta, scaling, factor)
    assert cos.shape == sin.shape == (seq_len, head_dim) and cos.dtype == sin.dtype == torch.float32
    cos64, sin64 = tables64(head_dim, range(seq_len), theta, factor)
    torch.testing.assert_close(cos.double(), cos64, atol=ATOL, rtol=0)
    torch.testing.assert_close(sin.double(), sin64, atol=ATOL, rtol=0)
    cfg = hf_config(n_heads=1, n_kv_heads=1, d_model=head_dim, theta=theta, factor=factor if scaling else None)
    hf_cos, hf_sin = hf_llama().LlamaRotaryEmbedding(cfg)(torch.zeros(1), torch.arange(seq_len)[None])
    torch.testing.assert_close(cos, hf_cos[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(sin, hf_sin[0], atol=1e-6, rtol=0)


# ---------------------------------------------------------------- applying RoPE

@pytest.mark.parametrize("shape", [(4,), (2, 3, 5, 6), (1, 1, 1, 10)])
def test_rotate_half_equals_hf(shape):
    x = torch.randn(shape, generator=gen(2))
    got = rotate_half(x)
    half = shape[-1] // 2
    assert torch.equal(got, torch.cat((-x[..., half:], x[..., :half]), dim=-1))
    torch.testing.assert_close(got, hf_llama().rotate_half(x), atol=0, rtol=0)


def rope_case(dtype=torch.float32, seed=3):
    """q (2, 6, 7, 10), k (2, 2, 7, 10) at positions 5..11, linear factor 4, and float64 tables."""
    g = gen(seed)
    q = torch.randn(2, 6, 7, 10, generator=g).to(dtype)
    k = torch.randn(2, 2, 7, 10, generator=g).to(dtype)
    cos64, sin64 = tables64(10, range(5, 12), 100000.0, 4.0)
    return q, k, cos64, sin64


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_apply_rope_equals_2x2_rotations_and_hf(dtype):
    q, k, cos64, sin64 = rope_case(dtype)
    cos, sin = cos64.float(), sin64.float()
    got_q, got_k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    assert got_q.shape == q.shape and got_q.dtype == dtype and got_k.shape == k.shape
    tol = ATOL if dtype == torch.float32 else 5e-2
    torch.testing.assert_close(got_q.double(), rotate64(q, cos64, sin64), atol=tol, rtol=0)
    torch.testing.assert_close(got_k.double(), rotate64(k, cos64, sin64), atol=tol, rtol=0)
    if dtype == torch.float32:
        hf_q, hf_k = hf_llama().apply_rotary_pos_emb(q, k, cos[None], sin[None])
        torch.testing.assert_close(got_q, hf_q, atol=1e-6, rtol=0)
        torch.testing.assert_close(got_k, hf_k, atol=1e-6, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_apply_rope_naive_equals_2x2_rotations(dtype, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("apply_rope_naive must use complex numbers, not rotate_half/apply_rope")
    monkeypatch.setattr(rope_mod, "rotate_half", refuse)
    monkeypatch.setattr(rope_mod, "apply_rope", refuse)
    q, k, cos64, sin64 = rope_case(dtype, seed=4)
    got = apply_rope_naive(q, cos64.float(), sin64.float())
    assert got.shape == q.shape and got.dtype == dtype
    tol = ATOL if dtype == torch.float32 else 5e-2
    torch.testing.assert_close(got.double(), rotate64(q, cos64, sin64), atol=tol, rtol=0)
    # a rotation keeps every pair's length
    half = 5
    norms = lambda x: x.double()[..., :half] ** 2 + x.double()[..., half:] ** 2  # noqa: E731
    torch.testing.assert_close(norms(got), norms(q), atol=1e-4 if dtype == torch.float32 else 0.1, rtol=1e-2)


# ---------------------------------------------------------------- the mask, GQA, attention

@pytest.mark.parametrize("T, S, start_pos", [(1, 1, 0), (7, 7, 0), (1, 13, 12), (3, 9, 6), (5, 13, 8)])
def test_causal_mask_by_rule(T, S, start_pos):
    got = causal_mask(T, S, start_pos)
    assert got.shape == (T, S) and got.dtype == torch.bool
    assert torch.equal(got, mask64(T, S, start_pos))


@pytest.mark.parametrize("n_kv, n_rep", [(1, 1), (2, 3), (3, 2), (1, 5)])
def test_repeat_kv_equals_hf(n_kv, n_rep):
    x = torch.randn(2, n_kv, 7, 6, generator=gen(5))
    got = repeat_kv(x, n_rep)
    assert got.shape == (2, n_kv * n_rep, 7, 6)
    for h in range(n_kv * n_rep):
        assert torch.equal(got[:, h], x[:, h // n_rep]), h
    assert torch.equal(got, hf_llama().repeat_kv(x, n_rep))


@pytest.mark.parametrize("T, S, start_pos, dtype", [(7, 7, 0, torch.float32), (1, 13, 12, torch.float32),
                                                    (5, 13, 8, torch.float32), (7, 7, 0, torch.bfloat16)])
def test_attention_naive_equals_float64_and_sdpa(T, S, start_pos, dtype, monkeypatch):
    g = gen(6)
    q = torch.randn(2, 3, T, 6, generator=g).to(dtype)
    k = torch.randn(2, 3, S, 6, generator=g).to(dtype)
    v = torch.randn(2, 3, S, 6, generator=g).to(dtype)
    mask = mask64(T, S, start_pos)
    fused = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # torch's answer, before it is refused
    refuse_sdpa(monkeypatch, "attention_naive called F.scaled_dot_product_attention; write the masked softmax out")
    got = attention_naive(q, k, v, mask)
    assert got.shape == (2, 3, T, 6) and got.dtype == dtype
    tol = ATOL if dtype == torch.float32 else 3e-2
    torch.testing.assert_close(got.double(), attention64(q, k, v, mask), atol=tol, rtol=0)
    torch.testing.assert_close(got, fused, atol=tol, rtol=0)


def test_kv_cache_update_stores_and_returns_the_prefix():
    cfg = ModelConfig(vocab_size=11, n_layers=3, d_model=12, n_heads=6, n_kv_heads=2, d_ff=10, max_seq_len=16)
    cache = KVCache(cfg, batch_size=2, max_seq_len=9)
    g = gen(7)
    ks, vs = torch.randn(2, 2, 9, 2, generator=g), torch.randn(2, 2, 9, 2, generator=g)
    for start, end in [(0, 4), (4, 5), (5, 9)]:
        k, v = cache.update(1, start, ks[:, :, start:end], vs[:, :, start:end])
        assert k.shape == v.shape == (2, 2, end, 2)
        assert torch.equal(k, ks[:, :, :end]) and torch.equal(v, vs[:, :, :end])
    assert torch.equal(cache.k[1], ks) and torch.equal(cache.v[1], vs)
    assert not cache.k[0].any() and not cache.v[2].any()  # other layers untouched
    k, v = cache.update(1, 2, torch.zeros(2, 2, 1, 2), torch.ones(2, 2, 1, 2))  # overwrite position 2
    assert k.shape == (2, 2, 3, 2) and not k[:, :, 2].any() and (v[:, :, 2] == 1).all()
    assert torch.equal(cache.k[1][:, :, 3:], ks[:, :, 3:])  # later positions stay


def attention_pair(n_kv_heads: int, attn_impl: str, seed: int = 8):
    """(our Attention, HF LlamaAttention) with the same random weights: d_model 36, 6 heads of 6."""
    cfg = ModelConfig(vocab_size=53, n_layers=1, d_model=36, n_heads=6, n_kv_heads=n_kv_heads, d_ff=22,
                      max_seq_len=64, attn_impl=attn_impl)
    torch.manual_seed(seed)
    ours = Attention(cfg, layer=0)
    return cfg, ours


def hf_attention(ours: Attention, n_kv_heads: int):
    llama = hf_llama()
    hf = llama.LlamaAttention(hf_config(n_kv_heads=n_kv_heads), layer_idx=0).eval()
    for a, b in [("wq", "q_proj"), ("wk", "k_proj"), ("wv", "v_proj"), ("wo", "o_proj")]:
        getattr(hf, b).weight.data.copy_(getattr(ours, a).weight.data)
    return hf


@pytest.mark.parametrize("attn_impl", ["naive", "sdpa"])
@pytest.mark.parametrize("n_kv_heads", [6, 2])
def test_attention_equals_float64_and_hf(attn_impl, n_kv_heads, monkeypatch):
    cfg, ours = attention_pair(n_kv_heads, attn_impl)
    T = 13
    x = torch.randn(2, T, 36, generator=gen(9))
    cos64, sin64 = tables64(6, range(T), 1000.0)
    # float64 reference written out: projections, RoPE as 2x2 rotations, GQA, masked softmax
    q = (x.double() @ ours.wq.weight.double().T).view(2, T, 6, 6).transpose(1, 2)
    k = (x.double() @ ours.wk.weight.double().T).view(2, T, n_kv_heads, 6).transpose(1, 2)
    v = (x.double() @ ours.wv.weight.double().T).view(2, T, n_kv_heads, 6).transpose(1, 2)
    q, k = rotate64(q, cos64, sin64), rotate64(k, cos64, sin64)
    rep = 6 // n_kv_heads
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    y = attention64(q, k, v, mask64(T, T, 0)).transpose(1, 2).reshape(2, T, 36)
    want = y @ ours.wo.weight.double().T
    if attn_impl == "naive":
        refuse_sdpa(monkeypatch, "attn_impl='naive' called F.scaled_dot_product_attention; use attention_naive")
    with torch.no_grad():
        got = ours(x, cos64.float(), sin64.float())
    assert got.shape == x.shape
    torch.testing.assert_close(got.double(), want, atol=ATOL, rtol=0)
    hf = hf_attention(ours, n_kv_heads)  # eager attention: never calls torch's fused kernel
    additive = torch.zeros(T, T).masked_fill(~mask64(T, T, 0), float("-inf"))[None, None]
    with torch.no_grad():
        ref = hf(x, position_embeddings=(cos64.float()[None], sin64.float()[None]), attention_mask=additive)[0]
    torch.testing.assert_close(got, ref, atol=ATOL, rtol=0)


@pytest.mark.parametrize("attn_impl", ["naive", "sdpa"])
def test_attention_with_kv_cache_equals_full(attn_impl, monkeypatch):
    cfg, ours = attention_pair(2, attn_impl, seed=10)
    T = 13
    x = torch.randn(2, T, 36, generator=gen(11))
    cos, sin = (t.float() for t in tables64(6, range(T), 1000.0))
    if attn_impl == "naive":
        refuse_sdpa(monkeypatch, "attn_impl='naive' called F.scaled_dot_product_attention; use attention_naive")
    with torch.no_grad():
        full = ours(x, cos, sin)
        cache = KVCache(cfg, batch_size=2, max_seq_len=16)
        pieces = [ours(x[:, :5], cos[:5], sin[:5], cache, 0)]  # prefill
        pieces.append(ours(x[:, 5:9], cos[5:9], sin[5:9], cache, 5))  # a chunk after a prefix
        pieces += [ours(x[:, t:t + 1], cos[t:t + 1], sin[t:t + 1], cache, t) for t in range(9, T)]  # one at a time
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=ATOL, rtol=0)
    assert cache.k[0][:, :, :T].abs().sum() > 0 and not cache.k[0][:, :, T:].any()  # the cache holds what was fed


# ---------------------------------------------------------------- SwiGLU

@pytest.mark.parametrize("shape", [(3, 5, 36), (7, 36)])
def test_feedforward_equals_float64_and_hf(shape):
    cfg = ModelConfig(vocab_size=53, n_layers=1, d_model=36, n_heads=6, d_ff=22, max_seq_len=64)
    torch.manual_seed(12)
    ffn = FeedForward(cfg)
    x = torch.randn(shape, generator=gen(13))
    got = ffn(x)
    assert got.shape == x.shape
    a, b = x.double() @ ffn.w1.weight.double().T, x.double() @ ffn.w3.weight.double().T
    want = (a * torch.sigmoid(a) * b) @ ffn.w2.weight.double().T
    torch.testing.assert_close(got.double(), want, atol=ATOL, rtol=0)
    mlp = hf_llama().LlamaMLP(hf_config())
    for ours_name, hf_name in [("w1", "gate_proj"), ("w3", "up_proj"), ("w2", "down_proj")]:
        getattr(mlp, hf_name).weight.data.copy_(getattr(ffn, ours_name).weight.data)
    torch.testing.assert_close(got, mlp(x), atol=ATOL, rtol=0)


# ---------------------------------------------------------------- end to end

@pytest.mark.parametrize("attn_impl", ["naive", "sdpa"])
def test_transformer_equals_hf_llama_and_caches(attn_impl, tmp_path):
    transformers = pytest.importorskip("transformers")
    from minicoder.hf import from_hf

    torch.manual_seed(14)
    hf = transformers.LlamaForCausalLM(hf_config(n_kv_heads=2, theta=100000.0, factor=4.0)).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    hf.save_pretrained(tmp_path)
    ours = from_hf(tmp_path, attn_impl=attn_impl)
    idx = torch.randint(0, 53, (2, 13), generator=gen(15))
    with torch.no_grad():
        full = ours(idx)
        torch.testing.assert_close(full, hf(idx).logits, atol=ATOL, rtol=0)
        cache = KVCache(ours.config, batch_size=2, max_seq_len=13)
        pieces = [ours(idx[:, :6], cache, 0)] + [ours(idx[:, t:t + 1], cache, t) for t in range(6, 13)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=ATOL, rtol=0)
