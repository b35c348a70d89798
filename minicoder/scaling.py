"""Scaling arithmetic: FLOPs per token, MFU, memory per GPU and GPU-hours, from a ModelConfig alone.

Before renting 8 GPUs, know what one step costs and whether it fits. Everything here is arithmetic
on the config's shapes (no torch; `minicoder plan` prints it):

FLOPs (Kaplan et al., 2020, section 2.1; Hoffmann et al., 2022, "Chinchilla", appendix F; PaLM,
Chowdhery et al., 2022, appendix B). A matmul with an (m x n) weight costs 2mn FLOPs per token
forward and twice that backward (the gradients of its input and of its weight), so

    training FLOPs / token = 6 N  +  6 L T (d_qk + d_v)        forward only: 2 N + 2 L T (d_qk + d_v)

N counts the parameters one token is multiplied by: `ModelConfig.num_active_params()` (the output
head, every block's matrices, the MoE router, the shared and the K activated routed experts) less
the RMSNorm gains (elementwise, not a matmul). The input embedding is a lookup, not a matmul, so it
is not in N. The second term is attention's q.k and p.v over T positions, in L layers, with
d_qk = n_heads * head width of q and k and d_v = n_heads * head width of v: d_model each in v1
(PaLM's 12 L T d), n_heads * (qk_nope + qk_rope) and n_heads * v_head_dim under MLA. Like PaLM,
it counts the whole T x T score matrix although causal masking leaves half of it unused (a causal
flash kernel skips about half); that is the convention MFU is quoted in.

MFU (PaLM, appendix B): model FLOPs per second achieved over the hardware's peak,
`tokens_per_s * flops_per_token / peak_flops`; rematerialization is not counted as useful work.
`GPUS` holds the peak dense bf16 tensor-core FLOP/s and memory from NVIDIA's datasheets (dense,
not the 2x "with sparsity" figures): A100 SXM 312 TFLOP/s (40 or 80 GB), H100 SXM and H800 SXM
989 TFLOP/s (80 GB), H200 SXM 989 TFLOP/s (141 GB). Memory is taken as the vendor's GB x 10^9
bytes, a little below what the card holds, which leaves room for the CUDA context.

Memory per GPU, for minicoder's trainer (train.py): float32 weights, bf16 autocast on a GPU, AdamW.
Per parameter 4 B of weights, 4 B of gradients and 8 B of Adam's two fp32 moments: 16 B, the
"mixed precision Adam" figure of ZeRO (Rajbhandari et al., 2019, section 3.1), where the 16 B are
an fp16 copy, its gradient and an fp32 master copy with the moments (there: 2 + 2 + 12). DDP
replicates all of it and, on more than one GPU, adds its all-reduce buckets, one more
gradient-sized buffer (4 B/param: PyTorch's default, gradient_as_bucket_view=False). FSDP (ZeRO-3) shards weights, gradients and
optimizer states over the n GPUs and holds one unit (a block, or the embedding or the head) whole
while it runs: its weights and, in backward, its gradient, 8 B per parameter of the largest unit.

Activations (Korthikanti et al., 2022, "Reducing Activation Recomputation in Large Transformer
Models", section 4.1, which counts sbh(34 + 5as/h) bytes for a GPT layer) are counted here for
minicoder's own block, tensor by tensor, as autograd saves them (`_layer_activation_bytes`), per
token per layer: RMSNorm keeps its fp32 input, x * rsqrt and rsqrt; its output goes to the next
linears as one shared tensor in fp32, or as one bf16 copy per linear under autocast (autocast
casts at every call); attention keeps q, k, v, its output and the merged heads (a), and the
softmax's log-sum-exp (4 B per head); SwiGLU keeps w1 x, silu(w1 x), w3 x and their product
(4 d_ff); an MoE block keeps the router's scores, the gathered rows of its K experts, each
expert's SwiGLU (4 K moe_d_ff), the shared experts' (4 n_s moe_d_ff) and the weighted outputs.
Attention is assumed fused (`F.scaled_dot_product_attention` on flash / memory-efficient
kernels), so no T x T score matrix is stored. With activation checkpointing (per block) a layer
keeps only its fp32 input (4 d) and one block's activations exist again during its backward. On
top, the logits: four fp32 (B, T, vocab) tensors are alive when the loss's backward starts (the
logits, the log-probabilities, and their two gradients); at 1.3B with T = 4096 that is 2.1 GB per
sequence, often the single largest item.

Left out: the CUDA context and allocator fragmentation (budget 1-3 GB); the attention score
matrix of `attn_impl="naive"` (and of MLA's unequal head widths on a CPU, where sdpa falls back to
the math path: 4 n_heads T bytes per token more); tensor, pipeline and expert parallelism;
communication time (MFU is an input here, not a prediction); activation offloading; fp8.
"""

