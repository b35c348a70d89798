"""Rotary position embeddings (RoPE) with linear position scaling.

RoFormer (Su et al., 2021, section 3.4): split each query/key head vector into head_dim/2 pairs
and turn pair i at position m by the angle m * theta_i, where theta_i = base^(-2i/head_dim).
A rotation preserves length, and the dot product of a query rotated to m with a key rotated
to n depends only on m - n, which is how attention sees relative position.

Pairing convention. Meta's LLaMA pairs adjacent dimensions (0,1), (2,3), ...; HF `transformers`
pairs dimension i with i + head_dim/2 ("rotate half") and permutes the q/k weights when it
converts Meta checkpoints. We use rotate-half, so HF (and DeepSeek's HF-format) weights load
unchanged:

    x_rot = x * cos + rotate_half(x) * sin,   rotate_half([x1, x2]) = [-x2, x1]

Linear scaling ("position interpolation", Chen et al., 2023), used by DeepSeek-Coder to reach
16,384 positions with factor 4: angles use m / factor in place of m. Dividing the frequencies
by the factor instead gives the same products, and is how HF computes it (we match it so the
tables agree to the last bit).

Two paths compute the same rotation: `apply_rope` (rotate-half, elementwise, fast) and
`apply_rope_naive` (each pair as a complex number times e^{i*angle}, read straight from the
paper). The model picks one with `ModelConfig.attn_impl`; tests hold them equal and compare
both with explicit 2x2 rotation matrices in float64.

YaRN (Peng et al., 2023, "YaRN: Efficient Context Window Extension of Large Language Models",
section 3; DeepSeek-V2 appendix B, used to go from 4K to 128K) treats each pair by how many full
turns it makes over the original context L: with r_i = L / wavelength_i,

    r_i > beta_fast  (fast pairs: many turns)  keep their frequency            (gamma = 1)
    r_i < beta_slow  (slow pairs: < one turn)   interpolate, freq / factor     (gamma = 0)
    in between                                  blend with a linear ramp in i  (0 < gamma < 1)
    freq_i' = (1 - gamma_i) * freq_i / factor + gamma_i * freq_i

and sharpens attention by the temperature mscale = 0.1 * ln(factor) + 1. DeepSeek-V2's code
splits that temperature in two: the cos/sin tables are multiplied by
mscale(rope_mscale) / mscale(rope_mscale_all_dim) (1.0 for V2, whose two are both 0.707), and the
softmax scale 1/sqrt(d_head) by mscale(rope_mscale_all_dim)^2, so every dimension of q.k is
sharpened, not only the rotated ones. `yarn_frequencies`, `yarn_mscale`, `rope_tables` (the
model's entry point, from a ModelConfig) and `softmax_scale`. Where transformers' port and
DeepSeek's code differ (rope_mscale set without rope_mscale_all_dim), we follow DeepSeek's.

Two pairings. v1's weights pair dimension i with i + hd/2 (`apply_rope`); DeepSeek-V2's released
weights pair adjacent dimensions (2i, 2i+1) in MLA's rope part (their code views the vector as
complex numbers), so MLA uses `apply_rope_interleaved`, with the same cos/sin tables. Keeping the
released pairing means V2 checkpoints load without permuting any weight row; tests compare both
pairings with transformers.

Left out: partial rotary dimensions, dynamic NTK scaling, YaRN's dynamic (per-length) variant.
"""

import math

import torch


