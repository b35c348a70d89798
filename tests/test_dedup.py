"""MinHash near-deduplication end to end: a labelled set of real code, exact Jaccard, datasketch as the oracle.

Run: .venv/bin/pytest tests/test_dedup.py -q
The `dedup` assignment's graded tests (shingles, the hash family, both signature paths, bands and rows,
banding) are in tests/test_dedup_graded.py; this file is not graded.
"""

import random
import re
import sysconfig
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from minicoder.dedup import (
    MAX_HASH,
    deduplicate,
    estimate_jaccard,
    exact_jaccard,
    minhash_signature,
    minhash_signatures,
    near_duplicate_clusters,
    optimal_bands_rows,
    shingles,
)

STDLIB = Path(sysconfig.get_paths()["stdlib"])
# Unrelated, hand-written standard-library modules of 3-40 kB: the base documents and the negatives.
BASE_MODULES = [
    "bisect", "heapq", "fnmatch", "glob", "shlex", "textwrap", "string", "queue", "sched", "copy",
    "tabnanny", "netrc", "pprint", "reprlib", "graphlib", "numbers", "secrets", "selectors", "shelve",
    "filecmp", "fileinput", "getopt", "gettext", "cmd", "code", "codeop", "colorsys", "contextvars",
    "dataclasses", "enum", "functools", "hmac", "ipaddress", "linecache", "mimetypes", "operator",
    "optparse", "quopri", "random", "runpy", "signal", "site", "stat", "symtable", "timeit", "tokenize",
    "trace", "uu", "wave", "weakref", "zipapp",
]


def _base_texts() -> list[str]:
    texts = []
    for name in BASE_MODULES:
        path = STDLIB / f"{name}.py"
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            if 3_000 <= len(text) <= 40_000:
                texts.append(text)
    assert len(texts) >= 25, "too few standard-library modules found to build the labelled set"
    return texts


def _edit_lines(text: str, rng: random.Random, frac: float) -> str:
    """Delete, duplicate or rewrite about `frac` of the lines."""
    lines = text.splitlines(keepends=True)
    for _ in range(max(1, int(frac * len(lines)))):
        i = rng.randrange(len(lines))
        op = rng.choice(["delete", "duplicate", "rewrite"])
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        else:
            lines[i] = f"    value_{rng.randrange(10**6)} = compute({rng.randrange(100)})\n"
    return "".join(lines)


def _rename_identifiers(text: str, rng: random.Random, k: int = 3) -> str:
    """Rename k identifiers that are defined in the file (functions, classes) everywhere they occur."""
    names = sorted(set(re.findall(r"^\s*(?:def|class)\s+(\w+)", text, flags=re.M)))
    for name in rng.sample(names, min(k, len(names))):
        text = re.sub(rf"\b{name}\b", f"{name}_renamed", text)
    return text


def _reorder_functions(text: str, rng: random.Random) -> str:
    """Shuffle the top-level blocks (each def/class with its body) of a module."""
    blocks = re.split(r"(?m)^(?=def |class )", text)
    head, body = blocks[0], blocks[1:]
    rng.shuffle(body)
    return head + "".join(body)


@pytest.fixture(scope="module")
def labelled():
    """(texts, family) where family[i] names the base document text i was made from."""
    rng = random.Random(1234)
    bases = _base_texts()
    texts, family = [], []
    for f, base in enumerate(bases):
        texts.append(base)
        family.append(f)
        if f % 2 == 0:  # half of the bases get near-duplicates, the others are negatives
            for variant in (
                _edit_lines(base, rng, 0.03),
                _rename_identifiers(base, rng),
                _reorder_functions(base, rng),
                _reorder_functions(_edit_lines(base, rng, 0.02), rng),
            ):
                texts.append(variant)
                family.append(f)
    order = list(range(len(texts)))
    rng.shuffle(order)  # so that the kept document is not always the base
    return [texts[i] for i in order], [family[i] for i in order]


def _pairs(clusters: list[list[int]]) -> set[tuple[int, int]]:
    return {pair for c in clusters for pair in combinations(sorted(c), 2)}


def test_labelled_set_precision_recall(labelled):
    texts, family = labelled
    truth = {(i, j) for i, j in combinations(range(len(texts)), 2) if family[i] == family[j]}
    found = _pairs(near_duplicate_clusters(texts, threshold=0.7))
    precision = len(found & truth) / len(found)
    recall = len(found & truth) / len(truth)
    assert precision >= 0.95, precision
    assert recall >= 0.95, recall


def test_lsh_equals_naive_on_labelled_set(labelled):
    texts = labelled[0][:40]  # the naive path is quadratic
    assert near_duplicate_clusters(texts, 0.7, method="lsh") == near_duplicate_clusters(texts, 0.7, method="naive")


def test_minhash_estimates_exact_jaccard():
    """Pairs spread over Jaccard 0..1: a document against prefixes of itself and against other files."""
    texts = _base_texts()[:12]
    errors = []
    for k, text in enumerate(texts):
        for frac in (0.2, 0.5, 0.7, 0.9):
            other = text[: int(frac * len(text))]
            errors.append(abs(estimate_jaccard(minhash_signature(text), minhash_signature(other))
                              - exact_jaccard(text, other)))
        other = texts[(k + 1) % len(texts)]
        errors.append(abs(estimate_jaccard(minhash_signature(text), minhash_signature(other))
                          - exact_jaccard(text, other)))
    assert np.mean(errors) < 0.05, np.mean(errors)
    assert np.max(errors) < 0.15, np.max(errors)