import argparse
from dataclasses import dataclass
from types import MappingProxyType

from minicoder.config import PRESETS, ModelConfig


@dataclass(frozen=True)
class GPU:
    """A GPU's peak dense bf16 tensor-core throughput and memory, from the vendor's datasheet."""

    name: str
    peak_flops: float  # dense bf16, FLOP/s
    memory_bytes: float  # vendor GB x 1e9


GPUS = MappingProxyType({
    "a100-40gb": GPU("A100 SXM 40GB", 312e12, 40e9),   # A100 datasheet: 312 TFLOPS bf16 (624 sparse)
    "a100-80gb": GPU("A100 SXM 80GB", 312e12, 80e9),
    "h100-80gb": GPU("H100 SXM 80GB", 989e12, 80e9),   # H100 datasheet: 1,979 with sparsity, half dense
    "h800-80gb": GPU("H800 SXM 80GB", 989e12, 80e9),   # H100's compute; less NVLink bandwidth
    "h200-141gb": GPU("H200 SXM 141GB", 989e12, 141e9),
})

# Training tokens of the papers: DeepSeek-Coder v1 (section 1: 2T tokens from scratch); Coder-V2
# (section 3: 6T more tokens, continuing an intermediate DeepSeek-V2 checkpoint that had seen 4.2T).
PAPER_TOKENS = MappingProxyType({
    "deepseek-coder-1.3b": 2e12, "deepseek-coder-6.7b": 2e12, "deepseek-coder-33b": 2e12,
    "deepseek-coder-v2-lite": 6e12, "deepseek-coder-v2": 6e12,
})
DEFAULT_MFU = 0.40
ADAM_BYTES_PER_PARAM = 16  # fp32 weights 4 + fp32 gradients 4 + two fp32 moments 8


# -----------------------------------------------------------------------------
# FLOPs


def norm_params(config: ModelConfig) -> int:
    """RMSNorm gains: 2 per block, the final one, and MLA's q_norm and kv_norm (elementwise, not matmuls)."""
    per_layer = 2 * config.d_model
    if config.is_mla:
        per_layer += config.kv_lora_rank + (config.q_lora_rank or 0)
    return config.n_layers * per_layer + config.d_model


def matmul_params(config: ModelConfig) -> int:
    """N of the 6N rule: the active parameters a token is multiplied by (no embedding, no norm gains)."""
    return config.num_active_params() - norm_params(config)


def attention_widths(config: ModelConfig) -> tuple[int, int]:
    """(d_qk, d_v): summed over heads, the widths that q.k and p.v run over at each position."""
    if config.is_mla:
        return (config.n_heads * (config.qk_nope_head_dim + config.qk_rope_head_dim),
                config.n_heads * config.v_head_dim)
    return config.d_model, config.d_model  # GQA shares k and v, but every query head still does its own dot products


def flops_per_token(config: ModelConfig, seq_len: int, training: bool = True) -> float:
    """6 N + 6 L T (d_qk + d_v) for a training step (forward + backward), 2 N + 2 L T (d_qk + d_v) forward.

    >>> cfg = ModelConfig(vocab_size=10, n_layers=1, d_model=4, n_heads=1, d_ff=8, max_seq_len=8)
    >>> matmul_params(cfg)  # wq wk wv wo 4 x 16 + 3 x 32 SwiGLU + 40 head
    200
    >>> flops_per_token(cfg, seq_len=8)  # 6 * 200 + 6 * 1 * 8 * (4 + 4)
    1584
    """
    d_qk, d_v = attention_widths(config)
    forward = 2 * matmul_params(config) + 2 * config.n_layers * seq_len * (d_qk + d_v)
    return 3 * forward if training else forward


def peak_flops_of(device_name: str) -> float | None:
    """Dense bf16 peak FLOP/s of a GPU named as torch.cuda.get_device_name() names it, or None if unknown.

    >>> peak_flops_of("NVIDIA H100 80GB HBM3"), peak_flops_of("NVIDIA A100-SXM4-40GB"), peak_flops_of("cpu")
    (989000000000000.0, 312000000000000.0, None)
    """
    for model in ("H200", "H800", "H100", "A100"):
        if model in device_name.upper():
            return next(g.peak_flops for g in GPUS.values() if model in g.name)
    return None


