"""Multi-head Latent Attention (MLA): DeepSeek-V2's attention with a small per-token KV cache.

DeepSeek-V2 (DeepSeek-AI, 2024, section 2.1; every formula again in appendix C) compresses each
token's keys and values into one latent vector c_kv of width d_c = kv_lora_rank (V2: 512), and
gives positions to keys through a separate RoPE key k_pe of width d_R = qk_rope_head_dim (V2: 64)
that all heads share. For token t, head i (equation numbers of section 2.1):

    c_kv  = RMSNorm(W_DKV h_t)                 k_C,i = W_UK,i c_kv    v_C,i = W_UV,i c_kv   (9-11)
    c_q   = RMSNorm(W_DQ h_t)                  q_C,i = W_UQ,i c_q     (or q = W_Q h_t)     (12-13)
    q_R,i = RoPE(W_QR,i c_q)                   k_R   = RoPE(W_KR h_t), one for all heads   (14-15)
    q_i   = [q_C,i ; q_R,i]                    k_i   = [k_C,i ; k_R]                       (16-17)
    o_t,i = sum_{j <= t} softmax_j(q_t,i . k_j,i * scale) v_C,j,i                             (18)
    u_t   = W_O [o_t,1 ; ... ; o_t,nh]                                                       (19)

with scale = 1/sqrt(d_nope + d_R), times YaRN's mscale^2 (`rope.softmax_scale`). The RMSNorms on
the two latents are section 3.1.2's "additional RMS Norm layers after the compressed latent vectors".

`ModelConfig.mla_impl` picks one of two paths that compute the same function (tests/test_mla.py):

- "naive" reads the equations as written: expand c_kv with W_UK and W_UV into per-head keys and
  values, cache those (n_heads * (d_nope + d_R + d_v) values per token per layer: 40,960 for V2),
  and attend (`attn_impl`: the softmax written out, or `F.scaled_dot_product_attention`).
- "absorb" caches only c_kv and k_pe (d_c + d_R = 576 values per token per layer for V2; the
  paper's 4.5 * d_h). Since q_C,i . k_C,i = q_C,i . (W_UK,i c_kv) = (W_UK,i^T q_C,i) . c_kv, W_UK
  folds into the query, and the attention-weighted sum of v_C,i = W_UV,i c_kv is W_UV,i applied to
  the weighted sum of c_kv. So scores and outputs are taken against the latents themselves and no
  per-head key or value is ever formed, as in DeepSeek-V3's inference code (`attn_impl="absorb"`
  there). This path writes its attention out with einsum whatever `attn_impl` says.

Parameter names follow DeepSeek-V3's inference code: wq (W_Q) or wq_a (W_DQ), q_norm, wq_b (W_UQ and
W_QR, per head [nope | rope]); wkv_a (W_DKV then W_KR along its output); kv_norm; wkv_b (W_UK and
W_UV, per head [k_nope | v]); wo (W_O). `minicoder/hf.py` maps them to transformers' DeepseekV2
names. RoPE pairs adjacent dimensions (`rope.apply_rope_interleaved`), as V2's released weights do.

This file imports RMSNorm and causal_mask from `minicoder.layers`, never from `minicoder.model`, so
`model.py` may import it at module level without a cycle.

Left out: folding W_UK into W_UQ and W_UV into W_O ahead of time, as the paper suggests (the
products are larger than their factors: W_UQ,i^T W_UK,i is 1536 x 512 for V2 against 1536 x 128
plus 128 x 512, so V3's code folds at run time, into the query and the output, as we do); a fused
latent-attention kernel (FlashMLA); padding masks; tensor parallelism; fp8 weights.
"""

import torch
import torch.nn.functional as F
from torch import nn

from minicoder.config import ModelConfig
from minicoder.layers import RMSNorm, causal_mask
from minicoder.rope import apply_rope_interleaved, softmax_scale


