"""Multi-head Latent Attention (DeepSeek-V2 section 2.1): the graded tests of the `mla` assignment.

Run: .venv/bin/pytest tests/test_mla_graded.py -q
Grade a student package: .venv/bin/minicoder assignment grade mla --student DIR

`minicoder/assignments.py` maps each test here to the function it grades. Each function is called on
inputs made here (random queries, latents and RoPE keys for the two attention paths; attention paths
replaced by recorders for `MLA.forward`), so a stub fails its own tests only. Oracles: the paper's
equations transcribed in float64 one token and one head at a time (`paper_projections` for (9) and
(12)-(15), `paper_attention` for (10)-(11) and (16)-(18), `paper_mla` for all of them and (19);
tests/test_mla.py imports them), and end to end HF `transformers`' DeepseekV2ForCausalLM on the same
weights. The absorbed path is also held to what makes it worth having: while it decodes, no tensor
that torch hands back has a per-head key's or value's width beside the cached length (a recorder sees
every torch call), and its cache holds the latents. The naive path with attn_impl "naive" runs with
`F.scaled_dot_product_attention` made to raise. Sizes are odd and all different (3 heads, latent 20,
nope 12, rope 6, value 10), and the block is layer 1 of 2, so the cache's layer index matters.
"""

import math

import pytest
import torch
from torch.overrides import TorchFunctionMode

from minicoder.config import ModelConfig
from minicoder.mla import MLA, MLACache
from minicoder.rope import rope_tables

ATOL = 1e-5  # float32 against the float64 transcription: the same maths in a different order
HF_ATOL = 1e-4  # float32 logits of a 3-layer model against transformers' (different code, same weights)

BASE = dict(vocab_size=11, n_layers=2, d_model=48, n_heads=3, d_ff=40, max_seq_len=32, kv_lora_rank=20,
            qk_nope_head_dim=12, qk_rope_head_dim=6, v_head_dim=10, rope_theta=10000.0)
# rope_mscale != rope_mscale_all_dim: the tables carry a factor != 1 and the softmax scale another.
YARN = dict(rope_scaling_type="yarn", rope_scaling_factor=4.0, rope_original_max_seq_len=16,
            rope_mscale=1.0, rope_mscale_all_dim=0.707)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def mla_config(yarn: bool = False, **overrides) -> ModelConfig:
    return ModelConfig(**{**BASE, **(YARN if yarn else {}), **overrides})


def make_mla(config: ModelConfig, seed: int = 0) -> MLA:
    """Block 1 of 2, every weight random, the RMSNorm gains too."""
    torch.manual_seed(seed)
    mla = MLA(config, layer=1).eval()
    for name, p in mla.named_parameters():
        if name.endswith("norm.weight"):
            p.data.uniform_(0.5, 1.5)
    return mla


def inputs(config: ModelConfig, B: int = 2, T: int = 13, seed: int = 1):
    """x (B, T, d_model) and the RoPE tables (max_seq_len, rope) of every position."""
    cos, sin = rope_tables(config, config.max_seq_len)
    return torch.randn(B, T, config.d_model, generator=gen(seed)), cos, sin


def attention_inputs(config: ModelConfig, B: int = 2, T: int = 13, seed: int = 2):
    """What MLA.forward hands an attention path: q_nope (B, nh, T, nope), q_pe (B, nh, T, rope),
    c_kv (B, T, d_c), k_pe (B, T, rope); random, with queries large enough that softmax is far from flat."""
    c, g = config, gen(seed)
    q_nope = 2 * torch.randn(B, c.n_heads, T, c.qk_nope_head_dim, generator=g)
    q_pe = 2 * torch.randn(B, c.n_heads, T, c.qk_rope_head_dim, generator=g)
    return q_nope, q_pe, torch.randn(B, T, c.kv_lora_rank, generator=g), torch.randn(B, T, c.qk_rope_head_dim, generator=g)


def refuse_sdpa(monkeypatch, message: str) -> None:
    """Make torch's fused attention raise for the rest of the test: a written-out path must not call it."""
    def refuse(*args, **kwargs):
        raise AssertionError(message)
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", refuse)


# ---------------------------------------------------------------- the oracle: equations (9)-(19) in float64

