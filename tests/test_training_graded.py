"""The graded tests of the `training` assignment (train.py, data.py): a group per function.

Run: .venv/bin/pytest tests/test_training_graded.py -q
Grade a student package: .venv/bin/minicoder assignment grade training --student DIR

`minicoder/assignments.py` maps each test here to the function it grades. Oracles: the numbers of
DeepSeek LLM section 2.3 (2,000 warm-up steps; the rate multiplied by 0.316 after 80% and again
after 90% of the tokens, 10% of the peak), the schedule's rule evaluated step by step in the test,
torch's own AdamW (which parameters it actually shrinks), and information theory (a uniform guess
over 256 byte values costs exactly 8 bits per byte, whatever the tokenizer). Models are built
inside the tests, never in fixtures.
"""

import math

import pytest
import torch

from minicoder.config import ModelConfig
from minicoder.data import bits_per_byte
from minicoder.model import Transformer
from minicoder.train import TrainConfig, lr_at, param_groups

# ---------------------------------------------------------------- lr_at


def schedule64(step: int, lr: float, warmup: int, max_steps: int, decay_at=(0.8, 0.9), factor=0.316) -> float:
    """The rule, one case at a time."""
    if step < warmup:
        return lr * (step + 1) / warmup
    drops = [round(share * max_steps) for share in decay_at]
    return lr * factor ** len([d for d in drops if step >= d])


def test_lr_at_deepseek_numbers():
    """DeepSeek-Coder 1.3B's own schedule: peak 5.3e-4 after 2,000 warm-up steps, drops at 80% and 90%."""
    cfg = TrainConfig(lr=5.3e-4, warmup_steps=2000, max_steps=10_000)
    assert lr_at(0, cfg) == pytest.approx(5.3e-4 / 2000, rel=1e-12)
    assert lr_at(999, cfg) == pytest.approx(5.3e-4 / 2, rel=1e-12)
    assert lr_at(1999, cfg) == pytest.approx(5.3e-4, rel=1e-12)
    assert lr_at(2000, cfg) == pytest.approx(5.3e-4, rel=1e-12) and lr_at(7999, cfg) == pytest.approx(5.3e-4, rel=1e-12)
    assert lr_at(8000, cfg) == pytest.approx(5.3e-4 * 0.316, rel=1e-12)  # x0.316 at 80%
    assert lr_at(8999, cfg) == pytest.approx(5.3e-4 * 0.316, rel=1e-12)
    assert lr_at(9000, cfg) == pytest.approx(5.3e-4 * 0.316**2, rel=1e-12)  # x0.316 again at 90%
    assert lr_at(9999, cfg) / 5.3e-4 == pytest.approx(0.1, abs=2e-4)  # "10% of the maximum"


@pytest.mark.parametrize("lr, warmup, max_steps", [(1.0, 10, 100), (3e-3, 7, 53), (4.2e-4, 1, 11), (2.0, 0, 37)])
def test_lr_at_every_step(lr, warmup, max_steps):
    """Every step of short odd-sized runs (53 steps: the drops fall at round(42.4) = 42 and round(47.7) = 48)."""
    cfg = TrainConfig(lr=lr, warmup_steps=warmup, max_steps=max_steps)
    got = [lr_at(s, cfg) for s in range(max_steps)]
    want = [schedule64(s, lr, warmup, max_steps) for s in range(max_steps)]
    assert got == pytest.approx(want, rel=1e-12, abs=0)
    assert max(got) == pytest.approx(lr, rel=1e-12)  # the peak is reached, never passed


@pytest.mark.parametrize("decay_at, factor", [((), 0.316), ((0.5,), 0.5), ((0.25, 0.5, 0.75), 0.1)])
def test_lr_at_other_decay_points(decay_at, factor):
    cfg = TrainConfig(lr=1.0, warmup_steps=3, max_steps=41, decay_at=decay_at, decay_factor=factor)
    got = [lr_at(s, cfg) for s in range(41)]
    assert got == pytest.approx([schedule64(s, 1.0, 3, 41, decay_at, factor) for s in range(41)], rel=1e-12, abs=0)


# ---------------------------------------------------------------- param_groups


def small_model(tie: bool) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig(vocab_size=53, n_layers=2, d_model=12, n_heads=3, n_kv_heads=1, d_ff=22,
                                   max_seq_len=16, tie_embeddings=tie))


@pytest.mark.parametrize("tie", [False, True])
def test_param_groups_split_matrices_from_gains(tie):
    model = small_model(tie)
    groups = param_groups(model, 0.1)
    assert isinstance(groups, list) and len(groups) == 2
    decay, no_decay = groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}  # a tied matrix once
    assert [names[id(p)] for p in decay["params"]] == [n for n, p in model.named_parameters() if p.dim() >= 2]
    assert [names[id(p)] for p in no_decay["params"]] == [n for n, p in model.named_parameters() if p.dim() < 2]
    assert all(n.endswith("norm.weight") for n in (names[id(p)] for p in no_decay["params"]))
    assert ("head.weight" in [names[id(p)] for p in decay["params"]]) == (not tie)
    assert len(decay["params"]) + len(no_decay["params"]) == len(names)


def test_param_groups_leave_frozen_parameters_out():
    model = small_model(False)
    model.embed.weight.requires_grad_(False)
    model.norm.weight.requires_grad_(False)
    decay, no_decay = param_groups(model, 0.05)
    ids = {id(p) for p in decay["params"]} | {id(p) for p in no_decay["params"]}
    assert id(model.embed.weight) not in ids and id(model.norm.weight) not in ids
    assert len(ids) == sum(p.requires_grad for p in model.parameters())


def test_param_groups_in_adamw_decay_only_matrices():
    """With zero gradients an AdamW step changes a parameter only by weight decay: gains must not move."""
    model = small_model(False)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(param_groups(model, 0.5), lr=0.1)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in model.named_parameters():
        if p.dim() >= 2:
            torch.testing.assert_close(p.detach(), before[n] * (1 - 0.1 * 0.5), atol=1e-7, rtol=0)
        else:
            assert torch.equal(p.detach(), before[n]), n


# ---------------------------------------------------------------- bits_per_byte


@pytest.mark.parametrize("loss, n_tokens, n_bytes, want", [
    (math.log(2), 4, 8, 0.5), (1.0, 1000, 3500, 1000 / (math.log(2) * 3500)), (0.0, 10, 3, 0.0),
    (2.5, 7, 7, 2.5 / math.log(2)), (3.1, 123_457, 456_791, 3.1 * 123_457 / (math.log(2) * 456_791)),
])
def test_bits_per_byte_by_hand(loss, n_tokens, n_bytes, want):
    assert bits_per_byte(loss, n_tokens, n_bytes) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("bytes_per_token", [1, 2])
def test_bits_per_byte_of_a_uniform_guess_is_8(bytes_per_token):
    """A model that spreads its guess evenly over all 256**b possible b-byte tokens pays 8 bits per byte."""
    n_tokens = 5
    logits = torch.zeros(n_tokens, 256**bytes_per_token)  # uniform
    loss = torch.nn.functional.cross_entropy(logits, torch.arange(n_tokens)).item()  # ln(256**b) nats per token
    assert bits_per_byte(loss, n_tokens, n_tokens * bytes_per_token) == pytest.approx(8.0, rel=1e-6)
