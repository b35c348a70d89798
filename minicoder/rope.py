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

    head_dim=4, theta=100 -> tensor([1.0, 0.1]).
    """
    i2 = torch.arange(0, head_dim, 2, dtype=torch.int64).float()  # (hd/2,)
    inv_freq = 1.0 / (theta ** (i2 / head_dim))  # (hd/2,)
    if scaling_type is None:
        return inv_freq
    if scaling_type == "linear":
        return inv_freq / scaling_factor
    # A new scaling (YaRN) computes its own frequencies here.
    raise ValueError(f"unknown RoPE scaling type {scaling_type!r}; use None or 'linear'")


def rope_angles(head_dim: int, positions: torch.Tensor, theta: float, scaling_type: str | None = None,
                scaling_factor: float = 1.0) -> torch.Tensor:
    """The angle (radians) by which pair i is turned at each position: angles[m, i] = m * freq_i.

    Plot-friendly: `rope_angles(64, torch.arange(100), 1e4)` is a (100, 32) float32 tensor.
    """
    inv_freq = rope_frequencies(head_dim, theta, scaling_type, scaling_factor)  # (hd/2,)
    return positions.float()[:, None] * inv_freq[None, :]  # (T, hd/2)


def rope_wavelengths(head_dim: int, theta: float, scaling_type: str | None = None,
                     scaling_factor: float = 1.0) -> torch.Tensor:
    """Tokens it takes each pair to turn a full circle, 2*pi / freq_i (from 2*pi up to ~2*pi*theta)."""
    return 2 * math.pi / rope_frequencies(head_dim, theta, scaling_type, scaling_factor)  # (hd/2,)


def rope_cos_sin(head_dim: int, seq_len: int, theta: float, scaling_type: str | None = None,
                 scaling_factor: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Precomputed cos and sin tables for positions 0..seq_len-1, in rotate-half layout.

    Both are (seq_len, head_dim) float32; column j and j + head_dim/2 hold the same angle, so
    they multiply the two halves of `x` elementwise.
    """
    angles = rope_angles(head_dim, torch.arange(seq_len), theta, scaling_type, scaling_factor)  # (T, hd/2)
    angles = torch.cat((angles, angles), dim=-1)  # (T, hd)
    return angles.cos(), angles.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """[x1, x2] -> [-x2, x1] on the last dimension: a 90-degree turn of every pair (x1_i, x2_i)."""
    x1, x2 = x.chunk(2, dim=-1)  # (..., hd/2) each
    return torch.cat((-x2, x1), dim=-1)  # (..., hd)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, nh, T, hd) by the tables cos, sin (T, hd) of its positions."""
    return x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)  # (B, nh, T, hd)


def apply_rope_naive(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """The same rotation as `apply_rope`, in the paper's complex-number form.

    Pair i of a head is the complex number z_i = x[i] + 1j * x[i + hd/2]; turning it by angle a
    is z_i * e^{1j a}. The tables' first half holds cos(a) and sin(a) of each pair.
    """
    half = x.shape[-1] // 2
    z = torch.complex(x[..., :half].float(), x[..., half:].float())  # (B, nh, T, hd/2) complex
    turn = torch.complex(cos[:, :half].float(), sin[:, :half].float())  # (T, hd/2) = e^{1j a}
    z = z * turn  # (B, nh, T, hd/2)
    return torch.cat((z.real, z.imag), dim=-1).to(x.dtype)  # (B, nh, T, hd)