def paper_weights(mla: MLA, config: ModelConfig) -> dict:
    """The paper's matrices, per head where the paper indexes them by head, read by the released layout:
    wkv_a = [W_DKV; W_KR], wkv_b per head [W_UK,i; W_UV,i], wq (or wq_b) per head [W_UQ,i; W_QR,i]."""
    c = config
    nh, dn, dr, dv, dc = c.n_heads, c.qk_nope_head_dim, c.qk_rope_head_dim, c.v_head_dim, c.kv_lora_rank
    dq = dn + dr
    W = {name: p.detach().double() for name, p in mla.named_parameters()}
    W_q = W["wq.weight"] if c.q_lora_rank is None else W["wq_b.weight"]
    return {**W, "W_DKV": W["wkv_a.weight"][:dc], "W_KR": W["wkv_a.weight"][dc:],
            "W_UK": [W["wkv_b.weight"][i * (dn + dv):i * (dn + dv) + dn] for i in range(nh)],
            "W_UV": [W["wkv_b.weight"][i * (dn + dv) + dn:(i + 1) * (dn + dv)] for i in range(nh)],
            "W_UQ": [W_q[i * dq:i * dq + dn] for i in range(nh)],
            "W_QR": [W_q[i * dq + dn:(i + 1) * dq] for i in range(nh)]}


def paper_scale(config: ModelConfig) -> float:
    """1 / sqrt(d_nope + d_R), times YaRN's temperature on every dimension: (0.1 * mscale_all * ln s + 1)^2."""
    c = config
    scale = 1 / math.sqrt(c.qk_nope_head_dim + c.qk_rope_head_dim)
    if c.rope_scaling_type == "yarn":
        scale *= (0.1 * c.rope_mscale_all_dim * math.log(c.rope_scaling_factor) + 1) ** 2
    return scale