def rope_frequencies(head_dim: int, theta: float, scaling_type: str | None = None,
                     scaling_factor: float = 1.0) -> torch.Tensor:
    """Angular speed of each pair, in radians per position: theta^(-2i/head_dim) [/ factor].

    A float32 tensor (head_dim/2,) for pairs i = 0 .. head_dim/2 - 1, computed as HF does:
    1 / theta ** (2i / head_dim) in float32. scaling_type None leaves it; "linear" divides every
    frequency by scaling_factor (position interpolation); anything else is a ValueError.

    >>> rope_frequencies(4, theta=100.0).tolist()
    [1.0, 0.10000000149011612]
    >>> rope_frequencies(4, theta=100.0, scaling_type="linear", scaling_factor=4.0).tolist()
    [0.25, 0.02500000037252903]
    """
    # BEGIN ASSIGNMENT transformer
    i2 = torch.arange(0, head_dim, 2, dtype=torch.int64).float()  # (hd/2,)
    inv_freq = 1.0 / (theta ** (i2 / head_dim))  # (hd/2,)
    if scaling_type is None:
        return inv_freq
    if scaling_type == "linear":
        return inv_freq / scaling_factor
    # YaRN needs more than a factor: see `yarn_frequencies` and `rope_tables`.
    raise ValueError(f"unknown RoPE scaling type {scaling_type!r}; use None or 'linear'")
    # END ASSIGNMENT


def rope_angles(head_dim: int, positions: torch.Tensor, theta: float, scaling_type: str | None = None,
                scaling_factor: float = 1.0) -> torch.Tensor:
    """The angle (radians) by which pair i is turned at each position: angles[m, i] = m * freq_i.

    Plot-friendly: `rope_angles(64, torch.arange(100), 1e4)` is a (100, 32) float32 tensor.
    positions (T,) may be any integer positions; the result is (T, head_dim/2) float32.

    >>> rope_angles(4, torch.tensor([0, 1, 3]), theta=100.0).tolist()
    [[0.0, 0.0], [1.0, 0.10000000149011612], [3.0, 0.30000001192092896]]
    """
    # BEGIN ASSIGNMENT transformer
    inv_freq = rope_frequencies(head_dim, theta, scaling_type, scaling_factor)  # (hd/2,)
    return positions.float()[:, None] * inv_freq[None, :]  # (T, hd/2)
    # END ASSIGNMENT


def rope_wavelengths(head_dim: int, theta: float, scaling_type: str | None = None,
                     scaling_factor: float = 1.0) -> torch.Tensor:
    """Tokens it takes each pair to turn a full circle, 2*pi / freq_i (from 2*pi up to ~2*pi*theta)."""
    return 2 * math.pi / rope_frequencies(head_dim, theta, scaling_type, scaling_factor)  # (hd/2,)


def rope_cos_sin(head_dim: int, seq_len: int, theta: float, scaling_type: str | None = None,
                 scaling_factor: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Precomputed cos and sin tables for positions 0..seq_len-1, in rotate-half layout.

    Both are (seq_len, head_dim) float32; column j and j + head_dim/2 hold the same angle, so
    they multiply the two halves of `x` elementwise: cos[m, j] = cos[m, j + hd/2] = cos(angle of
    pair j at position m), and the same for sin.

    >>> cos, sin = rope_cos_sin(4, seq_len=2, theta=100.0)
    >>> [[round(c, 4) for c in row] for row in cos.tolist()]
    [[1.0, 1.0, 1.0, 1.0], [0.5403, 0.995, 0.5403, 0.995]]
    >>> [[round(c, 4) for c in row] for row in sin.tolist()]
    [[0.0, 0.0, 0.0, 0.0], [0.8415, 0.0998, 0.8415, 0.0998]]
    """
    # BEGIN ASSIGNMENT transformer
    angles = rope_angles(head_dim, torch.arange(seq_len), theta, scaling_type, scaling_factor)  # (T, hd/2)
    angles = torch.cat((angles, angles), dim=-1)  # (T, hd)
    return angles.cos(), angles.sin()
    # END ASSIGNMENT


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """[x1, x2] -> [-x2, x1] on the last dimension: a 90-degree turn of every pair (x1_i, x2_i).

    x1 is the first half of the last dimension, x2 the second.

    >>> rotate_half(torch.tensor([1.0, 2.0, 3.0, 4.0])).tolist()
    [-3.0, -4.0, 1.0, 2.0]
    """
    # BEGIN ASSIGNMENT transformer
    x1, x2 = x.chunk(2, dim=-1)  # (..., hd/2) each
    return torch.cat((-x2, x1), dim=-1)  # (..., hd)
    # END ASSIGNMENT


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, nh, T, hd) by the tables cos, sin (T, hd) of its positions (rotate-half form):

        x * cos + rotate_half(x) * sin,   the tables cast to x's dtype; the result keeps x's dtype.

    >>> cos, sin = rope_cos_sin(2, seq_len=2, theta=1.0)  # one pair, turned by 0 then 1 radian
    >>> x = torch.tensor([1.0, 0.0]).expand(1, 1, 2, 2)   # (B, nh, T, hd): the same vector twice
    >>> [[round(v, 4) for v in row] for row in apply_rope(x, cos, sin)[0, 0].tolist()]
    [[1.0, 0.0], [0.5403, 0.8415]]
    """
    # BEGIN ASSIGNMENT transformer
    return x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)  # (B, nh, T, hd)
    # END ASSIGNMENT