def mfu(tokens_per_s: float, config: ModelConfig, seq_len: int, peak_flops: float) -> float:
    """Model FLOPs utilization (PaLM, appendix B): tokens_per_s * training FLOPs per token / peak_flops.

    peak_flops is the whole job's peak (one GPU's times the number of GPUs when tokens_per_s is
    the job's throughput), e.g. `GPUS["h100-80gb"].peak_flops * 8`.
    """
    return tokens_per_s * flops_per_token(config, seq_len) / peak_flops


# -----------------------------------------------------------------------------
# Memory


def _norm_bytes(width: int, consumers: int, a: int) -> int:
    """RMSNorm: fp32 input and x * rsqrt (8 B per value) and rsqrt (4 B), then its output as the linears
    after it save it: one shared tensor in fp32 (a = 4), one copy per linear under bf16 autocast."""
    return 8 * width + 4 + width * (4 if a == 4 else a * consumers)


def _layer_activation_bytes(config: ModelConfig, layer: int, a: int) -> int:
    """Bytes autograd keeps per token for block `layer`, with activations of a bytes (2: bf16 autocast, 4: fp32)."""
    c, d = config, config.d_model
    # -- attention --
    if c.is_mla:
        nh, qk, v = c.n_heads, c.qk_nope_head_dim + c.qk_rope_head_dim, c.v_head_dim
        attn = _norm_bytes(d, 2, a) + _norm_bytes(c.kv_lora_rank, 1, a)  # into wq (or wq_a) and wkv_a; kv_norm
        if c.q_lora_rank is not None:
            attn += _norm_bytes(c.q_lora_rank, 1, a)  # q_norm
        attn += a * nh * (2 * qk + 3 * v) + 4 * nh  # q, k; v, output, merged heads; log-sum-exp
    else:
        attn = _norm_bytes(d, 3, a) + a * 5 * d + 4 * c.n_heads  # q, k, v (KV heads repeated), output, merged
    # -- MLP --
    if not c.is_moe_layer(layer):
        return attn + _norm_bytes(d, 2, a) + a * 4 * c.d_ff  # w1 x, silu(w1 x), w3 x, product
    K, f = c.n_activated_experts, c.moe_d_ff
    if a == 4:  # one shared normed x; the K gathered rows once
        mlp = _norm_bytes(d, 1, a) + 4 * K * d
    else:  # casts for the router and the shared expert's w1 and w3; the gathered rows cast for w1 and w3
        mlp = _norm_bytes(d, 1 + 2 * (c.n_shared_experts > 0), a) + 2 * a * K * d
    mlp += 4 * c.n_routed_experts + K * (3 * 8 + 1 + 4)  # scores; ids, token ids, keep mask, gates
    mlp += a * 4 * K * f + a * 4 * c.n_shared_experts * f  # the experts' SwiGLUs
    mlp += a * K * d + 4 * K * d  # expert outputs, and those times the fp32 gates
    return attn + mlp


def activation_bytes(config: ModelConfig, batch_size: int, seq_len: int, dtype_bytes: int = 2,
                     activation_checkpointing: bool = False) -> tuple[int, int]:
    """(activations, logits) in bytes at the start of backward, for one micro-batch of batch_size x seq_len.

    activations: every block's saved tensors (`_layer_activation_bytes`), or with checkpointing each
    block's fp32 input (4 d) plus the largest block once (recomputed in its backward); the final
    norm and the token ids. logits: four fp32 (B, T, vocab) tensors (logits, log-probabilities and
    their gradients).
    """
    per_layer = [_layer_activation_bytes(config, i, dtype_bytes) for i in range(config.n_layers)]
    if activation_checkpointing:
        blocks = 4 * config.d_model * config.n_layers + max(per_layer)
    else:
        blocks = sum(per_layer)
    per_token = blocks + _norm_bytes(config.d_model, 1, dtype_bytes) + 16  # + final norm, int64 inputs and targets
    tokens = batch_size * seq_len
    return tokens * per_token, tokens * 4 * 4 * config.vocab_size


