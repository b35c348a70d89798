"""The course-assignment mechanism, checked the same way for every assignment.

Run: .venv/bin/pytest tests/test_assignments.py -q     (about 100 s on 2 busy cores; -m "not slow": about 30 s)

For each assignment: its parts are exactly its fenced functions and name real tests; the student
package holds no solution region; the stubs fail every graded test cleanly (failures, not errors);
the reference, put back into the package, scores full marks through the package's own grader; the
chapter exercises run with only the functions they ask for. Then a scripted walk-through (one
function right, one wrong), a timeout, and a train_merges that delegates to the naive trainer.
"""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from minicoder import assignments, cli
from minicoder.assignments import ASSIGNMENTS, find_regions, grade, make_student_copy, stub_source

REPO = Path(__file__).resolve().parents[1]
NAMES = sorted(ASSIGNMENTS)


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


def test_methods_are_named_by_qualified_name_and_keep_leaves_them_solved():
    src = ('class C:\n    def m(self):\n        # BEGIN ASSIGNMENT demo\n        return 1\n        # END ASSIGNMENT\n\n'
           'def h():\n    # BEGIN ASSIGNMENT demo\n    return 2\n    # END ASSIGNMENT\n')
    assert [r["function"] for r in find_regions(src, "demo")] == ["C.m", "h"]
    out, n = stub_source(src, "demo", keep={"C.m"})
    assert n == 1 and "return 1" in out and "implement h " in out and "return 2" not in out


def test_markers_inside_strings_are_not_regions():
    src = 'def f():\n    """Example:\n    # BEGIN ASSIGNMENT demo\n    x = 1\n    # END ASSIGNMENT\n    """\n    return 2\n'
    assert stub_source(src, "demo") == (src, 0)
    # The package's own docs show the markers; only tokenizer.py's 8 real regions are stubbed.
    assert stub_source((REPO / "minicoder" / "assignments.py").read_text(encoding="utf-8"), "tokenizer")[1] == 0
    assert stub_source((REPO / "minicoder" / "tokenizer.py").read_text(encoding="utf-8"), "tokenizer")[1] == 8


def test_stub_source_errors():
    with pytest.raises(ValueError, match="no matching '# END ASSIGNMENT'"):
        stub_source("def f():\n    # BEGIN ASSIGNMENT a\n    return 1\n", "a")
    with pytest.raises(ValueError, match="without a BEGIN"):
        stub_source("def f():\n    return 1\n    # END ASSIGNMENT\n", "a")
    with pytest.raises(ValueError, match="must sit inside a function"):
        stub_source("# BEGIN ASSIGNMENT a\nx = 1\n# END ASSIGNMENT\n", "a")
    with pytest.raises(ValueError, match="unknown assignment 'nope'"):
        assignments.get_assignment("nope")