def paper_projections(mla: MLA, config: ModelConfig, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                      start_pos: int = 0) -> dict:
    """Equations (9) and (12)-(15) for x (B, T, d_model) at positions start_pos.., with cos, sin the tables
    of every position: {"q_C": (B, nh, T, nope), "q_R": (B, nh, T, rope), "c_kv": (B, T, d_c),
    "k_R": (B, T, rope)}, float64."""
    c = config
    W = paper_weights(mla, c)
    x, cos, sin = x.double(), cos.double(), sin.double()

    def rms_norm(v, w):
        return v / torch.sqrt((v * v).mean() + c.norm_eps) * w

    def rope(v, m):  # pair (v[2i], v[2i+1]) turned by the angle of pair i at position m
        out = torch.empty_like(v)
        for i in range(len(v) // 2):
            R = torch.stack([torch.stack([cos[m, i], -sin[m, i]]), torch.stack([sin[m, i], cos[m, i]])])
            out[2 * i:2 * i + 2] = R @ v[2 * i:2 * i + 2]
        return out

    B, T, _ = x.shape
    nh = c.n_heads
    out = {"q_C": torch.zeros(B, nh, T, c.qk_nope_head_dim, dtype=torch.float64),
           "q_R": torch.zeros(B, nh, T, c.qk_rope_head_dim, dtype=torch.float64),
           "c_kv": torch.zeros(B, T, c.kv_lora_rank, dtype=torch.float64),
           "k_R": torch.zeros(B, T, c.qk_rope_head_dim, dtype=torch.float64)}
    for b in range(B):
        for t in range(T):
            h_t, m = x[b, t], start_pos + t
            out["c_kv"][b, t] = rms_norm(W["W_DKV"] @ h_t, W["kv_norm.weight"])  # (9)
            c_q = h_t if c.q_lora_rank is None else rms_norm(W["wq_a.weight"] @ h_t, W["q_norm.weight"])  # (12)
            out["k_R"][b, t] = rope(W["W_KR"] @ h_t, m)  # (15), one for every head
            for i in range(nh):
                out["q_C"][b, i, t] = W["W_UQ"][i] @ c_q  # (13)
                out["q_R"][b, i, t] = rope(W["W_QR"][i] @ c_q, m)  # (14)
    return out


def paper_attention(mla: MLA, config: ModelConfig, q_C, q_R, c_kv, k_R, start_pos: int = 0) -> torch.Tensor:
    """Equations (10)-(11) and (16)-(18): queries q_C (B, nh, T, nope), q_R (B, nh, T, rope) at positions
    start_pos..; latents c_kv (B, S, d_c) and RoPE keys k_R (B, S, rope) of positions 0..S-1 -> (B, nh, T, v)."""
    c = config
    W = paper_weights(mla, c)
    q_C, q_R, c_kv, k_R = (t.detach().double() for t in (q_C, q_R, c_kv, k_R))
    scale = paper_scale(c)
    B, nh, T, _ = q_C.shape
    out = torch.zeros(B, nh, T, c.v_head_dim, dtype=torch.float64)
    for b in range(B):
        for i in range(nh):
            k = [torch.cat([W["W_UK"][i] @ c_kv[b, j], k_R[b, j]]) for j in range(c_kv.shape[1])]  # (10), (17)
            v = [W["W_UV"][i] @ c_kv[b, j] for j in range(c_kv.shape[1])]  # (11)
            for t in range(T):
                q = torch.cat([q_C[b, i, t], q_R[b, i, t]])  # (16)
                seen = range(start_pos + t + 1)  # keys 0..start_pos + t only
                scores = torch.stack([q @ k[j] * scale for j in seen])
                p = torch.exp(scores - scores.max())
                p = p / p.sum()
                out[b, i, t] = sum(p[j] * v[j] for j in seen)  # (18)
    return out


def paper_mla(mla: MLA, config: ModelConfig, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """DeepSeek-V2 equations (9)-(19) in float64, for x (B, T, d_model) at positions 0..T-1."""
    p = paper_projections(mla, config, x, cos, sin)
    heads = paper_attention(mla, config, p["q_C"], p["q_R"], p["c_kv"], p["k_R"])  # (B, nh, T, v)
    B, nh, T, dv = heads.shape
    return heads.transpose(1, 2).reshape(B, T, nh * dv) @ paper_weights(mla, config)["wo.weight"].T  # (19)


# ---------------------------------------------------------------- MLACache.update_latent

def test_update_latent_stores_and_returns_the_prefix():
    cfg = mla_config(mla_impl="absorb", n_layers=3)
    cache = MLACache(cfg, batch_size=2, max_seq_len=9)
    g = gen(3)
    cs, ps = torch.randn(2, 9, 20, generator=g), torch.randn(2, 9, 6, generator=g)
    for start, end in [(0, 4), (4, 5), (5, 9)]:  # a prefill, one token, a chunk
        c, p = cache.update_latent(1, start, cs[:, start:end], ps[:, start:end])
        assert c.shape == (2, end, 20) and p.shape == (2, end, 6)
        assert torch.equal(c, cs[:, :end]) and torch.equal(p, ps[:, :end])
    assert torch.equal(cache.c_kv[1], cs) and torch.equal(cache.k_pe[1], ps)
    assert not cache.c_kv[0].any() and not cache.k_pe[2].any()  # other layers untouched
    c, p = cache.update_latent(1, 2, torch.zeros(2, 1, 20), torch.ones(2, 1, 6))  # overwrite position 2
    assert c.shape == (2, 3, 20) and not c[:, 2].any() and (p[:, 2] == 1).all()
    assert torch.equal(cache.c_kv[1][:, 3:], cs[:, 3:])  # later positions stay
    assert cache.k is None and cache.v is None  # only the latents


# ---------------------------------------------------------------- MLA._attend_naive

@pytest.mark.parametrize("yarn", [False, True])
@pytest.mark.parametrize("attn_impl", ["naive", "sdpa"])
def test_attend_naive_equals_float64(attn_impl, yarn, monkeypatch):
    cfg = mla_config(yarn, attn_impl=attn_impl, mla_impl="naive")
    mla = make_mla(cfg, seed=4)
    q_nope, q_pe, c_kv, k_pe = attention_inputs(cfg, T=13, seed=5)
    want = paper_attention(mla, cfg, q_nope, q_pe, c_kv, k_pe)
    if attn_impl == "naive":
        refuse_sdpa(monkeypatch, "attn_impl='naive' called F.scaled_dot_product_attention; write the softmax out")
    with torch.no_grad():
        got = mla._attend_naive(q_nope, q_pe, c_kv, k_pe, None, 0)
    assert got.shape == (2, 3, 13, 10) and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), want, atol=ATOL, rtol=0)