@dataclass
class MemoryEstimate:
    """Bytes per GPU. `in_flight`: DDP's gradient buckets, or FSDP's one unsharded unit (weights + gradient)."""

    parallel: str
    params: float
    grads: float
    optimizer: float
    in_flight: float
    activations: float
    logits: float

    @property
    def total(self) -> float:
        return self.params + self.grads + self.optimizer + self.in_flight + self.activations + self.logits

    def fits(self, gpu: str | GPU) -> bool:
        """Whether the total is within the GPU's memory (a name from GPUS, or a GPU)."""
        return self.total <= (GPUS[gpu] if isinstance(gpu, str) else gpu).memory_bytes


def _largest_unit_params(config: ModelConfig) -> int:
    """Parameters of the largest FSDP unit: a block, the embedding or the head."""
    block = max(config._attn_params() + config._ffn_params(i) + 2 * config.d_model for i in range(config.n_layers))
    return max(block, config.vocab_size * config.d_model)


def memory_per_gpu(config: ModelConfig, train_config_or_args, n_gpus: int, parallel: str = "ddp",
                   activation_checkpointing: bool = False, dtype_bytes: int = 2) -> MemoryEstimate:
    """Memory one GPU needs for a training step of minicoder's trainer (see the module docstring).

    Args:
        config: the model.
        train_config_or_args: anything with `batch_size` (the micro-batch per GPU) and `seq_len`: a
            TrainConfig, argparse's Namespace, or a dict with those keys.
        n_gpus: data-parallel GPUs (FSDP shards over all of them).
        parallel: "ddp" (everything replicated) or "fsdp" (weights, gradients and Adam sharded).
        activation_checkpointing: recompute each block in backward, keeping only its input.
        dtype_bytes: bytes of an activation: 2 under bf16 autocast (a GPU), 4 in float32 (a CPU).

    >>> cfg = ModelConfig.from_preset("deepseek-coder-1.3b")
    >>> ddp = memory_per_gpu(cfg, {"batch_size": 1, "seq_len": 4096}, n_gpus=8, parallel="ddp")
    >>> round(ddp.params / 1e9, 2), round(ddp.optimizer / 1e9, 2)  # 4 B and 8 B per parameter
    (5.39, 10.77)
    >>> fsdp = memory_per_gpu(cfg, {"batch_size": 1, "seq_len": 4096}, n_gpus=8, parallel="fsdp")
    >>> round(fsdp.params / 1e9, 2)
    0.67
    """
    get = train_config_or_args.get if isinstance(train_config_or_args, dict) else \
        lambda name: getattr(train_config_or_args, name)
    batch_size, seq_len = get("batch_size"), get("seq_len")
    if parallel not in ("ddp", "fsdp"):
        raise ValueError(f"parallel={parallel!r}: choose 'ddp' or 'fsdp'")
    if not (isinstance(n_gpus, int) and n_gpus >= 1):
        raise ValueError(f"n_gpus must be a positive integer, got {n_gpus!r}")
    N = config.num_params()
    shard = n_gpus if parallel == "fsdp" else 1
    if parallel == "ddp":
        in_flight = 4 * N if n_gpus > 1 else 0  # one process is not wrapped in DDP, so it has no buckets
    else:
        in_flight = 8 * _largest_unit_params(config)
    acts, logits = activation_bytes(config, batch_size, seq_len, dtype_bytes, activation_checkpointing)
    return MemoryEstimate(parallel, params=4 * N / shard, grads=4 * N / shard, optimizer=8 * N / shard,
                          in_flight=in_flight, activations=acts, logits=logits)


def max_micro_batch(config: ModelConfig, seq_len: int, n_gpus: int, gpu: str, parallel: str,
                    activation_checkpointing: bool = False, limit: int = 4096) -> int:
    """The largest micro-batch (sequences per GPU, at most `limit`) whose estimate fits `gpu`; 0 if none."""
    def fits(b):
        return memory_per_gpu(config, {"batch_size": b, "seq_len": seq_len}, n_gpus, parallel,
                              activation_checkpointing).fits(gpu)
    lo, hi = 0, limit  # fits(lo) holds (or lo = 0); memory grows with b, so bisect
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


# -----------------------------------------------------------------------------
# The plan


def gpu_hours(config: ModelConfig, tokens: float, seq_len: int, gpu: str, mfu_: float = DEFAULT_MFU) -> float:
    """tokens * training FLOPs per token / (mfu * peak FLOP/s of one GPU) / 3600."""
    return tokens * flops_per_token(config, seq_len) / (mfu_ * GPUS[gpu].peak_flops) / 3600


def _gb(x: float) -> str:
    return f"{x / 1e9:,.1f} GB"


