"""ModelConfig: every number that fixes a DeepSeek-Coder model, with named presets.

DeepSeek-Coder v1 (Guo et al., 2024, "DeepSeek-Coder: When the Large Language Model Meets
Programming", section 3.3 and table 2) is a LLaMA-style decoder: pre-norm blocks with RMSNorm
(eps 1e-6), a SwiGLU MLP, rotary position embeddings with theta 100,000 and linear scaling by 4
(16,384 positions), grouped-query attention at 33B (56 query heads sharing 8 key/value heads),
no biases, and separate (untied) input and output embeddings. The presets `deepseek-coder-1.3b`,
`-6.7b` and `-33b` reproduce the released models (config.json on the Hub); `num_params()` counts
their parameters from the config alone (no allocation), which gives 1.346B, 6.741B and 33.343B.

Those RoPE settings belong to the last stage only. Section 3.6: stage 1 pretrains with a 4K
context, RoPE base 10,000 and no scaling; an extra 1,000-step stage then switches to base
100,000 and linear scaling x4 for 16K. So each size has a second preset, `...-stage1`, with the
same weights' shapes and stage 1's RoPE and context (4,096), and DeepSeek LLM's initialization
(Bi et al., 2024, section 2.3: every weight normal with std 0.006). The released presets keep
the HF config.json's `initializer_range` (0.02): their weights are loaded, not initialized, and
the 16K stage starts from stage 1's weights (`TrainConfig.init_from`). The training recipes that
go with each stage are `TRAIN_PRESETS` in train.py.

    cfg = ModelConfig.from_preset("deepseek-coder-1.3b")
    cfg = ModelConfig.from_preset("tiny", vocab_size=tok.vocab_size, attn_impl="naive")

Left out: YaRN RoPE scaling (DeepSeek-V2; a later chapter adds it as another
`rope_scaling_type`), MLA and MoE fields (V2), dropout (DeepSeek trains without it).
"""

import dataclasses
from dataclasses import dataclass
from types import MappingProxyType

ATTN_IMPLS = ("naive", "sdpa")
ROPE_SCALING_TYPES = (None, "linear")
INIT_SCHEMES = ("gpt2", "deepseek")

# The released DeepSeek-Coder v1 models share everything but their widths and depths
# (config.json of deepseek-ai/deepseek-coder-{1.3b,6.7b,33b}-base).
_DEEPSEEK_CODER_V1 = dict(
    vocab_size=32256,
    max_seq_len=16384,
    rope_theta=100000.0,
    rope_scaling_type="linear",
    rope_scaling_factor=4.0,
    norm_eps=1e-6,
    tie_embeddings=False,
)

PRESETS = MappingProxyType({
    # `make train-tiny`: 3.2M parameters that train in 8 minutes on a 2-core CPU. Chosen by the sweep
    # in benchmarks/tiny_sweep.py: in the same minutes, this width beat d_model 256 (more steps
    # matter more than width here). 6 query heads share 3 KV heads, so GQA is exercised.
    # vocab_size must be overridden to the tokenizer's vocab_size (specials included).
    "tiny": MappingProxyType(dict(
        vocab_size=4096, n_layers=4, d_model=192, n_heads=6, n_kv_heads=3, d_ff=512,
        max_seq_len=256, rope_theta=100000.0,
    )),
    "deepseek-coder-1.3b": MappingProxyType(dict(
        _DEEPSEEK_CODER_V1, n_layers=24, d_model=2048, n_heads=16, n_kv_heads=16, d_ff=5504,
    )),
    "deepseek-coder-6.7b": MappingProxyType(dict(
        _DEEPSEEK_CODER_V1, n_layers=32, d_model=4096, n_heads=32, n_kv_heads=32, d_ff=11008,
    )),
    "deepseek-coder-33b": MappingProxyType(dict(
        _DEEPSEEK_CODER_V1, n_layers=62, d_model=7168, n_heads=56, n_kv_heads=8, d_ff=19200,
    )),
})

# Stage 1 (section 3.6): the same shapes, a 4K context, RoPE base 10,000 without scaling, and
# DeepSeek LLM's init. "deepseek-coder-1.3b-stage1" etc.; see the module docstring.
_STAGE1 = dict(max_seq_len=4096, rope_theta=10000.0, rope_scaling_type=None, rope_scaling_factor=1.0,
               init_scheme="deepseek", init_std=0.006)
PRESETS = MappingProxyType({
    **PRESETS,
    **{f"{name}-stage1": MappingProxyType({**PRESETS[name], **_STAGE1})
       for name in ("deepseek-coder-1.3b", "deepseek-coder-6.7b", "deepseek-coder-33b")},
})