class MLACache:
    """What MLA keeps of positions 0..max_seq_len-1, per layer, filled as decoding goes.

    mla_impl "absorb": c_kv[layer] (B, max_seq_len, kv_lora_rank), already through kv_norm, and
    k_pe[layer] (B, max_seq_len, qk_rope_head_dim), already rotated; k and v are None.
    mla_impl "naive": k[layer] (B, n_heads, max_seq_len, qk_nope + qk_rope) and v[layer]
    (B, n_heads, max_seq_len, v_head_dim), the expanded per-head keys and values; c_kv and k_pe are None.

    >>> cfg = ModelConfig(vocab_size=8, n_layers=2, d_model=8, n_heads=2, d_ff=8, max_seq_len=16,
    ...                   kv_lora_rank=4, qk_nope_head_dim=2, qk_rope_head_dim=2, v_head_dim=3, mla_impl="absorb")
    >>> cache = MLACache(cfg, batch_size=1)
    >>> tuple(cache.c_kv[0].shape), tuple(cache.k_pe[0].shape), cache.k
    ((1, 16, 4), (1, 16, 2), None)
    """

    def __init__(self, config: ModelConfig, batch_size: int, max_seq_len: int | None = None,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32):
        if not config.is_mla:
            raise ValueError("MLACache needs an MLA config (kv_lora_rank set); for v1 attention use model.KVCache")
        self.max_seq_len = max_seq_len or config.max_seq_len
        if self.max_seq_len > config.max_seq_len:
            raise ValueError(f"MLACache max_seq_len={self.max_seq_len} exceeds the model's context "
                             f"{config.max_seq_len}; pass max_seq_len <= {config.max_seq_len}")
        self.n_layers, self.dtype = config.n_layers, dtype
        self.values_per_token = self.values_per_token_per_layer(config)
        B, S, L = batch_size, self.max_seq_len, config.n_layers

        def zeros(*shape):
            return [torch.zeros(shape, device=device, dtype=dtype) for _ in range(L)]
        self.c_kv = self.k_pe = self.k = self.v = None
        if config.mla_impl == "absorb":
            self.c_kv = zeros(B, S, config.kv_lora_rank)
            self.k_pe = zeros(B, S, config.qk_rope_head_dim)
        else:
            nh = config.n_heads
            self.k = zeros(B, nh, S, config.qk_nope_head_dim + config.qk_rope_head_dim)
            self.v = zeros(B, nh, S, config.v_head_dim)

    @staticmethod
    def values_per_token_per_layer(config: ModelConfig) -> int:
        """How many numbers the cache holds per token per layer under config.mla_impl.

        absorb: kv_lora_rank + qk_rope_head_dim; naive: n_heads * (qk_nope + qk_rope + v_head_dim).

        >>> v2 = ModelConfig.from_preset("deepseek-coder-v2", mla_impl="absorb")  # only the config
        >>> MLACache.values_per_token_per_layer(v2), 128 * (128 + 64 + 128)
        (576, 40960)
        """
        c = config
        if c.mla_impl == "absorb":
            return c.kv_lora_rank + c.qk_rope_head_dim
        return c.n_heads * (c.qk_nope_head_dim + c.qk_rope_head_dim + c.v_head_dim)

    def bytes_per_token(self) -> int:
        """Bytes of cache one token takes over all layers (values per token per layer * n_layers * element size).

        >>> cfg = ModelConfig(vocab_size=8, n_layers=2, d_model=8, n_heads=2, d_ff=8, max_seq_len=16,
        ...                   kv_lora_rank=4, qk_nope_head_dim=2, qk_rope_head_dim=2, v_head_dim=3, mla_impl="absorb")
        >>> MLACache(cfg, batch_size=1, dtype=torch.bfloat16).bytes_per_token()  # (4 + 2) * 2 layers * 2 bytes
        24
        """
        return self.values_per_token * self.n_layers * self.dtype.itemsize

    def update_latent(self, layer: int, start_pos: int, c_kv: torch.Tensor, k_pe: torch.Tensor):
        """mla_impl "absorb": store c_kv (B, T, kv_lora_rank) and k_pe (B, T, qk_rope) at positions start_pos..
        of `layer`; return that layer's c_kv (B, S, kv_lora_rank) and k_pe (B, S, qk_rope), S = start_pos + T.

        >>> cfg = ModelConfig(vocab_size=8, n_layers=1, d_model=8, n_heads=2, d_ff=8, max_seq_len=4,
        ...                   kv_lora_rank=2, qk_nope_head_dim=2, qk_rope_head_dim=2, v_head_dim=2, mla_impl="absorb")
        >>> cache = MLACache(cfg, batch_size=1)
        >>> c, p = cache.update_latent(0, 0, torch.ones(1, 2, 2), torch.zeros(1, 2, 2))
        >>> c, p = cache.update_latent(0, 2, torch.full((1, 1, 2), 5.0), torch.ones(1, 1, 2))
        >>> c[0].tolist(), tuple(p.shape)
        ([[1.0, 1.0], [1.0, 1.0], [5.0, 5.0]], (1, 3, 2))
        """
        if self.c_kv is None:
            raise ValueError("this MLACache holds per-head keys and values (mla_impl='naive'); "
                             "make it from a config with mla_impl='absorb' to cache the latents")
        # BEGIN ASSIGNMENT mla
        end = start_pos + c_kv.shape[1]
        self.c_kv[layer][:, start_pos:end] = c_kv
        self.k_pe[layer][:, start_pos:end] = k_pe
        return self.c_kv[layer][:, :end], self.k_pe[layer][:, :end]  # (B, S, kv_lora_rank), (B, S, qk_rope)
        # END ASSIGNMENT

    def update_kv(self, layer: int, start_pos: int, k: torch.Tensor, v: torch.Tensor):
        """mla_impl "naive": store k (B, nh, T, qk_nope + qk_rope) and v (B, nh, T, v_head_dim) at positions
        start_pos.. of `layer`; return that layer's keys and values up to S = start_pos + T.

        >>> cfg = ModelConfig(vocab_size=8, n_layers=1, d_model=8, n_heads=1, d_ff=8, max_seq_len=4,
        ...                   kv_lora_rank=2, qk_nope_head_dim=1, qk_rope_head_dim=2, v_head_dim=2)
        >>> cache = MLACache(cfg, batch_size=1)
        >>> k, v = cache.update_kv(0, 0, torch.ones(1, 1, 2, 3), torch.zeros(1, 1, 2, 2))
        >>> k, v = cache.update_kv(0, 2, torch.full((1, 1, 1, 3), 5.0), torch.ones(1, 1, 1, 2))
        >>> k[0, 0].tolist(), tuple(v.shape)
        ([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [5.0, 5.0, 5.0]], (1, 1, 3, 2))
        """
        if self.k is None:
            raise ValueError("this MLACache holds only the latents (mla_impl='absorb'); "
                             "make it from a config with mla_impl='naive' to cache per-head keys and values")
        end = start_pos + k.shape[2]
        self.k[layer][:, :, start_pos:end] = k
        self.v[layer][:, :, start_pos:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]  # (B, nh, S, qk_head), (B, nh, S, v_head)


