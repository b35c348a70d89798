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

DeepSeek-Coder-V2 (DeepSeek-AI, 2024, "DeepSeek-Coder-V2: Breaking the Barrier of Closed-Source
Models in Code Intelligence") is DeepSeek-V2's architecture (DeepSeek-AI, 2024, "DeepSeek-V2: A
Strong, Economical, and Efficient Mixture-of-Experts Language Model"). The same dataclass describes
it; three groups of fields switch its parts on:

- Multi-head Latent Attention (section 2.1, `minicoder/mla.py`) when `kv_lora_rank` is set:
  `q_lora_rank` (None: a plain query projection, as in V2-Lite), `qk_nope_head_dim`,
  `qk_rope_head_dim`, `v_head_dim`, and `mla_impl` ("naive" caches full per-head keys and values,
  "absorb" caches only the latent c_kv and the shared k_pe).
- DeepSeekMoE (section 2.2, `minicoder/moe.py`) when `n_routed_experts` > 0: the first
  `first_k_dense_replace` blocks keep the dense SwiGLU of width d_ff; the others have
  `n_shared_experts` always-on experts and `n_routed_experts` routed ones of width `moe_d_ff`, of
  which each token uses `n_activated_experts`, chosen by `topk_method` ("greedy" or
  "group_limited_greedy" over `n_group` groups keeping `topk_group`), weighted by
  `routed_scaling_factor` or renormalised (`norm_topk_prob`); the balance losses of section 2.2.3
  (`balance_alpha1`, `balance_alpha2`, `balance_alpha3` over `n_devices` devices, `m_devices` of
  which a token may reach); optional capacity-factor token dropping (section 2.2.4).
- YaRN (Peng et al., 2023; V2 appendix, `minicoder/rope.py`) when `rope_scaling_type` is "yarn":
  `rope_scaling_factor`, `rope_original_max_seq_len`, `rope_beta_fast`, `rope_beta_slow`,
  `rope_mscale`, `rope_mscale_all_dim`.

The presets `deepseek-coder-v2-lite` and `deepseek-coder-v2` are the released configs
(deepseek-ai/DeepSeek-Coder-V2-Lite-Base and DeepSeek-Coder-V2-Base, config.json); `tiny-moe` is a
CPU toy. `num_params()` gives 15.71B and 235.74B for them (the papers: 15.7B and 236B), and
`num_active_params()` 2.45B and 20.85B (the papers: 2.4B and 21B; see that method for what counts).

Left out: dropout (DeepSeek trains without it); V2's multi-token prediction (that is V3); the
sequence-wise balance loss of V3 (the aux-free bias of V3 is here, see `moe.py`).
"""

import dataclasses
from dataclasses import dataclass
from types import MappingProxyType

ATTN_IMPLS = ("naive", "sdpa")
MLA_IMPLS = ("naive", "absorb")
MOE_IMPLS = ("naive", "sorted")
TOPK_METHODS = ("greedy", "group_limited_greedy")
SCORING_FUNCS = ("softmax", "sigmoid")
ROPE_SCALING_TYPES = (None, "linear", "yarn")
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

# DeepSeek-Coder-V2 (config.json of deepseek-ai/DeepSeek-Coder-V2-Lite-Base and -V2-Base): YaRN from
# 4K to 160K positions, MLA with a 512 + 64 latent cache, DeepSeekMoE after the first dense block.
_DEEPSEEK_V2_YARN = dict(
    rope_theta=10000.0, rope_scaling_type="yarn", rope_scaling_factor=40.0, rope_original_max_seq_len=4096,
    rope_beta_fast=32.0, rope_beta_slow=1.0, rope_mscale=0.707, rope_mscale_all_dim=0.707,
    max_seq_len=163840,
)
_DEEPSEEK_V2 = dict(
    _DEEPSEEK_V2_YARN, vocab_size=102400, norm_eps=1e-6, tie_embeddings=False,
    kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128,
    n_shared_experts=2, n_activated_experts=6, first_k_dense_replace=1, balance_alpha1=0.001,
)
PRESETS = MappingProxyType({
    **PRESETS,
    "deepseek-coder-v2-lite": MappingProxyType(dict(
        _DEEPSEEK_V2, n_layers=27, d_model=2048, n_heads=16, d_ff=10944, q_lora_rank=None,
        n_routed_experts=64, moe_d_ff=1408, topk_method="greedy",
    )),
    "deepseek-coder-v2": MappingProxyType(dict(
        _DEEPSEEK_V2, n_layers=60, d_model=5120, n_heads=128, d_ff=12288, q_lora_rank=1536,
        n_routed_experts=160, moe_d_ff=1536, topk_method="group_limited_greedy", n_group=8, topk_group=3,
        routed_scaling_factor=16.0, balance_alpha1=0.003, balance_alpha2=0.05, balance_alpha3=0.02,
        n_devices=8, m_devices=3,
    )),
    # `make train-tiny-moe`: the V2 architecture at train-tiny's scale. MLA with a 64 + 16 latent,
    # 8 routed experts (2 per token) plus 1 shared, the first block dense; plain RoPE (V2 pre-trains
    # at 4K without YaRN too; chapter 5 stretches a tiny model with it).
    "tiny-moe": MappingProxyType(dict(
        vocab_size=4096, n_layers=4, d_model=192, n_heads=6, d_ff=512, max_seq_len=256,
        kv_lora_rank=64, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32,
        n_routed_experts=8, n_shared_experts=1, n_activated_experts=2, moe_d_ff=128, first_k_dense_replace=1,
        balance_alpha1=0.01,
    )),
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

    YaRN (used when rope_scaling_type is "yarn"; HF names in the `rope_scaling` block):
        rope_original_max_seq_len: the context the model was pre-trained with
            (`original_max_position_embeddings`); required for YaRN.
        rope_beta_fast, rope_beta_slow: pairs that turn more than beta_fast times over the original
            context keep their frequency, those under beta_slow times are interpolated by the
            factor, and a linear ramp blends the ones between (`beta_fast`, `beta_slow`).
        rope_mscale, rope_mscale_all_dim: YaRN's attention temperature 0.1 * m * ln(factor) + 1;
            the rope tables are scaled by mscale(rope_mscale) / mscale(rope_mscale_all_dim) and
            the softmax scale by mscale(rope_mscale_all_dim)^2, as DeepSeek-V2's code does.

    Multi-head Latent Attention (DeepSeek-V2 section 2.1), on when kv_lora_rank is set:
        kv_lora_rank: width d_c of the compressed key/value latent c_kv (V2: 512). None: the
            v1 grouped-query attention above.
        q_lora_rank: width d_c' of the compressed query (V2: 1536); None: queries are projected
            directly from x (V2-Lite).
        qk_nope_head_dim, qk_rope_head_dim: per-head query/key widths without and with RoPE
            (V2: 128 and 64; the rope key k_pe is one vector shared by every head).
        v_head_dim: per-head value width (V2: 128).
        mla_impl: "naive" (expand c_kv to per-head keys and values, cache those) or "absorb"
            (cache c_kv and k_pe only; W_UK folds into the query and W_UV into the output).

    DeepSeekMoE (DeepSeek-V2 section 2.2), on when n_routed_experts > 0:
        n_routed_experts: routed experts per MoE block (N_r; V2: 160).
        n_shared_experts: always-on experts (N_s), fused into one SwiGLU of width
            n_shared_experts * moe_d_ff.
        n_activated_experts: routed experts per token (K_r, HF `num_experts_per_tok`).
        moe_d_ff: hidden width of one expert (HF `moe_intermediate_size`).
        first_k_dense_replace: the first this-many blocks keep the dense SwiGLU of width d_ff.
        topk_method: "greedy" (top-K over all experts) or "group_limited_greedy" (keep the
            topk_group best of n_group groups, a group scored by its best expert, then top-K).
        n_group, topk_group: the groups for group-limited routing (V2: 8 and 3).
        scoring_func: "softmax" (V2) or "sigmoid" (DeepSeek-V3's affinities).
        routed_scaling_factor: multiplies the routed experts' gates (V2: 16).
        norm_topk_prob: renormalise each token's K gates to sum to 1 (and then no scaling
            factor, as DeepSeek's own code does; transformers ignores this flag).
        balance_alpha1, balance_alpha2, balance_alpha3: weights of the expert-level,
            device-level and communication balance losses (section 2.2.3; V2: 0.003, 0.05, 0.02).
        n_devices: D, the device groups the experts are split into for the device-level and
            communication losses; None: n_group.
        m_devices: M, how many devices a token may be sent to; None: topk_group when routing is
            group-limited, else n_devices.
        bias_update_speed: gamma of DeepSeek-V3's auxiliary-loss-free balancing: a per-expert
            bias added to the scores for choosing experts only, nudged by gamma after each
            training step against the load (0: off).
        capacity_factor: drop, at training time, the lowest-scoring tokens an expert receives
            beyond capacity_factor * (tokens * K / N_r) (section 2.2.4); None: never drop.
        moe_impl: "naive" (every expert on every token, masked) or "sorted" (tokens sorted by
            expert id, each expert runs on its slice).
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
    # YaRN
    rope_original_max_seq_len: int | None = None
    rope_beta_fast: float = 32.0
    rope_beta_slow: float = 1.0
    rope_mscale: float = 1.0
    rope_mscale_all_dim: float = 0.0
    # MLA
    kv_lora_rank: int | None = None
    q_lora_rank: int | None = None
    qk_nope_head_dim: int | None = None
    qk_rope_head_dim: int | None = None
    v_head_dim: int | None = None
    mla_impl: str = "naive"
    # DeepSeekMoE
    n_routed_experts: int = 0
    n_shared_experts: int = 0
    n_activated_experts: int = 0
    moe_d_ff: int | None = None
    first_k_dense_replace: int = 0
    topk_method: str = "greedy"
    n_group: int = 1
    topk_group: int = 1
    scoring_func: str = "softmax"
    routed_scaling_factor: float = 1.0
    norm_topk_prob: bool = False
    balance_alpha1: float = 0.0
    balance_alpha2: float = 0.0
    balance_alpha3: float = 0.0
    n_devices: int | None = None
    m_devices: int | None = None
    bias_update_speed: float = 0.0
    capacity_factor: float | None = None
    moe_impl: str = "sorted"

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
        if self.head_dim % 2 and not self.is_mla:
            raise ValueError(f"head_dim = d_model // n_heads = {self.head_dim} is odd, but RoPE rotates pairs; "
                             f"choose d_model and n_heads so that d_model // n_heads is even")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_kv_heads={self.n_kv_heads} does not divide n_heads={self.n_heads}; "
                             f"each KV head must serve a whole group of query heads, so pick a divisor of n_heads")
        if self.attn_impl not in ATTN_IMPLS:
            raise ValueError(f"unknown attn_impl {self.attn_impl!r}; choose one of: {', '.join(ATTN_IMPLS)}")
        if self.init_scheme not in INIT_SCHEMES:
            raise ValueError(f"unknown init_scheme {self.init_scheme!r}; choose one of: {', '.join(INIT_SCHEMES)}")
        if self.rope_scaling_type not in ROPE_SCALING_TYPES:
            raise ValueError(f"unknown rope_scaling_type {self.rope_scaling_type!r}; use None, 'linear' or 'yarn'")
        if self.rope_theta <= 0 or self.rope_scaling_factor <= 0 or self.norm_eps <= 0 or self.init_std <= 0:
            raise ValueError("rope_theta, rope_scaling_factor, norm_eps and init_std must all be positive; "
                             f"got {self.rope_theta}, {self.rope_scaling_factor}, {self.norm_eps}, {self.init_std}")
        if self.rope_scaling_type is None and self.rope_scaling_factor != 1.0:
            raise ValueError(f"rope_scaling_factor={self.rope_scaling_factor} has no effect without a scaling type; "
                             f"set rope_scaling_type='linear' or rope_scaling_factor=1.0")
        self._check_yarn()
        self._check_mla()
        self._check_moe()

    def _check_yarn(self):
        if self.rope_scaling_type != "yarn":
            return
        if self.rope_original_max_seq_len is None:
            raise ValueError("rope_scaling_type='yarn' needs rope_original_max_seq_len (HF "
                             "original_max_position_embeddings): set it to the pre-training context, e.g. 4096")
        if not isinstance(self.rope_original_max_seq_len, int) or self.rope_original_max_seq_len <= 0:
            raise ValueError(f"rope_original_max_seq_len must be a positive integer, got {self.rope_original_max_seq_len!r}")
        if not self.rope_beta_fast > self.rope_beta_slow > 0:
            raise ValueError(f"YaRN needs rope_beta_fast > rope_beta_slow > 0, got {self.rope_beta_fast} and "
                             f"{self.rope_beta_slow}; DeepSeek-V2 uses 32 and 1")

    def _check_mla(self):
        names = ("qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")
        if not self.is_mla:
            if self.q_lora_rank is not None:
                raise ValueError("q_lora_rank is set but kv_lora_rank is None: query compression exists only "
                                 "in MLA; set kv_lora_rank too, or q_lora_rank=None")
            return
        if self.mla_impl not in MLA_IMPLS:
            raise ValueError(f"unknown mla_impl {self.mla_impl!r}; choose one of: {', '.join(MLA_IMPLS)}")
        for name in ("kv_lora_rank", *names) + (("q_lora_rank",) if self.q_lora_rank is not None else ()):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"MLA (kv_lora_rank set) needs {name} to be a positive integer, got {value!r}; "
                                 f"set {name}=<a positive int> (DeepSeek-V2: 512 latent, 128 nope, 64 rope, 128 v)")
        if self.qk_rope_head_dim % 2:
            raise ValueError(f"qk_rope_head_dim={self.qk_rope_head_dim} is odd, but RoPE rotates pairs; "
                             f"make it even (DeepSeek-V2: 64)")

    def _check_moe(self):
        if self.n_routed_experts == 0:
            if self.n_shared_experts or self.n_activated_experts:
                raise ValueError("n_shared_experts/n_activated_experts are set but n_routed_experts is 0; "
                                 "set n_routed_experts > 0 for an MoE model, or leave the others at 0")
            return
        for name in ("n_routed_experts", "n_activated_experts", "moe_d_ff", "n_group", "topk_group"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"an MoE model (n_routed_experts > 0) needs {name} to be a positive integer, "
                                 f"got {value!r}; set {name}=<a positive int>")
        if self.n_shared_experts < 0 or not 0 <= self.first_k_dense_replace <= self.n_layers:
            raise ValueError(f"n_shared_experts must be >= 0 and first_k_dense_replace in 0..n_layers={self.n_layers}; "
                             f"got {self.n_shared_experts} and {self.first_k_dense_replace}")
        if self.n_activated_experts > self.n_routed_experts:
            raise ValueError(f"n_activated_experts={self.n_activated_experts} (top-k) is larger than "
                             f"n_routed_experts={self.n_routed_experts}; choose top-k <= the number of experts")
        if self.topk_method not in TOPK_METHODS:
            raise ValueError(f"unknown topk_method {self.topk_method!r}; choose one of: {', '.join(TOPK_METHODS)}")
        if self.scoring_func not in SCORING_FUNCS:
            raise ValueError(f"unknown scoring_func {self.scoring_func!r}; choose one of: {', '.join(SCORING_FUNCS)}")
        if self.moe_impl not in MOE_IMPLS:
            raise ValueError(f"unknown moe_impl {self.moe_impl!r}; choose one of: {', '.join(MOE_IMPLS)}")
        if self.n_routed_experts % self.n_group:
            raise ValueError(f"n_group={self.n_group} does not divide n_routed_experts={self.n_routed_experts}; "
                             f"every group must hold the same number of experts, so pick a divisor")
        if self.topk_group > self.n_group:
            raise ValueError(f"topk_group={self.topk_group} is larger than n_group={self.n_group}; "
                             f"keep at most n_group groups")
        if self.topk_method == "group_limited_greedy" and \
                self.topk_group * (self.n_routed_experts // self.n_group) < self.n_activated_experts:
            raise ValueError(f"topk_group={self.topk_group} groups of {self.n_routed_experts // self.n_group} experts "
                             f"hold fewer than n_activated_experts={self.n_activated_experts}; raise topk_group")
        D = self.balance_devices
        if self.n_routed_experts % D:
            raise ValueError(f"n_devices={D} does not divide n_routed_experts={self.n_routed_experts}; "
                             f"each device must hold the same number of experts")
        if not 1 <= self.balance_m_devices <= D:
            raise ValueError(f"m_devices={self.m_devices} must be between 1 and n_devices={D}")
        if min(self.balance_alpha1, self.balance_alpha2, self.balance_alpha3, self.bias_update_speed) < 0:
            raise ValueError("balance_alpha1/2/3 and bias_update_speed must be >= 0")
        if self.capacity_factor is not None and not self.capacity_factor > 0:
            raise ValueError(f"capacity_factor must be positive (V2 uses 1.0) or None, got {self.capacity_factor}")
        if self.routed_scaling_factor <= 0:
            raise ValueError(f"routed_scaling_factor must be positive, got {self.routed_scaling_factor}")

    @property
    def is_mla(self) -> bool:
        """True when attention is Multi-head Latent Attention (kv_lora_rank is set)."""
        return self.kv_lora_rank is not None

    @property
    def is_moe(self) -> bool:
        """True when blocks after the first first_k_dense_replace use DeepSeekMoE."""
        return self.n_routed_experts > 0

    @property
    def balance_devices(self) -> int:
        """D in the device-level and communication losses (n_devices, else n_group)."""
        return self.n_devices if self.n_devices is not None else self.n_group

    @property
    def balance_m_devices(self) -> int:
        """M in the communication loss (m_devices, else topk_group when group-limited, else D)."""
        if self.m_devices is not None:
            return self.m_devices
        return self.topk_group if self.topk_method == "group_limited_greedy" else self.balance_devices

    @property
    def rope_dim(self) -> int:
        """How many dimensions of a head RoPE turns: qk_rope_head_dim under MLA, else head_dim."""
        return self.qk_rope_head_dim if self.is_mla else self.head_dim

    def is_moe_layer(self, layer: int) -> bool:
        """Whether block `layer` (0-based) has DeepSeekMoE in place of the dense SwiGLU."""
        return self.is_moe and layer >= self.first_k_dense_replace

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

    def _attn_params(self) -> int:
        d = self.d_model
        if not self.is_mla:  # q and o are d x d, k and v are d x (n_kv_heads * head_dim)
            return 2 * d * d + 2 * d * self.n_kv_heads * self.head_dim
        nh, qk = self.n_heads, self.qk_nope_head_dim + self.qk_rope_head_dim
        if self.q_lora_rank is None:
            q = d * nh * qk  # W_Q
        else:
            q = d * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * nh * qk  # W_DQ, its norm, W_UQ
        kv = d * (self.kv_lora_rank + self.qk_rope_head_dim) + self.kv_lora_rank  # W_DKV with W_KR, norm
        kv += self.kv_lora_rank * nh * (self.qk_nope_head_dim + self.v_head_dim)  # W_UK and W_UV
        return q + kv + nh * self.v_head_dim * d  # W_O

    def _ffn_params(self, layer: int, active: bool = False) -> int:
        d = self.d_model
        if not self.is_moe_layer(layer):
            return 3 * d * self.d_ff
        routed = self.n_activated_experts if active else self.n_routed_experts
        gate = d * self.n_routed_experts
        return gate + 3 * d * self.moe_d_ff * (self.n_shared_experts + routed)

    def num_params(self) -> int:
        """Parameter count from the shapes alone (no tensors are allocated).

        Per block: attention (v1: q and o d x d, k and v d x (n_kv_heads * head_dim); MLA: the
        down- and up-projections, their RMSNorms and W_O), the MLP (three d x d_ff matrices, or
        the router plus every shared and routed expert), two RMSNorm weight vectors. Plus the
        embedding, the final norm, and the output head unless it is tied to the embedding.
        """
        d = self.d_model
        blocks = sum(self._attn_params() + self._ffn_params(i) + 2 * d for i in range(self.n_layers))
        head = 0 if self.tie_embeddings else self.vocab_size * d
        return blocks + self.vocab_size * d + d + head

    def num_active_params(self) -> int:
        """Parameters one token is multiplied by: every block's attention, norms, dense MLPs, router and
        shared experts, its n_activated_experts routed experts, the final norm and the output head.

        The input embedding is not counted: a token reads one row of it, it is not multiplied by it.
        This is how the papers' "activated parameters" come out (2.4B for V2-Lite, 21B for V2); with
        the embedding it would be 0.21B and 0.52B more. For a dense model it is num_params() minus
        the embedding (unless the embedding is tied to the head).
        """
        d = self.d_model
        blocks = sum(self._attn_params() + self._ffn_params(i, active=True) + 2 * d for i in range(self.n_layers))
        return blocks + d + self.vocab_size * d