def plan(preset_name: str, n_gpus: int = 8, gpu: str = "a100-80gb", seq_len: int | None = None,
         batch_size: int | None = None, mfu_: float = DEFAULT_MFU, tokens: float | None = None,
         activation_checkpointing: bool = False) -> str:
    """A printable report: parameters, FLOPs, memory per GPU under DDP and FSDP, the micro-batch
    that fits, throughput at the assumed MFU and GPU-hours for the paper's tokens; each with its formula.

    seq_len defaults to 4,096 (DeepSeek's pre-training context; the model's own if shorter),
    batch_size (per GPU) to 1, tokens to the paper's (PAPER_TOKENS; 1e9 for a toy preset).
    """
    if preset_name not in PRESETS:
        raise ValueError(f"--preset {preset_name}: unknown preset; choose one of: {', '.join(PRESETS)}")
    if gpu not in GPUS:
        raise ValueError(f"--gpu {gpu}: unknown GPU; choose one of: {', '.join(GPUS)}")
    if isinstance(n_gpus, bool) or not isinstance(n_gpus, int) or n_gpus < 1:
        raise ValueError(f"--gpus {n_gpus}: the number of GPUs must be an integer >= 1, e.g. --gpus 8")
    if not 0 < mfu_ <= 1:
        raise ValueError(f"--mfu {mfu_}: MFU is a share of the peak in (0, 1], e.g. --mfu 0.4")
    cfg = ModelConfig.from_preset(preset_name)
    T = seq_len if seq_len is not None else min(4096, cfg.max_seq_len)
    if not 1 <= T <= cfg.max_seq_len:
        raise ValueError(f"--seq-len {T}: must be between 1 and the model's context {cfg.max_seq_len}; "
                         f"choose --seq-len {min(4096, cfg.max_seq_len)} or less")
    B = 1 if batch_size is None else batch_size
    if B < 1:
        raise ValueError(f"--batch-size {B}: sequences per GPU must be >= 1, e.g. --batch-size 1")
    if tokens is None:
        tokens = PAPER_TOKENS.get(preset_name.removesuffix("-stage1"), 1e9)
    if not tokens > 0:
        raise ValueError(f"--tokens {tokens}: the training tokens must be positive, e.g. --tokens 2e12")
    g = GPUS[gpu]
    N, N_act, N_mm = cfg.num_params(), cfg.num_active_params(), matmul_params(cfg)
    d_qk, d_v = attention_widths(cfg)
    F_tok = flops_per_token(cfg, T)
    ckpt = " with activation checkpointing" if activation_checkpointing else ""
    lines = [
        f"plan: {preset_name} on {n_gpus} x {g.name} ({g.peak_flops / 1e12:,.0f} TFLOP/s dense bf16, "
        f"{_gb(g.memory_bytes)}), sequences of {T:,} tokens, {B} per GPU{ckpt}",
        "",
        f"parameters      total {N / 1e9:,.3f}B, active {N_act / 1e9:,.3f}B (no input embedding), "
        f"in matmuls N = {N_mm / 1e9:,.3f}B (less the norm gains)",
        f"FLOPs / token   6 N + 6 L T (d_qk + d_v) = 6 x {N_mm:,} + 6 x {cfg.n_layers} x {T} x ({d_qk} + {d_v})"
        f" = {F_tok:.3e}  (attention {1 - 6 * N_mm / F_tok:.0%})",
        "",
        "memory per GPU  (fp32 weights 4 B + grads 4 B + AdamW moments 8 B per parameter; bf16 activations)",
    ]
    for parallel in ("ddp", "fsdp"):
        m = memory_per_gpu(cfg, {"batch_size": B, "seq_len": T}, n_gpus, parallel, activation_checkpointing)
        shard = "16 B x N" if parallel == "ddp" else f"16 B x N / {n_gpus}"
        extra = "DDP buckets 4 B x N" if parallel == "ddp" else "one unsharded unit 8 B x its params"
        micro = max_micro_batch(cfg, T, n_gpus, gpu, parallel, activation_checkpointing)
        lines.append(f"  {parallel.upper():<5} weights+grads+Adam {_gb(m.params + m.grads + m.optimizer)} ({shard}), "
                     f"{extra} {_gb(m.in_flight)}, activations {_gb(m.activations)} + logits {_gb(m.logits)} "
                     f"(B T x 16 B x vocab) = {_gb(m.total)}: "
                     f"{'fits' if m.fits(gpu) else 'does NOT fit'}; largest micro-batch that fits: {micro}")
    tok_s = mfu_ * g.peak_flops * n_gpus / F_tok
    hours = gpu_hours(cfg, tokens, T, gpu, mfu_)
    lines += [
        "",
        f"throughput      MFU x peak x GPUs / FLOPs per token = {mfu_:.0%} x {g.peak_flops:.3g} x {n_gpus} / "
        f"{F_tok:.3e} = {tok_s:,.0f} tokens/s",
        f"GPU-hours       tokens x FLOPs per token / (MFU x peak) / 3600 = {tokens:.3g} x {F_tok:.3e} / "
        f"({mfu_:.0%} x {g.peak_flops:.3g}) / 3600 = {hours:,.0f} ({hours / n_gpus / 24:,.1f} days on {n_gpus})",
    ]
    if preset_name.startswith("deepseek-coder-v2"):
        lines.append("                (Coder-V2's 6T tokens continue a DeepSeek-V2 checkpoint that had seen 4.2T; "
                     "those are not counted)")
    return "\n".join(lines)