def defined_tests(path: Path) -> set[str]:
    """The test functions a file defines (read with ast, not imported)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}


@pytest.mark.parametrize("name", NAMES)
def test_parts_are_the_fenced_functions_and_name_real_tests(name):
    a = ASSIGNMENTS[name]
    assert sorted(a.functions) == sorted(assignments.fenced_functions(name))
    listed: dict[str, set[str]] = {}
    for part in a.parts:
        assert part.tests, f"{part.name} has no graded test"
        for node in part.tests:
            file, test = node.split("::")
            listed.setdefault(file, set()).add(test)
    for file, tests in listed.items():
        # every listed test exists, and every test in a graded file grades some part
        assert tests == defined_tests(REPO / file), file
    for f in a.functions:
        assignments.worked_examples(f)  # raises unless the docstring has a >>> example


def test_make_student_copy_refuses_to_overwrite(tmp_path):
    make_student_copy("tokenizer", tmp_path)
    with pytest.raises(ValueError, match="already exists and is not empty"):
        make_student_copy("tokenizer", tmp_path)
    with pytest.raises(ValueError, match="keep names functions without a region"):
        make_student_copy("tokenizer", tmp_path / "other", keep=("nope",))


def region_bodies(name: str) -> list[str]:
    """The reference's solution regions of `name`, each as its non-blank stripped lines joined."""
    bodies = []
    for path in sorted((REPO / "minicoder").rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for r in find_regions("\n".join(lines) + "\n", name, str(path)):
            bodies.append("\n".join(x.strip() for x in lines[r["begin"] + 1:r["end"]] if x.strip()))
    return bodies


def normalised(path: Path) -> str:
    return "\n".join(x.strip() for x in path.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip())


@pytest.mark.parametrize("name", NAMES)
def test_package_layout_and_no_solution_region(tmp_path, name):
    a = ASSIGNMENTS[name]
    out = tmp_path / "pkg"
    make_student_copy(name, out)
    for rel in ["minicoder/__init__.py", "minicoder/assignments.py", "ASSIGNMENT.md", "Makefile", "pytest.ini",
                "requirements.txt", *assignments.ALWAYS_COPIED, *a.test_files, *a.data, *a.chapters]:
        assert (out / rel).exists(), rel
    for path in (out / "minicoder").rglob("*.py"):
        ast.parse(path.read_text(encoding="utf-8"))  # the stubbed package is valid Python
    texts = {p: normalised(p) for p in out.rglob("*") if p.is_file() and p.suffix in {".py", ".ipynb", ".md", ".txt"}}
    bodies = region_bodies(name)
    assert len(bodies) == len(a.functions)
    for p, text in texts.items():
        if p.suffix == ".py":  # a marker is a real comment (assignments.py's docs show one in a string)
            assert not find_regions(p.read_text(encoding="utf-8"), name), p
        for body in bodies:
            assert body not in text, f"{p} holds a solution region:\n{body[:200]}"
    md = (out / "ASSIGNMENT.md").read_text(encoding="utf-8")
    order = [md.index(f"`{p.short}`") for p in a.parts]
    assert order == sorted(order), "ASSIGNMENT.md lists the functions in the suggested order"
    assert "make test FN=" in md and "make grade" in md and "make chapter" in md
    assert "pytest-timeout" in (out / "requirements.txt").read_text(encoding="utf-8")


def grade_quiet(name, student, **kw):
    lines = []
    result = grade(name, student, echo=lines.append, **kw)
    result["table"] = "\n".join(lines)
    return result


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_stubs_fail_every_graded_test_cleanly(tmp_path, name):
    """Slow tests included: on stubs they fail at once."""
    make_student_copy(name, tmp_path)
    result = grade_quiet(name, tmp_path)
    records = result["records"]
    assert records and all(r["outcome"] == "failed" for r in records), result["table"]
    assert all(r["phase"] == "call" for r in records), "a fixture called a stub (an error, not a failure)"
    assert all(r["stub"] for r in records), [r for r in records if not r["stub"]][:3]
    for row in result["rows"]:
        assert row["passed"] == 0 and row["total"] > 0 and row["status"] == "not implemented", result["table"]
    assert result["score"] == 0 and result["returncode"] != 0


def grade_inside(folder: Path, name: str, *extra: str) -> subprocess.CompletedProcess:
    """Grade assignment `name` as a student does, inside the folder with its own grader (`make grade`)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MINICODER_STUDENT", "MINICODER_REPORT", "PYTHONPATH")}
    env["PYTHONPATH"] = str(folder)
    return subprocess.run([sys.executable, "-m", "minicoder.assignments", "grade", name, "--student", ".",
                           "--quick", *extra], cwd=folder, env=env, capture_output=True, text=True, timeout=900)


def table_statuses(table: str) -> dict[str, str]:
    rows = re.findall(r"^  (\S.*?)\s+(\d+)/(\d+)\s+(passed|failed|timeout|not implemented|blocked|not run)",
                      table, re.M)
    return {part: status for part, _, _, status in rows}


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_reference_scores_full_marks_through_the_package(tmp_path, name):
    make_student_copy(name, tmp_path, stub=False)
    proc = grade_inside(tmp_path, name)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    statuses = table_statuses(proc.stdout)
    assert len(statuses) == len(ASSIGNMENTS[name].parts) and set(statuses.values()) == {"passed"}, proc.stdout
    assert "score: 100.0 / 100" in proc.stdout


def fill_in(package: Path, function: str, body: str) -> None:
    """Replace the stub of `function` (in tokenizer.py) by `body`, as a student would."""
    path = package / "minicoder" / "tokenizer.py"
    text = path.read_text(encoding="utf-8")
    stub = re.compile(rf'^(?P<indent>[ \t]*)raise NotImplementedError\("assignment \w+: implement {function} .*\n', re.M)
    m = stub.search(text)
    assert m, function
    lines = "".join(m["indent"] + line + "\n" for line in body.strip("\n").splitlines())
    path.write_text(text[:m.start()] + lines + text[m.end():], encoding="utf-8")


def reference_body(function: str) -> str:
    source = (REPO / "minicoder" / "tokenizer.py").read_text(encoding="utf-8")
    r = next(r for r in find_regions(source, "tokenizer") if r["function"] == function)
    lines = source.splitlines()[r["begin"] + 1:r["end"]]
    indent = len(r["indent"])
    return "\n".join(x[indent:] for x in lines)


@pytest.mark.slow
def test_walk_through_one_right_one_wrong(tmp_path):
    folder = tmp_path / "student"
    make_student_copy("tokenizer", folder)
    fill_in(folder, "get_pair_counts", reference_body("get_pair_counts"))
    fill_in(folder, "merge", "return list(ids)  # forgot to merge")
    # Graded inside the folder by its own grader: an installed (reference) minicoder must not shadow it.
    proc = grade_inside(folder, "tokenizer")
    assert proc.returncode == 1, proc.stderr
    statuses = table_statuses(proc.stdout)
    expected = {p.short: "not implemented" for p in ASSIGNMENTS["tokenizer"].parts}
    expected.update(get_pair_counts="passed", merge="failed")
    assert statuses == expected, proc.stdout
    assert "score:" in proc.stdout
    # The instructor's grader (tests from this checkout) gives the same table.
    result = grade_quiet("tokenizer", folder, quick=True)
    assert {r["part"]: r["status"] for r in result["rows"]} == expected, result["table"]
    merge_row = next(r for r in result["rows"] if r["part"] == "merge")
    assert 0 < merge_row["passed"] < merge_row["total"] and "test_merge[" in merge_row["failures"][0]
    assert "      test_merge[" in result["table"]  # the first failures are shown under their row


def test_endless_loop_times_out(tmp_path):
    make_student_copy("tokenizer", tmp_path)
    fill_in(tmp_path, "get_pair_counts", "while True:\n    pass")
    result = grade_quiet("tokenizer", tmp_path, only="get_pair_counts", timeout=1)
    (row,) = result["rows"]
    assert row["status"] == "timeout" and row["passed"] == 0, result["table"]


@pytest.mark.slow
def test_train_merges_that_calls_the_naive_trainer_fails(tmp_path):
    make_student_copy("tokenizer", tmp_path, keep=tuple(f.split(":")[1] for f in ASSIGNMENTS["tokenizer"].functions
                                                        if f != "tokenizer:train_merges"))
    fill_in(tmp_path, "train_merges", "return train_merges_naive(word_counts, num_merges, first_id)")
    result = grade_quiet("tokenizer", tmp_path, only="train_merges")
    (row,) = result["rows"]
    failed = [r["nodeid"] for r in result["records"] if r["outcome"] == "failed"]
    assert row["status"] == "failed" and failed == [f"{assignments._BPE}::test_train_merges_is_incremental"], \
        result["table"]


def exercise_script(package: Path, exercise) -> str:
    """The chapter's set-up cells and the exercise's section, as one script."""
    nb = nbformat.read(package / exercise.chapter, as_version=4)
    setup, section, where = [], [], "setup"
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("## "):
            if cell.source.startswith(exercise.start):
                where = "in"
            elif exercise.stop and cell.source.startswith(exercise.stop):
                where = "done"
            elif where == "setup":
                where = "before"  # sections before the exercise's are not run
        if cell.cell_type == "code":
            {"setup": setup, "in": section}.get(where, []).append(cell.source)
    assert setup and section, exercise
    return "\n\n".join(setup + section)


@pytest.mark.parametrize("name, number", [(a.name, e.number) for a in ASSIGNMENTS.values() for e in a.exercises])
def test_exercise_runs_with_only_its_functions(tmp_path, name, number):
    exercise = next(e for e in ASSIGNMENTS[name].exercises if e.number == number)
    keep = tuple(f.split(":", 1)[1] for f in exercise.functions)
    make_student_copy(name, tmp_path, keep=keep)
    script = exercise_script(tmp_path, exercise)
    assert any(k in script for k in keep)
    env = {k: v for k, v in os.environ.items() if k not in ("MINICODER_STUDENT", "PYTHONPATH")}
    env["MPLBACKEND"] = "Agg"
    chapter_dir = (tmp_path / exercise.chapter).parent
    check = "\nimport minicoder, pathlib\nassert pathlib.Path(minicoder.__file__).resolve().is_relative_to(pathlib.Path('..').resolve())\n"
    proc = subprocess.run([sys.executable, "-c", script + check], cwd=chapter_dir, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_cli_list_shows_functions_and_tests(capsys):
    assert cli.main(["assignment", "list"]) == 0
    out = capsys.readouterr().out
    for a in ASSIGNMENTS.values():
        assert out.count(f"{a.name}:") == 1
        for p in a.parts:
            assert re.search(rf"{re.escape(p.short)}\s+-> {re.escape(p.tests[0].split('::')[-1])}", out), p.short


def test_cli_grade_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["assignment", "grade", "tokenizer", "--student", str(tmp_path)]) == 1
    assert "has no minicoder/__init__.py" in capsys.readouterr().err
    make_student_copy("tokenizer", tmp_path / "s")
    assert cli.main(["assignment", "grade", "tokenizer", "--student", str(tmp_path / "s"), "--only", "nope"]) == 1
    assert "--only 'nope' is not a part of tokenizer" in capsys.readouterr().err
    assert json.loads(json.dumps(assignments._requirements()))  # pyproject's lists parse