def apply_rope_naive(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """The same rotation as `apply_rope`, in the paper's complex-number form.

    Pair i of a head is the complex number z_i = x[i] + 1j * x[i + hd/2]; turning it by angle a
    is z_i * e^{1j a}. The tables' first half holds cos(a) and sin(a) of each pair. Compute in
    float32 complex numbers (not with `rotate_half` or `apply_rope`) and return x's dtype.

    >>> cos, sin = rope_cos_sin(2, seq_len=2, theta=1.0)
    >>> x = torch.tensor([1.0, 0.0]).expand(1, 1, 2, 2)
    >>> [[round(v, 4) for v in row] for row in apply_rope_naive(x, cos, sin)[0, 0].tolist()]
    [[1.0, 0.0], [0.5403, 0.8415]]
    """
    # BEGIN ASSIGNMENT transformer
    half = x.shape[-1] // 2
    z = torch.complex(x[..., :half].float(), x[..., half:].float())  # (B, nh, T, hd/2) complex
    turn = torch.complex(cos[:, :half].float(), sin[:, :half].float())  # (T, hd/2) = e^{1j a}
    z = z * turn  # (B, nh, T, hd/2)
    return torch.cat((z.real, z.imag), dim=-1).to(x.dtype)  # (B, nh, T, hd)
    # END ASSIGNMENT


def yarn_mscale(factor: float, mscale: float = 1.0) -> float:
    """YaRN's attention temperature 0.1 * mscale * ln(factor) + 1 (1.0 when factor <= 1).

    >>> round(yarn_mscale(40.0, 0.707), 4), yarn_mscale(1.0, 0.707)
    (1.2608, 1.0)
    """
    return 0.1 * mscale * math.log(factor) + 1.0 if factor > 1 else 1.0


def yarn_correction_range(dim: int, theta: float, original_max_seq_len: int, beta_fast: float,
                          beta_slow: float) -> tuple[int, int]:
    """The pair indices (low, high) between which YaRN's ramp runs, as DeepSeek's code finds them.

    Pair i turns L * freq_i / (2 pi) times over the original context L; solving
    L * theta^(-2i/dim) / (2 pi) = beta for i gives dim * ln(L / (2 pi beta)) / (2 ln theta).
    beta_fast gives the low end (floored), beta_slow the high end (ceiled), clipped to [0, dim - 1].

    >>> yarn_correction_range(64, 10000.0, 4096, 32.0, 1.0)
    (10, 23)
    """
    def pair_turning(beta: float) -> float:
        return dim * math.log(original_max_seq_len / (beta * 2 * math.pi)) / (2 * math.log(theta))
    low = math.floor(pair_turning(beta_fast))
    high = math.ceil(pair_turning(beta_slow))
    return max(low, 0), min(high, dim - 1)


def yarn_frequencies(dim: int, theta: float, factor: float, original_max_seq_len: int,
                     beta_fast: float = 32.0, beta_slow: float = 1.0) -> torch.Tensor:
    """YaRN's per-pair angular speeds (dim/2,) float32: fast pairs kept, slow pairs divided by factor,
    a linear ramp in the pair index between the two ends of `yarn_correction_range`.

    >>> f = yarn_frequencies(64, 10000.0, 40.0, 4096)
    >>> plain = rope_frequencies(64, 10000.0)
    >>> bool(f[0] == plain[0]), bool(torch.isclose(f[-1], plain[-1] / 40))  # fastest kept, slowest / 40
    (True, True)
    """
    plain = rope_frequencies(dim, theta)  # (dim/2,) extrapolation: unchanged
    low, high = yarn_correction_range(dim, theta, original_max_seq_len, beta_fast, beta_slow)
    if low == high:
        high += 0.001  # a one-point ramp would divide by zero (DeepSeek's code does the same)
    ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)  # (dim/2,) 0 -> 1
    gamma = 1.0 - ramp  # (dim/2,) 1: keep the frequency, 0: interpolate it
    return plain / factor * (1 - gamma) + plain * gamma  # (dim/2,)