def register_cli(sub) -> None:
    p = sub.add_parser("plan", help="FLOPs, memory per GPU, tokens/s and GPU-hours for a preset (arithmetic only)",
                       description="`minicoder plan`: what training a preset costs, from its config alone "
                                   "(minicoder/scaling.py gives the formulas).")
    p.add_argument("--preset", default="deepseek-coder-1.3b", metavar="PRESET",
                   help=f"ModelConfig preset, one of: {', '.join(PRESETS)} (default: %(default)s)")
    p.add_argument("--gpus", type=int, default=8, help="data-parallel GPUs (default: %(default)s)")
    p.add_argument("--gpu", default="a100-80gb", metavar="GPU",
                   help=f"GPU, one of: {', '.join(GPUS)} (default: %(default)s)")
    p.add_argument("--seq-len", type=int, default=None,
                   help="tokens per sequence (default: 4096, or the model's context if shorter)")
    p.add_argument("--batch-size", type=int, default=None, help="sequences per GPU per micro-batch (default: 1)")
    p.add_argument("--mfu", type=float, default=DEFAULT_MFU,
                   help="assumed model FLOPs utilization, in (0, 1] (default: %(default)s)")
    p.add_argument("--tokens", type=float, default=None,
                   help="training tokens (default: the paper's: 2e12 for v1, 6e12 for Coder-V2; 1e9 for a toy)")
    p.add_argument("--activation-checkpointing", action="store_true",
                   help="estimate with each block recomputed in backward (minicoder's trainer does not do this)")

    def run(args: argparse.Namespace) -> int:
        print(plan(args.preset, args.gpus, args.gpu, args.seq_len, args.batch_size, args.mfu, args.tokens,
                   args.activation_checkpointing))
        return 0

    p.set_defaults(func=run)


def readme_table(gpu: str = "a100-80gb", n_gpus: int = 8, seq_len: int = 4096, mfu_: float = DEFAULT_MFU) -> str:
    """The README's table: each DeepSeek preset's parameters, FLOPs, FSDP memory per GPU and GPU-hours."""
    rows = ["| preset | params total / active | training FLOPs / token | FSDP memory / GPU, B = 1 | "
            "the same, activation checkpointing | largest B (FSDP) | tokens | GPU-hours |",
            "|---|---|---|---|---|---|---|---|"]
    for name, tokens in PAPER_TOKENS.items():
        cfg = ModelConfig.from_preset(name)
        m = memory_per_gpu(cfg, {"batch_size": 1, "seq_len": seq_len}, n_gpus, "fsdp")
        mc = memory_per_gpu(cfg, {"batch_size": 1, "seq_len": seq_len}, n_gpus, "fsdp", activation_checkpointing=True)
        rows.append(f"| {name} | {cfg.num_params() / 1e9:.2f}B / {cfg.num_active_params() / 1e9:.2f}B | "
                    f"{flops_per_token(cfg, seq_len):.3g} | {_gb(m.total)}{'' if m.fits(gpu) else ' (does not fit)'} | "
                    f"{_gb(mc.total)}{'' if mc.fits(gpu) else ' (does not fit)'} | "
                    f"{max_micro_batch(cfg, seq_len, n_gpus, gpu, 'fsdp')} | {tokens / 1e12:g}T | "
                    f"{gpu_hours(cfg, tokens, seq_len, gpu, mfu_):,.0f} |")
    return "\n".join(rows)