def test_agrees_with_datasketch():
    """datasketch's MinHash(num_perm=256), fed the same shingles, estimates the same similarities."""
    datasketch = pytest.importorskip("datasketch")
    texts = _base_texts()[:10]
    rng = random.Random(7)
    diffs = []
    for text in texts:
        other = _edit_lines(text, rng, 0.05)
        ours = estimate_jaccard(minhash_signature(text), minhash_signature(other))
        m1, m2 = datasketch.MinHash(num_perm=256), datasketch.MinHash(num_perm=256)
        m1.update_batch([s.encode("utf-8") for s in shingles(text)])
        m2.update_batch([s.encode("utf-8") for s in shingles(other)])
        diffs.append(abs(ours - m1.jaccard(m2)))
    assert np.mean(diffs) < 0.05, np.mean(diffs)






def test_signature_properties():
    text = _base_texts()[0]
    sig = minhash_signature(text)
    assert sig.shape == (256,) and sig.dtype == np.uint32
    assert np.array_equal(sig, minhash_signature(text))  # deterministic
    assert not np.array_equal(sig, minhash_signature(text, seed=2))
    assert minhash_signature(text, num_perm=64).shape == (64,)
    batch = minhash_signatures([text, "", text[:500]])
    assert np.array_equal(batch[0], sig) and np.array_equal(batch[2], minhash_signature(text[:500]))
    assert (batch[1] == MAX_HASH).all()  # no tokens
    assert estimate_jaccard(batch[0], batch[1]) == 0.0
    assert exact_jaccard("", "  ") == 1.0 and exact_jaccard("", text) == 0.0



def test_large_bucket_of_copies():
    """Many copies of one document (one huge LSH bucket) plus distinct ones: one cluster, quickly."""
    rng = random.Random(0)
    copy = " ".join(f"t{rng.randrange(50)}" for _ in range(60))
    texts = [copy] * 1500 + [" ".join(f"u{i}_{j}" for j in range(30)) for i in range(1500)]
    clusters = near_duplicate_clusters(texts)
    assert clusters == [list(range(1500))]


def test_empty_input():
    assert near_duplicate_clusters([]) == [] and deduplicate([]) == ([], [])


@pytest.mark.parametrize("threshold", [0, 1, 1.5, -0.1, "0.7", None])
def test_bad_threshold(threshold):
    with pytest.raises(ValueError, match="threshold must be a number strictly between 0 and 1"):
        near_duplicate_clusters(["a b c"], threshold=threshold)
    with pytest.raises(ValueError, match="threshold must be a number strictly between 0 and 1"):
        deduplicate(["a b c"], threshold=threshold, method="naive")
    with pytest.raises(ValueError, match="threshold"):
        optimal_bands_rows(threshold)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown dedup method 'fast'; choose one of: lsh, naive"):
        near_duplicate_clusters(["a"], method="fast")
    with pytest.raises(ValueError, match="num_perm must be an integer >= 2"):
        minhash_signature("a b", num_perm=1)
    with pytest.raises(ValueError, match="ngram_size must be an integer >= 1"):
        exact_jaccard("a", "b", ngram_size=0)
    with pytest.raises(ValueError, match="same num_perm"):
        estimate_jaccard(np.zeros(256), np.zeros(128))


def test_cli(tmp_path, capsys):
    from minicoder.cli import main

    base, other = _base_texts()[:2]
    (tmp_path / "a.py").write_text(base)
    (tmp_path / "b.py").write_text(base + "\nextra = 1\n")
    (tmp_path / "c.py").write_text(other)
    assert main(["dedup", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "keep a.py, drop b.py" in out
    assert "3 .py files under" in out and "1 near-duplicate clusters, 1 files to drop at Jaccard >= 0.7" in out
    assert main(["dedup", str(tmp_path / "missing")]) == 1
    assert capsys.readouterr().err.strip().endswith("not a directory: " + str(tmp_path / "missing"))


# -- the grader: a minhash_signatures that delegates to the naive path fails the timing test, and only it --

@pytest.mark.slow
def test_minhash_signatures_that_calls_the_naive_path_fails(tmp_path):
    from test_assignment_shortcuts import fill_in

    from minicoder.assignments import ASSIGNMENTS, grade, make_student_copy

    keep = tuple(f.split(":", 1)[1] for f in ASSIGNMENTS["dedup"].functions if f != "dedup:minhash_signatures")
    make_student_copy("dedup", tmp_path, keep=keep)
    fill_in(tmp_path, "dedup", "minhash_signatures",
            "texts = list(texts)\n"
            "sigs = [minhash_signature_naive(t, num_perm, seed, ngram_size) for t in texts]\n"
            "return np.array(sigs, dtype=np.uint32).reshape(len(texts), num_perm)")
    lines = []
    result = grade("dedup", tmp_path, only="minhash_signatures", echo=lines.append)
    (row,) = result["rows"]
    failed = [r["nodeid"] for r in result["records"] if r["outcome"] == "failed"]
    assert row["status"] == "failed" and failed == ["tests/test_dedup_graded.py::test_minhash_signatures_is_vectorised"], \
        "\n".join(lines)
    assert row["passed"] == row["total"] - 1  # the signatures themselves are right