def rope_tables(config, seq_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables (seq_len, rope_dim) for a ModelConfig: its RoPE base, its scaling (None,
    linear or YaRN) and, under MLA, only the qk_rope_head_dim dimensions. seq_len defaults to
    max_seq_len. YaRN's tables are multiplied by mscale(rope_mscale) / mscale(rope_mscale_all_dim)
    under MLA (whose softmax_scale carries mscale(rope_mscale_all_dim)^2); in a v1 model, where
    RoPE turns every dimension, by mscale(rope_mscale), which sharpens q.k by the same total.
    """
    c, T = config, seq_len or config.max_seq_len
    if c.rope_scaling_type != "yarn":
        return rope_cos_sin(c.rope_dim, T, c.rope_theta, c.rope_scaling_type, c.rope_scaling_factor)
    inv_freq = yarn_frequencies(c.rope_dim, c.rope_theta, c.rope_scaling_factor, c.rope_original_max_seq_len,
                                c.rope_beta_fast, c.rope_beta_slow)  # (rope_dim/2,)
    angles = torch.arange(T).float()[:, None] * inv_freq[None, :]  # (T, rope_dim/2)
    angles = torch.cat((angles, angles), dim=-1)  # (T, rope_dim)
    m = yarn_mscale(c.rope_scaling_factor, c.rope_mscale)
    if c.is_mla:  # the rest of the temperature goes on the softmax scale, so the nope dims get it too
        m /= yarn_mscale(c.rope_scaling_factor, c.rope_mscale_all_dim)
    return angles.cos() * m, angles.sin() * m


def softmax_scale(config, head_dim: int) -> float:
    """MLA's softmax scale: 1 / sqrt(head_dim), times mscale(rope_mscale_all_dim)^2 under YaRN when
    rope_mscale_all_dim is set (DeepSeek-V2: head_dim = 128 + 64, and 1.2608^2 = 1.590 at factor 40)."""
    scale = head_dim ** -0.5
    if config.rope_scaling_type == "yarn" and config.rope_mscale_all_dim:
        scale *= yarn_mscale(config.rope_scaling_factor, config.rope_mscale_all_dim) ** 2
    return scale


def apply_rope_interleaved(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """The RoPE rotation with adjacent pairs (x[2i], x[2i+1]), the pairing of DeepSeek-V2's weights.

    x (..., T, d) with the same (T, d) tables as `apply_rope` (pair i's angle in column i of the
    first half). Computed in float32 and returned in x's dtype, as DeepSeek's complex-number code does.

    >>> cos, sin = rope_cos_sin(4, seq_len=2, theta=100.0)  # at position 1: pair 0 turns 1, pair 1 0.1 radian
    >>> x = torch.tensor([1.0, 0.0, 1.0, 0.0]).expand(2, 4)
    >>> [round(v, 4) for v in apply_rope_interleaved(x, cos, sin)[1].tolist()]
    [0.5403, 0.8415, 0.995, 0.0998]
    """
    half = x.shape[-1] // 2
    xf = x.float().unflatten(-1, (half, 2))  # (..., T, d/2, 2)
    a, b = xf[..., 0], xf[..., 1]  # (..., T, d/2) each
    c, s = cos[:, :half].float(), sin[:, :half].float()  # (T, d/2)
    return torch.stack((a * c - b * s, a * s + b * c), dim=-1).flatten(-2).to(x.dtype)  # (..., T, d)
