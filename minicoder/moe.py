"""DeepSeekMoE: shared experts plus fine-grained routed experts (DeepSeek-V2, section 2.2).

DeepSeek-V2 (DeepSeek-AI, 2024, section 2.2.1, equations 20-23) replaces a block's SwiGLU by

    s_{i,t} = Softmax_i(u_t^T e_i)                               # affinity of token t to expert i
    g_{i,t} = s_{i,t} if s_{i,t} in Topk({s_{j,t}}, K_r) else 0
    h'_t    = u_t + sum_{i<=N_s} FFN^(s)_i(u_t) + sum_{i<=N_r} g_{i,t} FFN^(r)_i(u_t)

with N_s shared experts that see every token (fused here into one SwiGLU of width N_s * moe_d_ff,
as DeepSeek's code does) and N_r routed experts of which each token uses K_r. The residual u_t
is added by the block, not here. The gate follows DeepSeek's own modeling_deepseek.py (V2):

- scores in float32; `topk_method` "greedy" takes the top K_r; "group_limited_greedy" (2.2.2)
  splits the experts into n_group groups, scores a group by its best expert, keeps the
  topk_group best groups and takes the top K_r among their experts.
- `norm_topk_prob` (and K_r > 1): g = topk / sum(topk), with no routed_scaling_factor;
  otherwise g = topk * routed_scaling_factor. (transformers' port ignores norm_topk_prob.)
- `scoring_func` "sigmoid" is DeepSeek-V3's gate: s = sigmoid(u^T e), a group scored by the sum
  of its top-2 experts, g = topk / sum(topk) if norm_topk_prob, then always * routed_scaling_factor.
- `bias_update_speed` > 0 adds DeepSeek-V3's auxiliary-loss-free balancing (V3 section 2.1.2): a
  per-expert bias b_i is added to the scores to *choose* experts only; g comes from the unbiased
  s. After each step `MoE.update_bias` moves b_i by gamma toward the under-loaded experts.

`ModelConfig.moe_impl` picks the dispatch: "naive" runs every expert on every token and mixes
them with a dense (N, N_r) matrix of gates (zero where not chosen); "sorted" sorts the N * K_r
(token, expert) pairs by expert, runs each expert once on its contiguous slice and adds the
results back with index_add_. They compute the same function (tests/test_moe.py).

Balance losses (2.2.3), per sequence of T tokens, averaged over the batch (`balance_losses`):

    L_ExpBal  = sum_i f_i P_i,    f_i = N_r/(K_r T) sum_t 1(t chose i),   P_i = 1/T sum_t s_{i,t}
    L_DevBal  = sum_d f'_d P'_d,  f'_d = mean_{i in E_d} f_i,             P'_d = sum_{i in E_d} P_i
    L_CommBal = sum_d f''_d P'_d, f''_d = D/(M T) sum_t 1(t is sent to a device of E_d)

E_1..E_D are D consecutive groups of experts (one per device), M the devices a token may reach.
f counts choices (no gradient); P carries the gradient into the gate. `MoE.forward` computes
them in training and in eval (they are cheap and worth logging); the caller adds
`RouterStats.balance_loss` = alpha1 L_ExpBal + alpha2 L_DevBal + alpha3 L_CommBal to the loss.

Token dropping (2.2.4): with `capacity_factor` set, in training only, each expert takes at most
ceil(capacity_factor * N * K_r / N_r) of the (token, expert) pairs, keeping those of highest
affinity s_{i,t}; the dropped pairs contribute nothing (shared experts still see every token).

Left out: expert parallelism (the all-to-all that sends tokens to the devices holding their
experts); the paper drops per device, here per expert (the same when a device holds one
expert); V2's rule that about 10% of the training sequences are never dropped; V3's
sequence-wise balance loss and its node-limited routing.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from minicoder.config import ModelConfig


@dataclass
class RouterStats:
    """What one MoE layer reports for one forward pass.

    Attributes:
        balance_loss: 0-dim, alpha1 * expert_loss + alpha2 * device_loss + alpha3 * comm_loss,
            differentiable through the gate's weight (0.0 when every alpha is 0).
        expert_loss, device_loss, comm_loss: the un-weighted L_ExpBal, L_DevBal, L_CommBal,
            0-dim and detached (for logging).
        expert_counts: (n_routed_experts,) float, the (token, expert) pairs each expert
            processed in this pass, after any dropping; the input of `MoE.update_bias`.
        dropped: the (token, expert) pairs dropped by the capacity factor.
    """

    balance_loss: torch.Tensor
    expert_loss: torch.Tensor
    device_loss: torch.Tensor
    comm_loss: torch.Tensor
    expert_counts: torch.Tensor
    dropped: int


class Gate(nn.Module):
    """The router: affinities s = softmax(x W^T) (or sigmoid), then the top-K experts per token.

    `weight` (n_routed_experts, d_model) is the only learned parameter (HF `gate.weight`); its init
    is normal(0, config.init_std). With bias_update_speed > 0 it also holds the buffer
    `expert_bias` (n_routed_experts,) float32, saved with the model but not trained by gradients.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.top_k, self.n_experts = config.n_activated_experts, config.n_routed_experts
        self.topk_method, self.n_group, self.topk_group = config.topk_method, config.n_group, config.topk_group
        self.scoring_func = config.scoring_func
        self.norm_topk_prob, self.routed_scaling_factor = config.norm_topk_prob, config.routed_scaling_factor
        self.weight = nn.Parameter(torch.empty(config.n_routed_experts, config.d_model))
        nn.init.normal_(self.weight, mean=0.0, std=config.init_std)
        if config.bias_update_speed > 0:
            self.register_buffer("expert_bias", torch.zeros(config.n_routed_experts, dtype=torch.float32))
        else:
            self.expert_bias = None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Route tokens x (N, d_model) -> (weights (N, K) float32, indices (N, K) int64, scores (N, N_r) float32).

        `indices` are each token's K chosen experts, best first; `weights` their gates g; `scores`
        the affinities s over all experts (before the bias and the group mask: the balance losses
        use them). The module's docstring gives the rules: scoring_func, topk_method, norm_topk_prob and
        routed_scaling_factor, and expert_bias (choosing only).

        >>> cfg = ModelConfig(vocab_size=8, n_layers=1, d_model=2, n_heads=1, d_ff=4, max_seq_len=4,
        ...                   n_routed_experts=4, n_activated_experts=2, moe_d_ff=2)
        >>> gate = Gate(cfg)
        >>> gate.weight.data = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
        >>> x = torch.tensor([[math.log(4), math.log(2)]])
        >>> weights, indices, scores = gate(x)
        >>> scores.tolist()  # softmax of logits ln 4, ln 2, 0, 0 = (4, 2, 1, 1) / 8
        [[0.5, 0.25, 0.125, 0.125]]
        >>> indices.tolist(), weights.tolist()
        ([[0, 1]], [[0.5, 0.25]])
        >>> gate.norm_topk_prob = True  # renormalised to sum to 1
        >>> [round(w, 4) for w in gate(x)[0][0].tolist()]
        [0.6667, 0.3333]
        >>> gate.weight.data = torch.tensor([[2.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.0, 0.0]])  # s = (16, 1, 2, 1) / 20
        >>> gate(x)[1].tolist()  # greedy: the best two of all
        [[0, 2]]
        >>> gate.topk_method, gate.n_group, gate.topk_group = "group_limited_greedy", 2, 1  # groups {0, 1}, {2, 3}
        >>> gate(x)[1].tolist()  # only the best group may be chosen from
        [[0, 1]]
        """
        # BEGIN ASSIGNMENT moe
        logits = F.linear(x.float(), self.weight.float())  # (N, N_r)
        scores = logits.softmax(dim=-1) if self.scoring_func == "softmax" else logits.sigmoid()  # (N, N_r)
        choice = scores if self.expert_bias is None else scores + self.expert_bias  # (N, N_r)
        if self.topk_method == "group_limited_greedy":
            grouped = choice.view(-1, self.n_group, self.n_experts // self.n_group)  # (N, G, N_r/G)
            if self.scoring_func == "softmax":  # V2: a group is as good as its best expert
                group_scores = grouped.amax(dim=-1)  # (N, G)
            else:  # V3: the sum of its best two (one, if a group holds a single expert)
                group_scores = grouped.topk(min(2, grouped.shape[-1]), dim=-1).values.sum(-1)  # (N, G)
            group_idx = group_scores.topk(self.topk_group, dim=-1).indices  # (N, topk_group)
            group_mask = torch.zeros_like(group_scores, dtype=torch.bool).scatter_(1, group_idx, True)  # (N, G)
            # V2 writes 0 where V3 writes -inf; the same while every kept score is > 0, but a
            # negative bias could otherwise let a masked expert win
            choice = grouped.masked_fill(~group_mask[..., None], float("-inf")).flatten(1)  # (N, N_r)
        indices = choice.topk(self.top_k, dim=-1).indices  # (N, K)
        weights = scores.gather(1, indices)  # (N, K) the unbiased s
        if self.scoring_func == "sigmoid":  # V3
            if self.norm_topk_prob:
                weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)  # (N, K)
            weights = weights * self.routed_scaling_factor
        elif self.norm_topk_prob and self.top_k > 1:  # V2: renormalise and do not scale
            weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)  # (N, K)
        else:
            weights = weights * self.routed_scaling_factor
        return weights, indices, scores
        # END ASSIGNMENT


class Expert(nn.Module):
    """One SwiGLU expert, w2(silu(w1 x) * w3 x). HF names: w1 gate_proj, w3 up_proj, w2 down_proj."""

    def __init__(self, d_model: int, d_ff: int):
        super().__init__()
        self.w1 = nn.Linear(d_model, d_ff, bias=False)
        self.w2 = nn.Linear(d_ff, d_model, bias=False)
        self.w3 = nn.Linear(d_model, d_ff, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """w2(silu(w1 x) * w3 x) for x (..., d_model) -> (..., d_model).

        >>> expert = Expert(2, 2)
        >>> for w in (expert.w1, expert.w2, expert.w3):
        ...     w.weight.data = torch.eye(2)
        >>> [round(v, 4) for v in expert(torch.tensor([1.0, -2.0])).tolist()]  # [silu(1) * 1, silu(-2) * -2]
        [0.7311, 0.4768]
        """
        return self.w2(F.silu(self.w1(x)) * self.w3(x))  # (..., d_ff) inside, (..., d_model) out


def balance_losses(scores: torch.Tensor, indices: torch.Tensor, config: ModelConfig,
                   batch_size: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """L_ExpBal, L_DevBal, L_CommBal (section 2.2.3), each per sequence and averaged over the batch.

    Args:
        scores: (B*T, N_r) the affinities s_{i,t} over all experts, as `Gate` returns them. With
            sigmoid scoring they are first normalised to sum to 1 per token, as V3's
            sequence-wise loss does, so that the minimum below still holds.
        indices: (B*T, K) the experts each token chose (before any dropping).
        config: gives N_r, K, D = config.balance_devices and M = config.balance_m_devices.
        batch_size, seq_len: B and T; the tokens are B sequences of T in a row.

    Returns:
        Three 0-dim float32 tensors; the gradient flows through `scores` only. A perfectly
        balanced routing (every f_i = 1, every P_i = 1/N_r) gives L_ExpBal = 1.

    >>> cfg = ModelConfig(vocab_size=8, n_layers=1, d_model=2, n_heads=1, d_ff=4, max_seq_len=4,
    ...                   n_routed_experts=4, n_activated_experts=2, moe_d_ff=2, n_devices=2)
    >>> scores = torch.full((2, 4), 0.25)          # one sequence of two tokens, uniform affinities
    >>> indices = torch.tensor([[0, 1], [2, 3]])  # token 0 on device 0 only, token 1 on device 1 only
    >>> [loss.item() for loss in balance_losses(scores, indices, cfg, batch_size=1, seq_len=2)]
    [1.0, 1.0, 0.5]
    """
    # BEGIN ASSIGNMENT moe
    B, T, E, K = batch_size, seq_len, config.n_routed_experts, config.n_activated_experts
    D, M = config.balance_devices, config.balance_m_devices
    s = scores.float().view(B, T, E)  # (B, T, E)
    if config.scoring_func == "sigmoid":
        s = s / s.sum(dim=-1, keepdim=True)  # (B, T, E)
    chosen = torch.zeros_like(s, dtype=torch.float32).scatter_(2, indices.view(B, T, K), 1.0)  # (B, T, E)
    f = chosen.sum(dim=1) * E / (K * T)  # (B, E)
    P = s.mean(dim=1)  # (B, E)
    expert_loss = (f * P).sum(-1).mean()
    f_dev = f.view(B, D, E // D).mean(-1)  # (B, D)
    P_dev = P.view(B, D, E // D).sum(-1)  # (B, D)
    device_loss = (f_dev * P_dev).sum(-1).mean()
    sent = chosen.view(B, T, D, E // D).amax(-1)  # (B, T, D) 1 where t reaches device d
    f_comm = sent.sum(dim=1) * D / (M * T)  # (B, D)
    comm_loss = (f_comm * P_dev).sum(-1).mean()
    return expert_loss, device_loss, comm_loss
    # END ASSIGNMENT


def capacity_mask(indices: torch.Tensor, priority: torch.Tensor, capacity: int, n_experts: int) -> torch.Tensor:
    """Which (token, expert) pairs fit: each expert keeps its `capacity` pairs of highest priority.

    Args:
        indices: (N, K) chosen experts. priority: (N, K) the pairs' affinities (higher kept first;
            ties go to the earlier token). capacity: pairs per expert. n_experts: N_r.

    Returns:
        (N, K) bool, True where the pair is kept.

    >>> indices = torch.tensor([[0, 1], [0, 2], [0, 1]])
    >>> priority = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.7, 0.3]])
    >>> capacity_mask(indices, priority, capacity=2, n_experts=3).tolist()  # expert 0 drops its 0.5
    [[True, True], [False, True], [True, True]]
    """
    # BEGIN ASSIGNMENT moe
    experts = indices.flatten()  # (A,) A = N * K pairs
    order = priority.flatten().argsort(descending=True, stable=True)  # (A,) best first
    order = order[experts[order].argsort(stable=True)]  # (A,) grouped by expert, best first within each
    counts = torch.bincount(experts, minlength=n_experts)  # (E,)
    starts = counts.cumsum(0) - counts  # (E,) where each expert's run begins in `order`
    rank = torch.arange(len(order), device=indices.device) - starts[experts[order]]  # (A,) place within its expert
    keep = torch.empty_like(experts, dtype=torch.bool)
    keep[order] = rank < capacity
    return keep.view_as(indices)  # (N, K)
    # END ASSIGNMENT


class MoE(nn.Module):
    """DeepSeekMoE: `MoE(config)(x)` maps x (B, T, d_model) to (y (B, T, d_model), RouterStats).

    gate: the router. experts: n_routed_experts `Expert`s of width moe_d_ff. shared_experts: one
    `Expert` of width n_shared_experts * moe_d_ff, or None when n_shared_experts is 0.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.moe_impl = config.moe_impl
        self.gate = Gate(config)
        self.experts = nn.ModuleList(Expert(config.d_model, config.moe_d_ff) for _ in range(config.n_routed_experts))
        self.shared_experts = (Expert(config.d_model, config.n_shared_experts * config.moe_d_ff)
                               if config.n_shared_experts > 0 else None)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, RouterStats]:
        """y = shared(x) + sum_k g_k expert_{i_k}(x) for x (B, T, C) -> (B, T, C), and the RouterStats.

        The experts run in x's dtype (the float32 gates are cast to it). In training with a
        capacity_factor, pairs beyond an expert's capacity are dropped first.

        >>> torch.manual_seed(0) and None
        >>> cfg = ModelConfig(vocab_size=8, n_layers=1, d_model=4, n_heads=1, d_ff=4, max_seq_len=4,
        ...                   n_routed_experts=4, n_shared_experts=1, n_activated_experts=2, moe_d_ff=3)
        >>> moe = MoE(cfg)
        >>> x = torch.randn(2, 3, 4)
        >>> y, stats = moe(x)
        >>> tuple(y.shape), stats.expert_counts.sum().item(), stats.dropped  # 6 tokens x 2 experts
        ((2, 3, 4), 12.0, 0)
        >>> moe.moe_impl = "naive"
        >>> torch.allclose(moe(x)[0], y, atol=1e-6)
        True
        """
        B, T, C = x.shape
        cfg, E, K = self.config, self.config.n_routed_experts, self.config.n_activated_experts
        x_flat = x.reshape(B * T, C)  # (N, C)
        weights, indices, scores = self.gate(x_flat)  # (N, K), (N, K), (N, E)
        keep = torch.ones_like(indices, dtype=torch.bool)  # (N, K)
        if cfg.capacity_factor is not None and self.training:
            capacity = math.ceil(cfg.capacity_factor * B * T * K / E)
            keep = capacity_mask(indices, scores.gather(1, indices), capacity, E)  # (N, K)
            weights = weights * keep  # (N, K) a dropped pair adds 0
        if self.moe_impl == "naive":
            y = self._forward_naive(x_flat, weights, indices)  # (N, C)
        else:
            tokens = torch.arange(B * T, device=x.device)[:, None].expand(-1, K)  # (N, K)
            y = self._forward_sorted(x_flat, tokens[keep], weights[keep], indices[keep])  # (N, C); [keep] is (A,)
        if self.shared_experts is not None:
            y = y + self.shared_experts(x_flat)  # (N, C)

        losses = balance_losses(scores, indices, cfg, B, T)
        alphas = (cfg.balance_alpha1, cfg.balance_alpha2, cfg.balance_alpha3)
        stats = RouterStats(
            balance_loss=sum(a * loss for a, loss in zip(alphas, losses)),
            expert_loss=losses[0].detach(), device_loss=losses[1].detach(), comm_loss=losses[2].detach(),
            expert_counts=torch.bincount(indices[keep], minlength=E).float(),  # (E,)
            dropped=int((~keep).sum()),
        )
        return y.view(B, T, C), stats

    def _forward_naive(self, x: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Every expert on every token, mixed by a dense matrix of gates: x (N, C) -> (N, C)."""
        combine = torch.zeros(x.shape[0], len(self.experts), dtype=x.dtype, device=x.device)  # (N, E)
        combine = combine.scatter(1, indices, weights.to(x.dtype))  # (N, E) zero where not chosen
        out = torch.stack([expert(x) for expert in self.experts], dim=1)  # (N, E, C)
        return torch.einsum("ne,nec->nc", combine, out)  # (N, C)

    def _forward_sorted(self, x: torch.Tensor, tokens: torch.Tensor, weights: torch.Tensor,
                        indices: torch.Tensor) -> torch.Tensor:
        """Each expert once, on a contiguous slice of its tokens: x (N, C) and A pairs -> (N, C).

        tokens, weights, indices (A,): the token, gate and expert of each kept (token, expert) pair, in any
        order. Sort the pairs by expert, run each expert that has pairs once on the rows of x of its pairs
        (every expert sees its own tokens only), scale each output row by its gate (in x's dtype) and add it
        to its token's row; a token without pairs gets zeros.

        >>> cfg = ModelConfig(vocab_size=8, n_layers=1, d_model=2, n_heads=1, d_ff=4, max_seq_len=4,
        ...                   n_routed_experts=3, n_activated_experts=2, moe_d_ff=2)
        >>> moe = MoE(cfg)
        >>> for e, expert in enumerate(moe.experts):  # w1 = w2 = I, w3 = (e + 1) I: x -> (e + 1) silu(x) x
        ...     for w, scale in ((expert.w1, 1.0), (expert.w2, 1.0), (expert.w3, e + 1.0)):
        ...         w.weight.data = scale * torch.eye(2)
        >>> x = torch.tensor([[1.0, -2.0], [1.0, -2.0], [3.0, 3.0]])  # silu(1) * 1, silu(-2) * -2 = 0.7311, 0.4768
        >>> y = moe._forward_sorted(x, tokens=torch.tensor([0, 1, 0]), weights=torch.tensor([0.5, 1.0, 0.25]),
        ...                         indices=torch.tensor([2, 0, 0]))
        >>> [[round(v, 4) for v in row] for row in y.tolist()]  # 0.5 * 3 + 0.25 * 1 = 1.75 times; 1 time; no pair
        [[1.2794, 0.8344], [0.7311, 0.4768], [0.0, 0.0]]
        """
        # BEGIN ASSIGNMENT moe
        order = indices.argsort(stable=True)  # (A,) pairs grouped by expert
        tokens, weights = tokens[order], weights[order]  # (A,) each
        counts = torch.bincount(indices, minlength=len(self.experts)).tolist()  # pairs per expert
        x_sorted = x[tokens]  # (A, C)
        outs = [expert(xe) for expert, xe in zip(self.experts, x_sorted.split(counts)) if len(xe)]  # [(A_i, C)]
        out = torch.cat(outs) * weights.to(x.dtype)[:, None]  # (A, C) in the same order as `tokens`
        return torch.zeros_like(x).index_add_(0, tokens, out)  # (N, C)
        # END ASSIGNMENT

    @torch.no_grad()
    def update_bias(self, expert_counts: torch.Tensor) -> None:
        """DeepSeek-V3's auxiliary-loss-free balancing: b_i += gamma * sign(mean load - load_i).

        Call it after an optimizer step with the (n_routed_experts,) loads of that step (e.g.
        `RouterStats.expert_counts`, summed over micro-batches). Overloaded experts become less
        likely to be chosen, underloaded ones more. A no-op when bias_update_speed is 0, so a
        training loop may call it on every MoE layer unconditionally.

        >>> cfg = ModelConfig(vocab_size=8, n_layers=1, d_model=2, n_heads=1, d_ff=4, max_seq_len=4,
        ...                   n_routed_experts=4, n_activated_experts=2, moe_d_ff=2, bias_update_speed=0.1)
        >>> moe = MoE(cfg)
        >>> moe.update_bias(torch.tensor([4.0, 0.0, 2.0, 2.0]))  # mean load 2
        >>> [round(b, 4) for b in moe.gate.expert_bias.tolist()]
        [-0.1, 0.1, 0.0, 0.0]
        """
        if self.gate.expert_bias is None:
            return
        load = expert_counts.to(self.gate.expert_bias)  # (E,)
        self.gate.expert_bias += self.config.bias_update_speed * torch.sign(load.mean() - load)
