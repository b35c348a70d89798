"""The graded tests of the `sampling` assignment (generate.py): a group per function.

Run: .venv/bin/pytest tests/test_sampling_graded.py -q
Grade a student package: .venv/bin/minicoder assignment grade sampling --student DIR

`minicoder/assignments.py` maps each test here to the function it grades. Oracles: hand-worked
rows (ties included, resolved as the docstrings say), float64 references of each rule written out
here, HF `transformers`' TopKLogitsWarper and TopPLogitsWarper (skipped where transformers is not
installed), and, where sampling is involved, the frequencies of 20,000 seeded draws against the
float64 distribution the rules define (each within 5 standard deviations; never a token the
filters removed). The draws use a fixed seed, so a pass or a fail is the same on every run.
"""

import math

import pytest
import torch

from minicoder.generate import sample_next, top_k_filter, top_p_filter

NEG = float("-inf")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def warpers():
    return pytest.importorskip("transformers.generation.logits_process")


def kept(x: torch.Tensor) -> list:
    return x.isfinite().tolist()


# ---------------------------------------------------------------- top-k

@pytest.mark.parametrize("row, k, want", [
    ([1.0, 3.0, 2.0], 2, [False, True, True]),
    ([1.0, 3.0, 2.0], 1, [False, True, False]),
    ([1.0, 3.0, 2.0], 3, [True, True, True]),
    ([1.0, 3.0, 2.0], 50, [True, True, True]),  # k above the vocabulary keeps everything
    ([5.0, 1.0, 5.0, 0.0], 1, [True, False, True, False]),  # a tie at the boundary: both stay
    ([-2.0, -1.0, -1.0, -3.0, -1.0], 2, [False, True, True, False, True]),
])
def test_top_k_filter_by_hand(row, k, want):
    logits = torch.tensor([row])
    before = logits.clone()
    out = top_k_filter(logits, k)
    assert out.shape == logits.shape and out.dtype == logits.dtype
    assert kept(out) == [want]
    assert torch.equal(out[out.isfinite()], logits[out.isfinite()])  # kept logits are unchanged
    assert torch.equal(logits, before)  # the input is not modified


@pytest.mark.parametrize("k", [1, 2, 5, 13])
def test_top_k_filter_equals_float64_and_hf(k):
    logits = torch.randn(4, 13, generator=gen(k))
    out = top_k_filter(logits, k)
    kth = logits.double().sort(dim=-1, descending=True).values[:, k - 1:k]
    assert kept(out) == (logits.double() >= kth).tolist()
    assert (out.isfinite().sum(-1) == k).all()  # no ties in random logits: exactly k
    hf = warpers().TopKLogitsWarper(k)(None, logits.clone())
    assert torch.equal(out, hf)


# ---------------------------------------------------------------- top-p

@pytest.mark.parametrize("p, want", [
    (0.35, [False, True, False, False]),  # 0.4 alone reaches 0.35
    (0.6, [False, True, True, False]),    # 0.4 + 0.3 = 0.7 reaches 0.6; 0.4 alone does not
    (0.75, [False, True, True, True]),
    (0.95, [True, True, True, True]),
    (1.0, [True, True, True, True]),
    (1e-6, [False, True, False, False]),  # the most likely token is always kept
])
def test_top_p_filter_by_hand(p, want):
    logits = torch.tensor([[0.1, 0.4, 0.3, 0.2]]).log()
    before = logits.clone()
    out = top_p_filter(logits, p)
    assert out.shape == logits.shape and out.dtype == logits.dtype
    assert kept(out) == [want]
    assert torch.equal(out[out.isfinite()], logits[out.isfinite()])
    assert torch.equal(logits, before)


@pytest.mark.parametrize("logits, p, want", [
    # four tokens of exactly 0.25: a prefix that reaches p exactly is enough; ties go to the lower id
    ([0.0, 0.0, 0.0, 0.0], 0.25, [True, False, False, False]),
    ([0.0, 0.0, 0.0, 0.0], 0.5, [True, True, False, False]),
    ([0.0, 0.0, 0.0, 0.0], 0.75, [True, True, True, False]),
    ([0.0, 0.0, 0.0, 0.0], 0.8, [True, True, True, True]),
    # 1, 0 pattern: the three tied top tokens rank by id
    ([1.0, 0.0, 1.0, 0.0, 1.0], 0.1, [True, False, False, False, False]),
    ([1.0, 0.0, 1.0, 0.0, 1.0], 0.3, [True, False, True, False, False]),
    ([0.0, 1.0, 0.0, 1.0, 0.0], 0.3, [False, True, False, False, False]),  # e / (2e + 3) = 0.32 alone
    ([0.0, 1.0, 0.0, 1.0, 0.0], 0.4, [False, True, False, True, False]),
])
def test_top_p_filter_exact_reach_and_ties(logits, p, want):
    assert kept(top_p_filter(torch.tensor([logits]), p)) == [want]


