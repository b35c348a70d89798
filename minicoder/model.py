"""The DeepSeek-Coder decoder: v1 (LLaMA-style) and V2 (MLA + DeepSeekMoE), built from one ModelConfig.

DeepSeek-Coder (Guo et al., 2024, section 3.3) follows LLaMA (Touvron et al., 2023, section 2.2):

    h = embed(idx)                                    # no position embedding here
    for each block:
        h = h + attn(RMSNorm(h))                      # pre-norm; RoPE on q and k inside attn
        h = h + w2(silu(w1(RMSNorm(h))) * w3(...))    # SwiGLU MLP
    logits = head(RMSNorm(h))                         # head not tied to embed

Attention is causal with grouped-query attention (Ainslie et al., 2023): n_kv_heads key/value
heads, each shared by n_heads // n_kv_heads query heads. Nothing has a bias.

DeepSeek-Coder-V2 (DeepSeek-V2's architecture) keeps this skeleton and swaps two parts, chosen by
the config alone: attention becomes Multi-head Latent Attention (`minicoder/mla.py`) when
`kv_lora_rank` is set, and every block from `first_k_dense_replace` on has DeepSeekMoE
(`minicoder/moe.py`) in place of the SwiGLU when `n_routed_experts` > 0. The MoE blocks report
`RouterStats` (balance losses, expert loads): `model(idx, return_router_stats=True)` returns them
beside the logits, and training adds their `balance_loss`.

`ModelConfig.attn_impl` picks the attention path: "naive" writes the masked softmax out
(`attention_naive`, with `causal_mask` and `repeat_kv` for GQA) and uses the complex-number RoPE;
"sdpa" calls `F.scaled_dot_product_attention` and the rotate-half RoPE.
They compute the same function (tests/test_model.py holds them equal).

Decoding uses a cache from `make_cache(config, batch_size)`: `KVCache` (preallocated keys and
values per layer) for v1, `mla.MLACache` (the latent c_kv and k_pe, or full keys and values under
mla_impl "naive") for V2. `model(idx, cache, start_pos)` writes positions start_pos.. into the
cache and attends over everything before them, so a prompt is processed once ("prefill") and each
new token costs one position.

Fresh weights (`ModelConfig.init_scheme`): "deepseek" draws every matrix from normal(0, init_std),
as DeepSeek LLM does with 0.006 (section 2.3); "gpt2" also shrinks the two residual-stream output
projections (wo, w2, in every expert too) by 1/sqrt(2 * n_layers). RMSNorm gains start at 1.

Parameter names follow Meta's LLaMA and DeepSeek-V3's inference code (wq, wk, wv, wo, w1, w2, w3;
wq_a, wkv_a, wkv_b, gate, experts, shared_experts); `minicoder/hf.py` maps them to HF's names.

Left out: dropout (DeepSeek trains without it), attention masks for padded batches, tensor and
expert parallelism.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from minicoder.config import ModelConfig
from minicoder.layers import RMSNorm, causal_mask  # noqa: F401 (re-exported: model.RMSNorm, model.causal_mask)
from minicoder.mla import MLA, MLACache
from minicoder.moe import Gate, MoE
from minicoder.rope import apply_rope, apply_rope_naive, rope_tables


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
        """Store k, v (B, n_kv, T, hd) at positions start_pos.. of `layer`; return all keys and values
        of that layer up to start_pos + T (the earlier ones and these), each (B, n_kv, start_pos + T, hd).

        >>> cache = KVCache(ModelConfig(vocab_size=8, n_layers=1, d_model=4, n_heads=2, n_kv_heads=1,
        ...                             d_ff=8, max_seq_len=4), batch_size=1)
        >>> k, v = cache.update(0, 0, torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
        >>> k, v = cache.update(0, 2, torch.full((1, 1, 1, 2), 5.0), torch.ones(1, 1, 1, 2))
        >>> k[0, 0].tolist(), tuple(v.shape)
        ([[1.0, 1.0], [1.0, 1.0], [5.0, 5.0]], (1, 1, 3, 2))
        """
        # BEGIN ASSIGNMENT transformer
        end = start_pos + k.shape[2]
        self.k[layer][:, :, start_pos:end] = k
        self.v[layer][:, :, start_pos:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]  # (B, n_kv, S, hd) each
        # END ASSIGNMENT


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """Grouped-query attention: (B, n_kv, S, hd) -> (B, n_kv * n_rep, S, hd), each KV head repeated
    n_rep times in a row, so KV head j serves query heads j * n_rep .. j * n_rep + n_rep - 1.

    >>> x = torch.tensor([10.0, 20.0]).view(1, 2, 1, 1)  # two KV heads
    >>> repeat_kv(x, 3).flatten().tolist()
    [10.0, 10.0, 10.0, 20.0, 20.0, 20.0]
    """
    # BEGIN ASSIGNMENT transformer
    return x.repeat_interleave(n_rep, dim=1)  # (B, n_kv * n_rep, S, hd)
    # END ASSIGNMENT


def attention_naive(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(hd), masked) v, written out (Vaswani et al., 2017, equation 1).

    q (B, nh, T, hd), k and v (B, nh, S, hd) (KV heads already repeated), mask (T, S) boolean,
    True where a query may see a key. Masked scores become -inf before the softmax, so they get
    weight 0. The softmax runs in float32 and the weights are cast back to q's dtype. Returns
    (B, nh, T, hd). This is the path to read; `F.scaled_dot_product_attention` is the fast one
    and must not be called here.

    >>> q = torch.tensor([[[[1.0], [1.0]]]])          # B=1, nh=1, T=2, hd=1
    >>> k = torch.tensor([[[[0.0], [math.log(3)]]]])   # scores 0 and ln 3: weights 1/4 and 3/4
    >>> v = torch.tensor([[[[4.0], [8.0]]]])
    >>> [round(x, 4) for x in attention_naive(q, k, v, causal_mask(2, 2)).flatten().tolist()]
    [4.0, 7.0]
    """
    # BEGIN ASSIGNMENT transformer
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])  # (B, nh, T, S)
    att = att.masked_fill(~mask, float("-inf"))  # (B, nh, T, S)
    att = F.softmax(att.float(), dim=-1).to(q.dtype)  # (B, nh, T, S)
    return att @ v  # (B, nh, T, hd)
    # END ASSIGNMENT


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
        """Causal self-attention of x (B, T, C) at positions start_pos..start_pos+T-1 -> (B, T, C).

        Project x to q (n_heads), k and v (n_kv_heads heads each), split into heads (B, heads, T, hd);
        turn q and k by RoPE with the tables cos, sin (T, hd) of these positions (`apply_rope_naive`
        when attn_impl is "naive", else `apply_rope`); with a cache, store k and v at start_pos with
        `kv_cache.update(self.layer, ...)` and attend over everything it returns. Repeat the KV heads
        for GQA (`repeat_kv`), build `causal_mask(T, S, start_pos)` and attend: "naive" calls
        `attention_naive`; "sdpa" calls `F.scaled_dot_product_attention` (is_causal=True is right only
        when start_pos is 0: it aligns the mask top-left; otherwise pass the mask). Merge the heads
        back to (B, T, C) and project with wo.

        >>> torch.manual_seed(0) and None
        >>> cfg = ModelConfig(vocab_size=8, n_layers=1, d_model=8, n_heads=4, n_kv_heads=2, d_ff=8,
        ...                   max_seq_len=4, attn_impl="naive")
        >>> attn, cos, sin = Attention(cfg, layer=0), torch.ones(3, 2), torch.zeros(3, 2)  # no rotation
        >>> x = torch.randn(1, 3, 8)
        >>> y = attn(x, cos, sin)
        >>> tuple(y.shape)
        (1, 3, 8)
        >>> x2 = x.clone(); x2[0, 2] = 0.0  # change the last token: the first two outputs stay
        >>> torch.allclose(attn(x2, cos, sin)[:, :2], y[:, :2]), torch.allclose(attn(x2, cos, sin)[:, 2], y[:, 2])
        (True, False)
        """
        # BEGIN ASSIGNMENT transformer
        B, T, C = x.shape
        q = self.wq(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, nh, T, hd)
        k = self.wk(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, n_kv, T, hd)
        v = self.wv(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, n_kv, T, hd)
        rope = apply_rope_naive if self.attn_impl == "naive" else apply_rope
        q, k = rope(q, cos, sin), rope(k, cos, sin)  # shapes unchanged
        if kv_cache is not None:
            k, v = kv_cache.update(self.layer, start_pos, k, v)  # (B, n_kv, S, hd), S = start_pos + T
        k = repeat_kv(k, self.n_heads // self.n_kv_heads)  # (B, nh, S, hd)
        v = repeat_kv(v, self.n_heads // self.n_kv_heads)  # (B, nh, S, hd)
        mask = causal_mask(T, k.shape[2], start_pos, x.device)  # (T, S)
        if self.attn_impl == "naive":
            y = attention_naive(q, k, v, mask)  # (B, nh, T, hd)
        elif start_pos == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hd)
        else:  # is_causal aligns the mask top-left, which is wrong once the cache holds a prefix
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, nh, T, hd)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        return self.wo(y)  # (B, T, C)
        # END ASSIGNMENT


