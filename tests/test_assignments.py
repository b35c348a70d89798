"""The course-assignment mechanism: stubs fail every graded test, the reference passes them.

Run: .venv/bin/pytest tests/test_assignments.py -q
"""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from minicoder import assignments
from minicoder.assignments import ASSIGNMENTS, make_student_copy, stub_source

REPO = Path(__file__).resolve().parents[1]


def run_graded(assignment: str, student: Path, *extra: str) -> dict[str, int]:
    tests = [str(REPO / t) for t in ASSIGNMENTS[assignment].tests]
    env = dict(os.environ, MINICODER_STUDENT=str(student))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests, *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    summary = proc.stdout.strip().splitlines()[-1]
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|errors?)", summary)}
    counts["errors"] = counts.pop("error", 0) + counts.pop("errors", 0)
    counts["rc"] = proc.returncode
    counts["summary"] = summary
    return counts


def test_stub_source_replaces_regions_and_keeps_docstrings():
    src = ('def f(x):\n    """Double x: f(2) -> 4."""\n    # BEGIN ASSIGNMENT demo\n    y = 2 * x\n'
           '    return y\n    # END ASSIGNMENT\n\n\ndef g():\n    # BEGIN ASSIGNMENT other\n    return 1\n'
           '    # END ASSIGNMENT\n')
    out, n = stub_source(src, "demo")
    assert n == 1
    assert 'raise NotImplementedError("assignment demo: implement f' in out
    assert '"""Double x: f(2) -> 4."""' in out and "2 * x" not in out and "return 1" in out
    ast.parse(out)
    ns = {}
    exec(out, ns)
    with pytest.raises(NotImplementedError):
        ns["f"](2)


def test_markers_inside_strings_are_not_regions():
    src = 'def f():\n    """Example:\n    # BEGIN ASSIGNMENT demo\n    x = 1\n    # END ASSIGNMENT\n    """\n    return 2\n'
    assert stub_source(src, "demo") == (src, 0)
    # The package's own docs show the markers; only tokenizer.py's 8 real regions are stubbed.
    assert stub_source((REPO / "minicoder" / "assignments.py").read_text(encoding="utf-8"), "tokenizer")[1] == 0
    assert stub_source((REPO / "minicoder" / "tokenizer.py").read_text(encoding="utf-8"), "tokenizer")[1] == 8


def test_stub_source_errors():
    with pytest.raises(ValueError, match="no matching '# END ASSIGNMENT'"):
        stub_source("def f():\n    # BEGIN ASSIGNMENT a\n    return 1\n", "a")
    with pytest.raises(ValueError, match="must sit inside a function"):
        stub_source("# BEGIN ASSIGNMENT a\nx = 1\n# END ASSIGNMENT\n", "a")
    with pytest.raises(ValueError, match="unknown assignment 'nope'"):
        assignments.get_assignment("nope")


def test_make_student_copy_refuses_to_overwrite(tmp_path):
    make_student_copy("tokenizer", tmp_path)
    with pytest.raises(ValueError, match="already exists and is not empty"):
        make_student_copy("tokenizer", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ASSIGNMENTS))
def test_stubs_fail_every_graded_test(tmp_path, name):
    dest = make_student_copy(name, tmp_path)
    for path in dest.rglob("*.py"):
        ast.parse(path.read_text(encoding="utf-8"))  # the stubbed copy is valid Python
    assert "NotImplementedError" in (dest / f"{name}.py").read_text(encoding="utf-8")
    result = run_graded(name, tmp_path, "-m", "not slow")
    assert result["rc"] != 0 and result.get("passed", 0) == 0, result["summary"]
    assert result.get("failed", 0) + result["errors"] >= 5, result["summary"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ASSIGNMENTS))
def test_unstubbed_copy_passes_through_the_grader(tmp_path, name):
    make_student_copy(name, tmp_path, stub=False)
    result = run_graded(name, tmp_path, "-m", "not slow")
    assert result["rc"] == 0 and result.get("failed", 0) == 0 and result["errors"] == 0, result["summary"]
    assert result.get("passed", 0) >= 5
