"""The DeepSeek-Coder v1 decoder: a LLaMA-style transformer.

DeepSeek-Coder (Guo et al., 2024, section 3.3) follows LLaMA (Touvron et al., 2023, section 2.2):

    h = embed(idx)                                    # no position embedding here
    for each block:
        h = h + attn(RMSNorm(h))                      # pre-norm; RoPE on q and k inside attn
        h = h + w2(silu(w1(RMSNorm(h))) * w3(...))    # SwiGLU MLP
    logits = head(RMSNorm(h))                         # head not tied to embed

Attention is causal with grouped-query attention (Ainslie et al., 2023): n_kv_heads key/value
heads, each shared by n_heads // n_kv_heads query heads. Nothing has a bias.

`ModelConfig.attn_impl` picks the attention path: "naive" writes the masked softmax out and uses
the complex-number RoPE; "sdpa" calls `F.scaled_dot_product_attention` and the rotate-half RoPE.
They compute the same function (tests/test_model.py holds them equal).

Decoding uses `KVCache`: preallocated keys and values per layer. `model(idx, kv_cache, start_pos)`
writes the keys/values of positions start_pos.. into the cache and attends over everything
before them, so a prompt is processed once ("prefill") and each new token costs one position.

Fresh weights (`ModelConfig.init_scheme`): "deepseek" draws every matrix from normal(0, init_std),
as DeepSeek LLM does with 0.006 (section 2.3); "gpt2" also shrinks the two residual-stream output
projections (wo, w2) by 1/sqrt(2 * n_layers). RMSNorm gains start at 1.

Parameter names follow Meta's LLaMA and DeepSeek-V3's inference code (wq, wk, wv, wo, w1, w2, w3);
`minicoder/hf.py` maps them to HF's names (q_proj, ..., gate_proj, up_proj, down_proj).

Left out: dropout (DeepSeek trains without it), attention masks for padded batches, tensor
parallelism, MLA and MoE (DeepSeek-V2, later chapters).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from minicoder.config import ModelConfig
from minicoder.rope import apply_rope, apply_rope_naive, rope_cos_sin


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight (Zhang & Sennrich, 2019); computed in float32."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()  # (B, T, C)
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)  # (B, T, C)
        return self.weight * xf.to(x.dtype)  # (B, T, C)


class KVCache:
    """Keys and values of every layer for positions 0..max_seq_len-1, filled as decoding goes.

    k[layer] and v[layer] are (B, n_kv_heads, max_seq_len, head_dim). Storing the KV heads
    (not the repeated query-head copies) is what makes GQA cheap at inference: the 33B model
    caches 8 heads instead of 56.
    """

    def __init__(self, config: ModelConfig, batch_size: int, max_seq_len: int | None = None,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32):
        self.max_seq_len = max_seq_len or config.max_seq_len
        if self.max_seq_len > config.max_seq_len:
            raise ValueError(f"KVCache max_seq_len={self.max_seq_len} exceeds the model's context "
                             f"{config.max_seq_len}; pass max_seq_len <= {config.max_seq_len}")
        shape = (batch_size, config.n_kv_heads, self.max_seq_len, config.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layers)]

    def update(self, layer: int, start_pos: int, k: torch.Tensor, v: torch.Tensor):
        """Store k, v (B, n_kv, T, hd) at start_pos..; return all keys/values up to start_pos + T."""
        end = start_pos + k.shape[2]
        self.k[layer][:, :, start_pos:end] = k
        self.v[layer][:, :, start_pos:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]  # (B, n_kv, S, hd) each


class Attention(nn.Module):
    """Causal self-attention with RoPE and grouped-query attention."""

    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        self.layer = layer
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        self.attn_impl = config.attn_impl
        d, kv = config.d_model, config.n_kv_heads * config.head_dim
        self.wq = nn.Linear(d, d, bias=False)
        self.wk = nn.Linear(d, kv, bias=False)
        self.wv = nn.Linear(d, kv, bias=False)
        self.wo = nn.Linear(d, d, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                kv_cache: KVCache | None = None, start_pos: int = 0) -> torch.Tensor:
        B, T, C = x.shape
        q = self.wq(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, nh, T, hd)
        k = self.wk(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, n_kv, T, hd)
        v = self.wv(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, n_kv, T, hd)
        rope = apply_rope_naive if self.attn_impl == "naive" else apply_rope
        q, k = rope(q, cos, sin), rope(k, cos, sin)  # shapes unchanged
        if kv_cache is not None:
            k, v = kv_cache.update(self.layer, start_pos, k, v)  # (B, n_kv, S, hd), S = start_pos + T
        # GQA: each KV head serves n_heads // n_kv_heads consecutive query heads.
        k = k.repeat_interleave(self.n_heads // self.n_kv_heads, dim=1)  # (B, nh, S, hd)
        v = v.repeat_interleave(self.n_heads // self.n_kv_heads, dim=1)  # (B, nh, S, hd)
        S = k.shape[2]
        # Query t sits at position start_pos + t and may see keys at positions <= its own.
        mask = torch.arange(S, device=x.device)[None, :] <= start_pos + torch.arange(T, device=x.device)[:, None]  # (T, S)
        if self.attn_impl == "naive":
            att = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)  # (B, nh, T, S)
            att = att.masked_fill(~mask, float("-inf"))  # (B, nh, T, S)
            att = F.softmax(att.float(), dim=-1).to(q.dtype)  # (B, nh, T, S)
            y = att @ v  # (B, nh, T, hd)
        elif start_pos == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hd)
        else:  # is_causal aligns the mask top-left, which is wrong once the cache holds a prefix
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, nh, T, hd)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        return self.wo(y)  # (B, T, C)


class FeedForward(nn.Module):
    """SwiGLU (Shazeer, 2020): w2(silu(w1 x) * w3 x). HF names: w1 gate_proj, w3 up_proj, w2 down_proj."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.w1 = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.w2 = nn.Linear(config.d_ff, config.d_model, bias=False)
        self.w3 = nn.Linear(config.d_model, config.d_ff, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))  # (B, T, d_ff) inside, (B, T, C) out