class MLA(nn.Module):
    """Multi-head Latent Attention for block `layer`, with the "naive" or "absorb" path of config.mla_impl."""

    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        c = config
        self.layer, self.mla_impl, self.attn_impl = layer, c.mla_impl, c.attn_impl
        self.n_heads, self.kv_lora_rank, self.q_lora_rank = c.n_heads, c.kv_lora_rank, c.q_lora_rank
        self.qk_nope_head_dim, self.qk_rope_head_dim = c.qk_nope_head_dim, c.qk_rope_head_dim
        self.v_head_dim = c.v_head_dim
        self.qk_head_dim = c.qk_nope_head_dim + c.qk_rope_head_dim
        self.softmax_scale = softmax_scale(c, self.qk_head_dim)
        nh = c.n_heads
        if c.q_lora_rank is None:  # V2-Lite: W_Q straight from x
            self.wq = nn.Linear(c.d_model, nh * self.qk_head_dim, bias=False)
        else:  # V2: W_DQ, RMSNorm, then W_UQ and W_QR together
            self.wq_a = nn.Linear(c.d_model, c.q_lora_rank, bias=False)
            self.q_norm = RMSNorm(c.q_lora_rank, c.norm_eps)
            self.wq_b = nn.Linear(c.q_lora_rank, nh * self.qk_head_dim, bias=False)
        self.wkv_a = nn.Linear(c.d_model, c.kv_lora_rank + c.qk_rope_head_dim, bias=False)  # W_DKV, W_KR
        self.kv_norm = RMSNorm(c.kv_lora_rank, c.norm_eps)
        self.wkv_b = nn.Linear(c.kv_lora_rank, nh * (c.qk_nope_head_dim + c.v_head_dim), bias=False)  # W_UK, W_UV
        self.wo = nn.Linear(nh * c.v_head_dim, c.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                kv_cache: MLACache | None = None, start_pos: int = 0) -> torch.Tensor:
        """Causal MLA of x (B, T, C) at positions start_pos..start_pos+T-1 -> (B, T, C).

        Project x to each head's query [q_nope | q_pe] (wq; or wq_a, q_norm, wq_b) and to [c_kv | k_pe]
        (wkv_a); norm c_kv (kv_norm); rotate q_pe and k_pe (`apply_rope_interleaved`); attend with
        `_attend_naive` or `_attend_absorb` as mla_impl says; project the heads' outputs back with wo.

        Args:
            x: the normed residual stream (B, T, d_model).
            cos, sin: RoPE tables (T, qk_rope_head_dim) of these positions (`rope.rope_tables`).
            kv_cache: an MLACache made from a config with the same mla_impl, holding positions
                before start_pos; this call's positions are written into it. None: no cache.
            start_pos: position of x's first token; must be 0 without a cache.

        >>> cfg = ModelConfig(vocab_size=8, n_layers=1, d_model=8, n_heads=2, d_ff=8, max_seq_len=8,
        ...                   kv_lora_rank=4, qk_nope_head_dim=2, qk_rope_head_dim=2, v_head_dim=3)
        >>> torch.manual_seed(0) and None
        >>> naive = MLA(cfg, layer=0)
        >>> absorb = MLA(ModelConfig.from_dict({**cfg.to_dict(), "mla_impl": "absorb"}), layer=0)
        >>> absorb.load_state_dict(naive.state_dict())  # the same weights
        <All keys matched successfully>
        >>> from minicoder.rope import rope_tables
        >>> x, (cos, sin) = torch.randn(1, 3, 8), rope_tables(cfg, 3)
        >>> y = naive(x, cos, sin)
        >>> tuple(y.shape), torch.allclose(absorb(x, cos, sin), y, atol=1e-6)  # two paths, one function
        ((1, 3, 8), True)
        >>> x2 = x.clone(); x2[0, 2] = 0.0  # change the last token: the first two outputs stay
        >>> torch.equal(naive(x2, cos, sin)[:, :2], y[:, :2])
        True
        """
        if kv_cache is None and start_pos:
            raise ValueError(f"start_pos={start_pos} needs the MLACache that holds the earlier positions; "
                             f"pass kv_cache=")
        # BEGIN ASSIGNMENT mla
        B, T, _ = x.shape
        nh = self.n_heads
        # -- queries: [q_nope | q_pe] per head --
        q = self.wq(x) if self.q_lora_rank is None else self.wq_b(self.q_norm(self.wq_a(x)))  # (B, T, nh*qk_head)
        q = q.view(B, T, nh, self.qk_head_dim).transpose(1, 2)  # (B, nh, T, qk_head)
        q_nope, q_pe = q.split([self.qk_nope_head_dim, self.qk_rope_head_dim], dim=-1)  # (B, nh, T, nope|rope)
        q_pe = apply_rope_interleaved(q_pe, cos, sin)  # (B, nh, T, rope)
        # -- the latent c_kv and the shared rope key k_pe --
        kv = self.wkv_a(x)  # (B, T, d_c + rope)
        c_kv, k_pe = kv.split([self.kv_lora_rank, self.qk_rope_head_dim], dim=-1)  # (B, T, d_c), (B, T, rope)
        c_kv = self.kv_norm(c_kv)  # (B, T, d_c)
        k_pe = apply_rope_interleaved(k_pe, cos, sin)  # (B, T, rope)
        if self.mla_impl == "naive":
            y = self._attend_naive(q_nope, q_pe, c_kv, k_pe, kv_cache, start_pos)  # (B, nh, T, v_head)
        else:
            y = self._attend_absorb(q_nope, q_pe, c_kv, k_pe, kv_cache, start_pos)  # (B, nh, T, v_head)
        y = y.transpose(1, 2).reshape(B, T, nh * self.v_head_dim)  # (B, T, nh*v_head)
        return self.wo(y)  # (B, T, C)
        # END ASSIGNMENT

    def _attend_naive(self, q_nope, q_pe, c_kv, k_pe, kv_cache, start_pos):
        """Equations (10)-(18) as written: per-head keys and values from c_kv, then causal attention.

        Args:
            q_nope, q_pe: the queries' two parts, (B, nh, T, qk_nope_head_dim) and
                (B, nh, T, qk_rope_head_dim), q_pe rotated.
            c_kv: the latents (B, T, kv_lora_rank), through kv_norm. k_pe: the shared RoPE keys
                (B, T, qk_rope_head_dim), rotated.
            kv_cache: None, or an MLACache of mla_impl "naive": store this call's per-head keys and values
                with `update_kv` and attend to all S = start_pos + T positions it returns.
            start_pos: the position of the first query; query t sees keys 0..start_pos + t.

        Returns (B, nh, T, v_head_dim): head i's keys are [W_UK,i c_kv ; k_pe], its values W_UV,i c_kv
        (wkv_b's rows are [W_UK,i ; W_UV,i] head after head); o = softmax(q . k * softmax_scale) v, the
        softmax written out for attn_impl "naive", `F.scaled_dot_product_attention` for "sdpa".

        >>> cfg = ModelConfig(vocab_size=8, n_layers=1, d_model=4, n_heads=1, d_ff=4, max_seq_len=4,
        ...                   kv_lora_rank=2, qk_nope_head_dim=2, qk_rope_head_dim=2, v_head_dim=2)
        >>> mla = MLA(cfg, layer=0)  # softmax_scale = 1/sqrt(2 + 2) = 1/2
        >>> mla.wkv_b.weight.data = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 3.0]])  # k_C = c
        >>> c_kv = torch.tensor([[[1.0, 1.0], [3.0, -1.0]]])  # (B=1, T=2, d_c=2): v = W_UV c = (2, 3), (6, -3)
        >>> k_pe = torch.tensor([[[0.0, 0.0], [1.0, 0.0]]])   # (1, 2, rope)
        >>> q_nope, q_pe = torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)  # (B, nh, T, nope), (B, nh, T, rope)
        >>> q_pe[0, 0, 1, 0] = 2 * torch.tensor(3.0).log()  # query 1 scores its keys 0 and ln 3: weights 1/4, 3/4
        >>> y = mla._attend_naive(q_nope, q_pe, c_kv, k_pe, None, 0)
        >>> [[round(v, 4) for v in row] for row in y[0, 0].tolist()]  # query 0 sees key 0 only
        [[2.0, 3.0], [5.0, -1.5]]
        """
        # BEGIN ASSIGNMENT mla
        B, nh, T, _ = q_nope.shape
        kv = self.wkv_b(c_kv).view(B, T, nh, self.qk_nope_head_dim + self.v_head_dim)  # (B, T, nh, nope+v_head)
        kv = kv.transpose(1, 2)  # (B, nh, T, nope+v_head)
        k_nope, v = kv.split([self.qk_nope_head_dim, self.v_head_dim], dim=-1)  # (B, nh, T, nope|v_head)
        k_pe = k_pe[:, None].expand(B, nh, T, self.qk_rope_head_dim)  # (B, nh, T, rope): one key, every head
        q = torch.cat((q_nope, q_pe), dim=-1)  # (B, nh, T, qk_head)
        k = torch.cat((k_nope, k_pe), dim=-1)  # (B, nh, T, qk_head)
        if kv_cache is not None:
            k, v = kv_cache.update_kv(self.layer, start_pos, k, v)  # (B, nh, S, qk_head), (B, nh, S, v_head)
        mask = causal_mask(T, k.shape[2], start_pos, q.device)  # (T, S)
        if self.attn_impl == "sdpa":
            if start_pos == 0:
                return F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                      scale=self.softmax_scale)  # (B, nh, T, v_head)
            # is_causal aligns the mask top-left, which is wrong once the cache holds a prefix
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                                  scale=self.softmax_scale)  # (B, nh, T, v_head)
        scores = (q @ k.transpose(-2, -1)) * self.softmax_scale  # (B, nh, T, S)
        scores = scores.masked_fill(~mask, float("-inf"))  # (B, nh, T, S)
        p = F.softmax(scores.float(), dim=-1).to(q.dtype)  # (B, nh, T, S)
        return p @ v  # (B, nh, T, v_head)
        # END ASSIGNMENT

    def _attend_absorb(self, q_nope, q_pe, c_kv, k_pe, kv_cache, start_pos):
        """Attention against the latents: W_UK folded into the query, W_UV applied after the sum.

        Takes the arguments of `_attend_naive` and returns the same (B, nh, T, v_head_dim), but never forms a
        per-head key or value: scores are (W_UK,i^T q_nope) . c_kv + q_pe . k_pe, times softmax_scale; the
        output is W_UV,i applied to the softmax-weighted sum of c_kv. kv_cache: None, or an MLACache of
        mla_impl "absorb", which holds only c_kv and k_pe (`update_latent`).

        Subscripts: b batch, h head, t query, s key, c latent (kv_lora_rank), n nope, r rope, v value.

        >>> cfg = ModelConfig(vocab_size=8, n_layers=1, d_model=4, n_heads=1, d_ff=4, max_seq_len=4,
        ...                   kv_lora_rank=2, qk_nope_head_dim=2, qk_rope_head_dim=2, v_head_dim=2, mla_impl="absorb")
        >>> mla = MLA(cfg, layer=0)  # softmax_scale = 1/sqrt(2 + 2) = 1/2
        >>> mla.wkv_b.weight.data = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 3.0]])  # k_C = c
        >>> c_kv = torch.tensor([[[1.0, 1.0], [3.0, -1.0]]])  # (B=1, T=2, d_c=2): v = W_UV c = (2, 3), (6, -3)
        >>> k_pe = torch.tensor([[[0.0, 0.0], [1.0, 0.0]]])   # (1, 2, rope)
        >>> q_nope, q_pe = torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)  # (B, nh, T, nope), (B, nh, T, rope)
        >>> q_pe[0, 0, 1, 0] = 2 * torch.tensor(3.0).log()  # query 1 scores its keys 0 and ln 3: weights 1/4, 3/4
        >>> y = mla._attend_absorb(q_nope, q_pe, c_kv, k_pe, None, 0)
        >>> [[round(v, 4) for v in row] for row in y[0, 0].tolist()]  # the naive path's answer
        [[2.0, 3.0], [5.0, -1.5]]
        >>> cache = MLACache(cfg, batch_size=1)  # now position 0, then position 1 against the cached latents
        >>> _ = mla._attend_absorb(q_nope[:, :, :1], q_pe[:, :, :1], c_kv[:, :1], k_pe[:, :1], cache, 0)
        >>> y1 = mla._attend_absorb(q_nope[:, :, 1:], q_pe[:, :, 1:], c_kv[:, 1:], k_pe[:, 1:], cache, 1)
        >>> [round(v, 4) for v in y1[0, 0, 0].tolist()], cache.k  # the same output; no key in the cache
        ([5.0, -1.5], None)
        """
        # BEGIN ASSIGNMENT mla
        T = q_nope.shape[2]
        W = self.wkv_b.weight.view(self.n_heads, -1, self.kv_lora_rank)  # (nh, nope+v_head, d_c)
        W_UK, W_UV = W.split([self.qk_nope_head_dim, self.v_head_dim], dim=1)  # (nh, nope, d_c), (nh, v_head, d_c)
        if kv_cache is not None:
            c_kv, k_pe = kv_cache.update_latent(self.layer, start_pos, c_kv, k_pe)  # (B, S, d_c), (B, S, rope)
        q_lat = torch.einsum("bhtn,hnc->bhtc", q_nope, W_UK)  # (B, nh, T, d_c)
        scores = (torch.einsum("bhtc,bsc->bhts", q_lat, c_kv)
                  + torch.einsum("bhtr,bsr->bhts", q_pe, k_pe)) * self.softmax_scale  # (B, nh, T, S)
        mask = causal_mask(T, c_kv.shape[1], start_pos, q_nope.device)  # (T, S)
        scores = scores.masked_fill(~mask, float("-inf"))  # (B, nh, T, S)
        p = F.softmax(scores.float(), dim=-1).to(q_nope.dtype)  # (B, nh, T, S)
        o_lat = torch.einsum("bhts,bsc->bhtc", p, c_kv)  # (B, nh, T, d_c)
        return torch.einsum("bhtc,hvc->bhtv", o_lat, W_UV)  # (B, nh, T, v_head)
        # END ASSIGNMENT