def nucleus64(row: torch.Tensor, p: float) -> list[bool]:
    """The shortest prefix of the ranking (probability down, id up) whose float64 mass reaches p."""
    probs = row.double().softmax(-1).tolist()
    ranking = sorted(range(len(probs)), key=lambda i: (-probs[i], i))
    keep, mass = set(), 0.0
    for i in ranking:
        if mass >= p:
            break
        keep.add(i)
        mass += probs[i]
    return [i in keep for i in range(len(probs))]


@pytest.mark.parametrize("p", [0.1, 0.5, 0.83, 0.9, 0.999])
def test_top_p_filter_equals_float64_and_hf(p):
    logits = torch.randn(6, 17, generator=gen(int(p * 1000))) * 2
    out = top_p_filter(logits, p)
    assert kept(out) == [nucleus64(row, p) for row in logits]
    hf = warpers().TopPLogitsWarper(p)(None, logits.clone())
    assert torch.equal(out, hf)


# ---------------------------------------------------------------- sample_next

def test_sample_next_temperature_0_is_greedy():
    logits = torch.randn(5, 11, generator=gen(1))
    g = gen(2)
    state = g.get_state()
    for kw in [{}, {"top_k": 3}, {"top_p": 0.5}, {"top_k": 1, "top_p": 0.1}]:
        got = sample_next(logits, temperature=0, generator=g, **kw)
        assert got.shape == (5,) and got.dtype == torch.int64
        assert got.tolist() == logits.argmax(-1).tolist(), kw
    assert torch.equal(g.get_state(), state)  # nothing was drawn
    assert sample_next(logits.bfloat16(), temperature=0).tolist() == logits.bfloat16().argmax(-1).tolist()


def distribution64(logits: torch.Tensor, temperature: float, top_k=None, top_p=None) -> torch.Tensor:
    """The float64 distribution that sample_next draws from: temperature, then top-k, then top-p."""
    z = logits.double() / temperature
    if top_k is not None:
        kth = z.sort(descending=True).values[min(top_k, len(z)) - 1]
        z = z.masked_fill(z < kth, NEG)
    if top_p is not None and top_p < 1:
        z = z.masked_fill(~torch.tensor(nucleus64(z, top_p)), NEG)
    return z.softmax(-1)


LOGITS = [2.0, 1.5, 1.0, 0.5, 0.0, -1.0, -3.0]
CASES = [  # temperature, top_k, top_p
    (1.0, None, None), (0.5, None, None), (2.0, None, None), (1.3, 3, None), (0.7, None, 0.8),
    (2.0, 5, 0.6), (1.0, 2, 0.99),
]


@pytest.mark.parametrize("temperature, top_k, top_p", CASES)
def test_sample_next_frequencies_match_float64(temperature, top_k, top_p):
    n = 20_000
    logits = torch.tensor(LOGITS).expand(n, -1)
    draws = sample_next(logits, temperature, top_k, top_p, generator=gen(1234))
    assert draws.shape == (n,) and draws.dtype == torch.int64
    freq = torch.bincount(draws, minlength=len(LOGITS)).double() / n
    want = distribution64(torch.tensor(LOGITS), temperature, top_k, top_p)
    sigma = (want * (1 - want) / n).sqrt()
    for i in range(len(LOGITS)):
        if want[i] == 0:
            assert freq[i] == 0, f"token {i} was filtered out but drawn"
        else:
            assert abs(freq[i] - want[i]) <= 5 * sigma[i] + 1e-12, (i, float(freq[i]), float(want[i]))


def test_sample_next_applies_temperature_before_top_p():
    """At temperature 3 the nucleus of 0.5 holds 2 tokens (0.35 + 0.25); at temperature 1, only the first (0.64)."""
    logits = torch.tensor([3.0, 2.0, 1.0, 0.0, -1.0])
    right = distribution64(logits, 3.0, top_p=0.5)
    wrong = torch.zeros(5, dtype=torch.float64)  # top-p at temperature 1 first, then the temperature
    wrong[0] = 1.0
    assert (right > 0).sum() == 2 and not torch.equal(right > 0, wrong > 0)
    draws = sample_next(logits.expand(3000, -1), 3.0, None, 0.5, generator=gen(5))
    assert set(draws.tolist()) == {0, 1}


def test_sample_next_is_repeatable_with_a_seed():
    logits = torch.randn(64, 9, generator=gen(3))
    a = sample_next(logits, 1.0, generator=gen(7))
    b = sample_next(logits, 1.0, generator=gen(7))
    c = sample_next(logits, 1.0, generator=gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert sample_next(logits.bfloat16(), 0.9, 4, 0.9, generator=gen(7)).shape == (64,)
    # a row whose filters leave one token always draws it
    assert sample_next(logits, 5.0, top_k=1, generator=gen(9)).tolist() == logits.argmax(-1).tolist()
    assert math.isclose(float(distribution64(logits[0], 5.0, top_k=1).max()), 1.0)