@pytest.mark.parametrize("attn_impl", ["naive", "sdpa"])
def test_attend_naive_with_its_cache_equals_float64_and_caches_keys_and_values(attn_impl, monkeypatch):
    cfg = mla_config(True, attn_impl=attn_impl, mla_impl="naive")
    mla = make_mla(cfg, seed=6)
    q_nope, q_pe, c_kv, k_pe = attention_inputs(cfg, T=13, seed=7)
    want = paper_attention(mla, cfg, q_nope, q_pe, c_kv, k_pe)
    if attn_impl == "naive":
        refuse_sdpa(monkeypatch, "attn_impl='naive' called F.scaled_dot_product_attention; write the softmax out")
    cache = MLACache(cfg, batch_size=2, max_seq_len=16)
    with torch.no_grad():  # a prefill, one token, a chunk after a prefix, one more token
        pieces = [mla._attend_naive(q_nope[:, :, a:b], q_pe[:, :, a:b], c_kv[:, a:b], k_pe[:, a:b], cache, a)
                  for a, b in [(0, 7), (7, 8), (8, 12), (12, 13)]]
    torch.testing.assert_close(torch.cat(pieces, dim=2).double(), want, atol=ATOL, rtol=0)
    # The cache holds layer 1's per-head keys [W_UK,i c ; k_R] and values W_UV,i c of positions 0..12.
    W = paper_weights(mla, cfg)
    c64 = c_kv.double()
    k_want = torch.stack([torch.cat([c64 @ W["W_UK"][i].T, k_pe.double()], dim=-1) for i in range(3)], dim=1)
    v_want = torch.stack([c64 @ W["W_UV"][i].T for i in range(3)], dim=1)
    torch.testing.assert_close(cache.k[1][:, :, :13].double(), k_want, atol=ATOL, rtol=0)
    torch.testing.assert_close(cache.v[1][:, :, :13].double(), v_want, atol=ATOL, rtol=0)
    assert not cache.k[0].any() and not cache.k[1][:, :, 13:].any()


# ---------------------------------------------------------------- MLA._attend_absorb

@pytest.mark.parametrize("yarn", [False, True])
def test_attend_absorb_equals_float64(yarn):
    cfg = mla_config(yarn, mla_impl="absorb")
    mla = make_mla(cfg, seed=8)
    q_nope, q_pe, c_kv, k_pe = attention_inputs(cfg, T=13, seed=9)
    with torch.no_grad():
        got = mla._attend_absorb(q_nope, q_pe, c_kv, k_pe, None, 0)
    assert got.shape == (2, 3, 13, 10) and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), paper_attention(mla, cfg, q_nope, q_pe, c_kv, k_pe), atol=ATOL, rtol=0)


def test_attend_absorb_with_the_latent_cache_equals_float64():
    cfg = mla_config(True, mla_impl="absorb")
    mla = make_mla(cfg, seed=10)
    q_nope, q_pe, c_kv, k_pe = attention_inputs(cfg, T=13, seed=11)
    cache = MLACache(cfg, batch_size=2, max_seq_len=16)
    with torch.no_grad():
        pieces = [mla._attend_absorb(q_nope[:, :, a:b], q_pe[:, :, a:b], c_kv[:, a:b], k_pe[:, a:b], cache, a)
                  for a, b in [(0, 7), (7, 8), (8, 12), (12, 13)]]
    want = paper_attention(mla, cfg, q_nope, q_pe, c_kv, k_pe)
    torch.testing.assert_close(torch.cat(pieces, dim=2).double(), want, atol=ATOL, rtol=0)
    # What the cache holds is the latents themselves, in layer 1; nothing else was allocated.
    assert torch.equal(cache.c_kv[1][:, :13], c_kv) and torch.equal(cache.k_pe[1][:, :13], k_pe)
    assert not cache.c_kv[0].any() and not cache.c_kv[1][:, 13:].any()
    assert cache.k is None and cache.v is None