@dataclass
class ModelConfig:
    """The shape and numerics of a DeepSeek-Coder-style decoder.

    Attributes:
        vocab_size: number of token ids, special tokens included; must equal the tokenizer's.
        n_layers: number of transformer blocks.
        d_model: width of the residual stream (HF `hidden_size`).
        n_heads: number of query heads; head_dim = d_model // n_heads.
        n_kv_heads: number of key/value heads (grouped-query attention); each is shared by
            n_heads // n_kv_heads query heads. None means n_heads (plain multi-head attention).
        d_ff: hidden width of the SwiGLU MLP (HF `intermediate_size`).
        max_seq_len: longest sequence the model accepts; RoPE tables are built this long
            (HF `max_position_embeddings`).
        rope_theta: RoPE base; pair i of a head turns by theta^(-2i/head_dim) per position.
        rope_scaling_type: None, or "linear" (positions divided by rope_scaling_factor, the
            "position interpolation" DeepSeek-Coder uses to reach 16K).
        rope_scaling_factor: the divisor for linear scaling; must be 1.0 when the type is None.
        norm_eps: epsilon inside RMSNorm's square root.
        tie_embeddings: share the input embedding matrix with the output head (DeepSeek: False).
        attn_impl: "naive" (explicit masked softmax and complex-number RoPE, for reading) or
            "sdpa" (torch's fused scaled_dot_product_attention); they compute the same function.
        init_scheme: how fresh weights are drawn (norm gains always start at 1):
            "deepseek": every matrix (embeddings, attention, MLP, head) normal(0, init_std),
                DeepSeek LLM's init (section 2.3, with init_std 0.006);
            "gpt2": the same, except that the two projections writing into the residual
                stream (attn.wo, ffn.w2) use init_std / sqrt(2 * n_layers), so the stream's
                variance does not grow with depth (GPT-2, Radford et al., 2019, with 0.02).
        init_std: standard deviation of the normal init (DeepSeek: 0.006; GPT-2: 0.02).
    """

    vocab_size: int
    n_layers: int
    d_model: int
    n_heads: int
    d_ff: int
    max_seq_len: int
    n_kv_heads: int | None = None
    rope_theta: float = 10000.0
    rope_scaling_type: str | None = None
    rope_scaling_factor: float = 1.0
    norm_eps: float = 1e-6
    tie_embeddings: bool = False
    attn_impl: str = "sdpa"
    init_scheme: str = "gpt2"
    init_std: float = 0.02

    def __post_init__(self):
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        for name in ("vocab_size", "n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff", "max_seq_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}; set {name}=<a positive int>")
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads={self.n_heads} does not divide d_model={self.d_model}; "
                             f"choose n_heads among the divisors of d_model or change d_model")
        if self.head_dim % 2:
            raise ValueError(f"head_dim = d_model // n_heads = {self.head_dim} is odd, but RoPE rotates pairs; "
                             f"choose d_model and n_heads so that d_model // n_heads is even")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_kv_heads={self.n_kv_heads} does not divide n_heads={self.n_heads}; "
                             f"each KV head must serve a whole group of query heads, so pick a divisor of n_heads")
        if self.attn_impl not in ATTN_IMPLS:
            raise ValueError(f"unknown attn_impl {self.attn_impl!r}; choose one of: {', '.join(ATTN_IMPLS)}")
        if self.init_scheme not in INIT_SCHEMES:
            raise ValueError(f"unknown init_scheme {self.init_scheme!r}; choose one of: {', '.join(INIT_SCHEMES)}")
        if self.rope_scaling_type == "yarn":
            raise ValueError("rope_scaling_type='yarn' is not implemented yet (it arrives with DeepSeek-V2); "
                             "use None or 'linear'")
        if self.rope_scaling_type not in ROPE_SCALING_TYPES:
            raise ValueError(f"unknown rope_scaling_type {self.rope_scaling_type!r}; use None or 'linear'")
        if self.rope_theta <= 0 or self.rope_scaling_factor <= 0 or self.norm_eps <= 0 or self.init_std <= 0:
            raise ValueError("rope_theta, rope_scaling_factor, norm_eps and init_std must all be positive; "
                             f"got {self.rope_theta}, {self.rope_scaling_factor}, {self.norm_eps}, {self.init_std}")
        if self.rope_scaling_type is None and self.rope_scaling_factor != 1.0:
            raise ValueError(f"rope_scaling_factor={self.rope_scaling_factor} has no effect without a scaling type; "
                             f"set rope_scaling_type='linear' or rope_scaling_factor=1.0")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "ModelConfig":
        """The named preset, with any field replaced by a keyword: from_preset("tiny", vocab_size=4105)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """Build from a plain dict (e.g. a checkpoint's config.json), rejecting unknown keys."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - fields)
        if unknown:
            raise ValueError(f"unknown ModelConfig field(s) {unknown}; valid fields are: {', '.join(sorted(fields))}")
        return cls(**d)

    def to_dict(self) -> dict:
        """A JSON-ready dict of every field; from_dict(to_dict()) gives an equal config."""
        return dataclasses.asdict(self)

    def num_params(self) -> int:
        """Parameter count from the shapes alone (no tensors are allocated).

        Per block: attention q and o are d x d, k and v are d x (n_kv_heads * head_dim); the MLP
        has three d x d_ff matrices; two RMSNorm weight vectors. Plus the embedding, the final
        norm, and the output head unless it is tied to the embedding.
        """
        d, kv = self.d_model, self.n_kv_heads * self.head_dim
        attn = 2 * d * d + 2 * d * kv
        mlp = 3 * d * self.d_ff
        block = attn + mlp + 2 * d
        embed = self.vocab_size * d
        head = 0 if self.tie_embeddings else self.vocab_size * d
        return self.n_layers * block + embed + d + head
