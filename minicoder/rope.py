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

Left out: YaRN (DeepSeek-V2's scaling, which reshapes the frequencies band by band and scales
attention); it will be one more `scaling_type` in `rope_frequencies`. Also left out: partial
rotary dimensions, dynamic NTK scaling.
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
    # A new scaling (YaRN) computes its own frequencies here.
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