class FeedForward(nn.Module):
    """SwiGLU (Shazeer, 2020): w2(silu(w1 x) * w3 x). HF names: w1 gate_proj, w3 up_proj, w2 down_proj."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.w1 = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.w2 = nn.Linear(config.d_ff, config.d_model, bias=False)
        self.w3 = nn.Linear(config.d_model, config.d_ff, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """w2(silu(w1 x) * w3 x) for x (..., d_model) -> (..., d_model); silu(z) = z * sigmoid(z).

        >>> ffn = FeedForward(ModelConfig(vocab_size=8, n_layers=1, d_model=2, n_heads=1, d_ff=2, max_seq_len=4))
        >>> for w in (ffn.w1, ffn.w2, ffn.w3):
        ...     w.weight.data = torch.eye(2)
        >>> [round(v, 4) for v in ffn(torch.tensor([1.0, -2.0])).tolist()]  # [silu(1) * 1, silu(-2) * -2]
        [0.7311, 0.4768]
        """
        # BEGIN ASSIGNMENT transformer
        return self.w2(F.silu(self.w1(x)) * self.w3(x))  # (B, T, d_ff) inside, (B, T, C) out
        # END ASSIGNMENT


class Block(nn.Module):
    """Pre-norm block: h + attn(norm(h)), then h + ffn(norm(h)).

    attn is `Attention` (v1) or `mla.MLA` (config.kv_lora_rank set); ffn is `FeedForward`, or
    `moe.MoE` when config.is_moe_layer(layer).
    """

    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        self.attn_norm = RMSNorm(config.d_model, config.norm_eps)
        self.attn = MLA(config, layer) if config.is_mla else Attention(config, layer)
        self.ffn_norm = RMSNorm(config.d_model, config.norm_eps)
        self.ffn = MoE(config) if config.is_moe_layer(layer) else FeedForward(config)

    def forward(self, x, cos, sin, kv_cache=None, start_pos=0, router_stats: list | None = None):
        """x (B, T, C) -> (B, T, C). An MoE block appends its RouterStats to `router_stats` when given."""
        x = x + self.attn(self.attn_norm(x), cos, sin, kv_cache, start_pos)  # (B, T, C)
        if isinstance(self.ffn, FeedForward):
            return x + self.ffn(self.ffn_norm(x))  # (B, T, C)
        y, stats = self.ffn(self.ffn_norm(x))  # (B, T, C), RouterStats
        if router_stats is not None:
            router_stats.append(stats)
        return x + y  # (B, T, C)


def make_cache(config: ModelConfig, batch_size: int, max_seq_len: int | None = None,
               device: torch.device | str | None = None, dtype: torch.dtype = torch.float32):
    """The decoding cache this config's attention needs: `KVCache` for v1, `mla.MLACache` for MLA."""
    if config.is_mla:
        return MLACache(config, batch_size, max_seq_len, device=device, dtype=dtype)
    return KVCache(config, batch_size, max_seq_len, device=device, dtype=dtype)


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
            for name, w in self.layers.named_parameters():
                if name.endswith(("attn.wo.weight", "w2.weight")):  # w2 of the MLP, every expert, the shared experts
                    nn.init.normal_(w, mean=0.0, std=config.init_std / math.sqrt(2 * config.n_layers))

    def init_rope_tables(self, device: torch.device | str | None = None):
        """(Re)compute the RoPE cos/sin tables, e.g. after building the model on the meta device.

        They derive from the config, so they are buffers that are not saved (persistent=False).
        """
        cos, sin = rope_tables(self.config)  # (max_seq_len, rope_dim) each; rope_dim = hd, or qk_rope under MLA
        self.register_buffer("rope_cos", cos.to(device), persistent=False)
        self.register_buffer("rope_sin", sin.to(device), persistent=False)

    def _init_weights(self, module: nn.Module):
        if isinstance(module, (nn.Linear, nn.Embedding, Gate)):  # the MoE router is a matrix too
            nn.init.normal_(module.weight, mean=0.0, std=self.config.init_std)

    def num_params(self) -> int:
        """Parameters actually allocated (a tied matrix counted once); equals config.num_params()."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, kv_cache=None, start_pos: int = 0, return_router_stats: bool = False):
        """Logits (B, T, vocab_size) float32 for ids idx (B, T) at positions start_pos..start_pos+T-1.

        Without a cache, start_pos must be 0. With one (`make_cache`), the keys and values of
        earlier positions come from the cache, and this call's are added to it. With
        return_router_stats, returns (logits, stats): one `moe.RouterStats` per MoE block, in
        order (an empty list for a dense model).
        """
        B, T = idx.shape
        if start_pos + T > self.config.max_seq_len:
            raise ValueError(f"positions up to {start_pos + T} exceed the model's context "
                             f"{self.config.max_seq_len}; shorten the input or raise max_seq_len")
        if kv_cache is None and start_pos != 0:
            raise ValueError("start_pos > 0 needs the kv_cache that holds the earlier positions; pass kv_cache=")
        if kv_cache is not None and start_pos + T > kv_cache.max_seq_len:
            raise ValueError(f"positions up to {start_pos + T} do not fit the KV cache ({kv_cache.max_seq_len}); "
                             f"make a cache with a larger max_seq_len")
        cos = self.rope_cos[start_pos:start_pos + T]  # (T, rope_dim)
        sin = self.rope_sin[start_pos:start_pos + T]  # (T, rope_dim)
        stats: list = []
        x = self.embed(idx)  # (B, T, C)
        for block in self.layers:
            x = block(x, cos, sin, kv_cache, start_pos, stats)  # (B, T, C)
        x = self.norm(x)  # (B, T, C)
        logits = self.head(x).float()  # (B, T, vocab_size)
        return (logits, stats) if return_router_stats else logits

    def with_mla_impl(self, mla_impl: str) -> "Transformer":
        """This model with MLA's other path (the same weights, shared, not copied); itself when it already
        uses `mla_impl` or has no MLA. Generation wants "absorb" (the latent cache), training "naive"."""
        if not self.config.is_mla or self.config.mla_impl == mla_impl:
            return self
        config = ModelConfig.from_dict({**self.config.to_dict(), "mla_impl": mla_impl})
        with torch.device("meta"):
            other = Transformer(config)
        other.load_state_dict(self.state_dict(), assign=True)
        if config.tie_embeddings:  # assign=True gave the head its own Parameter; share it again
            other.head.weight = other.embed.weight
        other.init_rope_tables(self.rope_cos.device)
        other.trained_with_bos = self.trained_with_bos
        return other.train(self.training)

    def balance_loss(self, stats: list) -> torch.Tensor:
        """The sum of the MoE blocks' balance losses (section 2.2.3), a scalar to add to the LM loss."""
        if not stats:
            return torch.zeros((), device=self.embed.weight.device)
        return torch.stack([s.balance_loss for s in stats]).sum()