class Block(nn.Module):
    """Pre-norm block: h + attn(norm(h)), then h + ffn(norm(h))."""

    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        self.attn_norm = RMSNorm(config.d_model, config.norm_eps)
        self.attn = Attention(config, layer)
        self.ffn_norm = RMSNorm(config.d_model, config.norm_eps)
        self.ffn = FeedForward(config)

    def forward(self, x, cos, sin, kv_cache=None, start_pos=0):
        x = x + self.attn(self.attn_norm(x), cos, sin, kv_cache, start_pos)  # (B, T, C)
        return x + self.ffn(self.ffn_norm(x))  # (B, T, C)


class Transformer(nn.Module):
    """`Transformer(config)(idx)` maps token ids (B, T) to next-token logits (B, T, vocab) in float32."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.layers = nn.ModuleList(Block(config, i) for i in range(config.n_layers))
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.head.weight = self.embed.weight
        self.init_rope_tables()
        # Whether prompts should start with BOS, as this model's training documents did. The loaders
        # set it (load_checkpoint: False, minicoder's documents are separated by EOS only; from_hf:
        # True, DeepSeek's tokenizer prepends BOS); None (unknown) counts as False. generate.prompt_bos.
        self.trained_with_bos: bool | None = None
        if self.embed.weight.is_meta:  # shapes only (hf.from_hf loads the weights); nothing to draw
            return
        self.apply(self._init_weights)
        if config.init_scheme == "gpt2":
            # GPT-2: the projections that write into the residual stream are scaled down so that
            # the stream's variance does not grow with depth (2 writes per block). DeepSeek LLM
            # ("deepseek") draws them like every other matrix.
            for block in self.layers:
                for w in (block.attn.wo.weight, block.ffn.w2.weight):
                    nn.init.normal_(w, mean=0.0, std=config.init_std / math.sqrt(2 * config.n_layers))

    def init_rope_tables(self, device: torch.device | str | None = None):
        """(Re)compute the RoPE cos/sin tables, e.g. after building the model on the meta device.

        They derive from the config, so they are buffers that are not saved (persistent=False).
        """
        c = self.config
        cos, sin = rope_cos_sin(c.head_dim, c.max_seq_len, c.rope_theta,
                                c.rope_scaling_type, c.rope_scaling_factor)  # (max_seq_len, hd) each
        self.register_buffer("rope_cos", cos.to(device), persistent=False)
        self.register_buffer("rope_sin", sin.to(device), persistent=False)

    def _init_weights(self, module: nn.Module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.init_std)

    def num_params(self) -> int:
        """Parameters actually allocated (a tied matrix counted once); equals config.num_params()."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, kv_cache: KVCache | None = None, start_pos: int = 0) -> torch.Tensor:
        """Logits (B, T, vocab_size) float32 for ids idx (B, T) at positions start_pos..start_pos+T-1.

        Without a cache, start_pos must be 0. With one, the keys and values of earlier positions
        come from the cache, and this call's are added to it.
        """
        B, T = idx.shape
        if start_pos + T > self.config.max_seq_len:
            raise ValueError(f"positions up to {start_pos + T} exceed the model's context "
                             f"{self.config.max_seq_len}; shorten the input or raise max_seq_len")
        if kv_cache is None and start_pos != 0:
            raise ValueError("start_pos > 0 needs the kv_cache that holds the earlier positions; pass kv_cache=")
        if kv_cache is not None and start_pos + T > kv_cache.max_seq_len:
            raise ValueError(f"positions up to {start_pos + T} do not fit the KV cache ({kv_cache.max_seq_len}); "
                             f"make a KVCache with a larger max_seq_len")
        cos = self.rope_cos[start_pos:start_pos + T]  # (T, hd)
        sin = self.rope_sin[start_pos:start_pos + T]  # (T, hd)
        x = self.embed(idx)  # (B, T, C)
        for block in self.layers:
            x = block(x, cos, sin, kv_cache, start_pos)  # (B, T, C)
        x = self.norm(x)  # (B, T, C)
        return self.head(x).float()  # (B, T, vocab_size)
