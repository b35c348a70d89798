"""The two building blocks every attention variant shares: RMSNorm and the causal mask.

RMSNorm (Zhang & Sennrich, 2019) normalises by the root mean square alone (no mean, no bias), as
LLaMA and both DeepSeek-Coder generations do, in float32. The causal mask says which keys a query
may see, with a cache holding an earlier prefix. They live below `model.py`, `mla.py` and `moe.py`
so that each of those imports them without importing the others (`model.py` re-exports them).

Left out: LayerNorm (no DeepSeek model uses it), masks for padded or packed batches.
"""

import torch
from torch import nn


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight (Zhang & Sennrich, 2019); computed in float32."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x / sqrt(mean(x^2) + eps) * weight over the last dimension of x (..., C).

        The mean and the square root are computed in float32 (x is cast up first), the result cast
        back to x's dtype, then multiplied by the gain `weight` (C,), as LLaMA and HF do.

        >>> norm = RMSNorm(2, eps=0.0)
        >>> [round(v, 4) for v in norm(torch.tensor([3.0, 4.0])).tolist()]  # rms = sqrt((9 + 16) / 2)
        [0.8485, 1.1314]
        >>> norm.weight.data = torch.tensor([2.0, -1.0])
        >>> [round(v, 4) for v in norm(torch.tensor([[1.0, -1.0]]))[0].tolist()]
        [2.0, 1.0]
        """
        # BEGIN ASSIGNMENT transformer
        xf = x.float()  # (B, T, C)
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)  # (B, T, C)
        return self.weight * xf.to(x.dtype)  # (B, T, C)
        # END ASSIGNMENT


def causal_mask(T: int, S: int, start_pos: int = 0, device: torch.device | str | None = None) -> torch.Tensor:
    """The (T, S) boolean mask of which keys each query may see: True where allowed.

    Query t sits at position start_pos + t (the cache holds the positions before start_pos) and
    sees key s (at position s) iff s <= start_pos + t. With start_pos = 0 and S = T this is the
    lower triangle; once a cache holds a prefix, every query also sees the whole prefix.

    >>> causal_mask(3, 3).int().tolist()
    [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    >>> causal_mask(2, 4, start_pos=2).int().tolist()
    [[1, 1, 1, 0], [1, 1, 1, 1]]
    """
    # BEGIN ASSIGNMENT transformer
    return torch.arange(S, device=device)[None, :] <= start_pos + torch.arange(T, device=device)[:, None]  # (T, S)
    # END ASSIGNMENT