class Shapes(TorchFunctionMode):
    """Records the shape of every tensor that any torch function or tensor method returns."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.seen.append((getattr(func, "__name__", str(func)), tuple(t.shape)))
        return out


def test_attend_absorb_decodes_without_a_per_head_key_or_value():
    """One new token against 8 cached ones. A per-head key or value, in any layout or one head at a time,
    has the cached length S = 9 and a per-head width (nope 12, v 11, nope + rope 16, or several heads' worth)
    beside it; the latents have widths 6 (c_kv), 4 (k_pe) or 10 (both), the scores 3 heads by 1 query."""
    cfg = mla_config(mla_impl="absorb", kv_lora_rank=6, qk_rope_head_dim=4, qk_nope_head_dim=12, v_head_dim=11)
    nh, dn, dr, dv = 3, 12, 4, 11
    per_head_widths = {dn, dv, dn + dr, dn + dv, nh * dn, nh * dv, nh * (dn + dr), nh * (dn + dv)}
    mla = make_mla(cfg, seed=12)
    q_nope, q_pe, c_kv, k_pe = attention_inputs(cfg, T=9, seed=13)
    cache = MLACache(cfg, batch_size=2, max_seq_len=11)

    def per_head(seen):
        return [(name, shape) for name, shape in seen if 9 in shape and per_head_widths & set(shape)]

    with torch.no_grad():
        mla._attend_absorb(q_nope[:, :, :8], q_pe[:, :, :8], c_kv[:, :8], k_pe[:, :8], cache, 0)  # prefill
        with Shapes() as mode:
            y = mla._attend_absorb(q_nope[:, :, 8:], q_pe[:, :, 8:], c_kv[:, 8:], k_pe[:, 8:], cache, 8)
    assert not per_head(mode.seen), (f"decoding formed per-head keys or values {per_head(mode.seen)[:3]}: the absorbed "
                                     f"path folds W_UK into the query and W_UV after the weighted sum of c_kv")
    want = paper_attention(mla, cfg, q_nope, q_pe, c_kv, k_pe, start_pos=0)[:, :, 8:]
    torch.testing.assert_close(y.double(), want, atol=ATOL, rtol=0)  # and it did attend
    with Shapes() as mode:  # the check can fail: expanding the cached latents into keys is seen
        torch.einsum("bsc,hnc->bhsn", cache.c_kv[1][:, :9], mla.wkv_b.weight.view(nh, dn + dv, 6)[:, :dn])
    assert per_head(mode.seen)


# ---------------------------------------------------------------- MLA.forward

@pytest.mark.parametrize("mla_impl", ["naive", "absorb"])
@pytest.mark.parametrize("q_lora_rank, yarn", [(None, False), (16, True)])
def test_forward_projects_rotates_and_hands_over_to_its_path(q_lora_rank, yarn, mla_impl, monkeypatch):
    """The attention paths are replaced by recorders: what forward gives them must be the paper's q_C, q_R,
    c_kv and k_R at positions 3..9, and what it makes of their (random) answer must be W_O times the heads."""
    cfg = mla_config(yarn, q_lora_rank=q_lora_rank, mla_impl=mla_impl)
    mla = make_mla(cfg, seed=14)
    x, cos, sin = inputs(cfg, T=7, seed=15)
    heads = torch.randn(2, 3, 7, 10, generator=gen(16))  # what the recorders answer: (B, nh, T, v)
    calls = []

    def recorder(path):
        def attend(self, q_nope, q_pe, c_kv, k_pe, kv_cache, start_pos):
            calls.append(dict(path=path, q_nope=q_nope, q_pe=q_pe, c_kv=c_kv, k_pe=k_pe, kv_cache=kv_cache,
                              start_pos=start_pos))
            return heads
        return attend

    monkeypatch.setattr(MLA, "_attend_naive", recorder("naive"))
    monkeypatch.setattr(MLA, "_attend_absorb", recorder("absorb"))
    cache = MLACache(cfg, batch_size=2, max_seq_len=16)
    with torch.no_grad():
        y = mla(x, cos[3:10], sin[3:10], kv_cache=cache, start_pos=3)
    assert [c["path"] for c in calls] == [mla_impl], "forward calls the path of config.mla_impl, once"
    (call,) = calls
    assert call["kv_cache"] is cache and call["start_pos"] == 3
    want = paper_projections(mla, cfg, x, cos, sin, start_pos=3)
    for ours, paper, shape in [("q_nope", "q_C", (2, 3, 7, 12)), ("q_pe", "q_R", (2, 3, 7, 6)),
                               ("c_kv", "c_kv", (2, 7, 20)), ("k_pe", "k_R", (2, 7, 6))]:
        assert tuple(call[ours].shape) == shape, ours
        torch.testing.assert_close(call[ours].double(), want[paper], atol=ATOL, rtol=0, msg=ours)
    wo = paper_weights(mla, cfg)["wo.weight"]
    assert y.shape == (2, 7, 48)
    torch.testing.assert_close(y.double(), heads.double().transpose(1, 2).reshape(2, 7, 30) @ wo.T, atol=ATOL, rtol=0)


# ---------------------------------------------------------------- end to end

@pytest.mark.parametrize("mla_impl", ["naive", "absorb"])
@pytest.mark.parametrize("q_lora_rank, yarn, attn_impl", [(None, False, "naive"), (16, True, "sdpa")])
def test_mla_equals_the_papers_equations_and_decodes_through_its_cache(q_lora_rank, yarn, attn_impl, mla_impl):
    cfg = mla_config(yarn, q_lora_rank=q_lora_rank, attn_impl=attn_impl, mla_impl=mla_impl)
    mla = make_mla(cfg, seed=17)
    x, cos, sin = inputs(cfg, T=11, seed=18)
    cache = MLACache(cfg, batch_size=2, max_seq_len=16)
    with torch.no_grad():
        full = mla(x, cos[:11], sin[:11])
        pieces = [mla(x[:, a:b], cos[a:b], sin[a:b], kv_cache=cache, start_pos=a)
                  for a, b in [(0, 6), (6, 7), (7, 10), (10, 11)]]
    torch.testing.assert_close(full.double(), paper_mla(mla, cfg, x, cos[:11], sin[:11]), atol=ATOL, rtol=0)
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=ATOL, rtol=0)


@pytest.mark.parametrize("mla_impl", ["naive", "absorb"])
def test_v2_model_equals_transformers_and_decodes_through_its_cache(mla_impl, tmp_path):
    """A 3-layer DeepSeek-V2 (MLA with q-lora and YaRN, a dense block then DeepSeekMoE) with random weights,
    read by `from_hf`: logits within 1e-4 of transformers' at 23 > 16 positions, then the same logits
    through the model's own cache (a prefill, then one token at a time)."""
    transformers = pytest.importorskip("transformers")
    from minicoder.hf import from_hf
    from minicoder.model import make_cache

    hf_cfg = transformers.DeepseekV2Config(
        vocab_size=53, hidden_size=40, intermediate_size=44, num_hidden_layers=3, num_attention_heads=5,
        q_lora_rank=24, kv_lora_rank=20, qk_nope_head_dim=10, qk_rope_head_dim=6, v_head_dim=14,
        n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=3, moe_intermediate_size=18,
        first_k_dense_replace=1, max_position_embeddings=64, rope_theta=10000.0, rms_norm_eps=1e-6,
        rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16, "beta_fast": 32,
                      "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707},
    )
    hf_cfg._experts_implementation = "eager"  # the per-expert loop; grouped_mm wants 16-byte strides
    torch.manual_seed(19)
    hf = transformers.DeepseekV2ForCausalLM(hf_cfg).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0.0, 0.15)
    hf.save_pretrained(tmp_path)
    ours = from_hf(tmp_path, attn_impl="naive", mla_impl=mla_impl)
    idx = torch.randint(0, 53, (2, 23), generator=gen(20))
    with torch.no_grad():
        full = ours(idx)
        torch.testing.assert_close(full, hf(idx).logits, atol=HF_ATOL, rtol=0)
        cache = make_cache(ours.config, batch_size=2, max_seq_len=23)
        pieces = [ours(idx[:, :15], cache, 0)] + [ours(idx[:, t:t + 1], cache, t) for t in range(15, 23)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=ATOL, rtol=0)
