"""The course-assignment mechanism, checked the same way for every assignment.

Run: .venv/bin/pytest tests/test_assignments.py -q     (about 4 min on 2 busy cores; -m "not slow": about 30 s)

For each assignment: its parts are exactly its fenced functions and name real tests; the student
package holds no solution region; its requirements.txt brings every third-party module that its graded
tests and chapters import; the stubs fail every graded test cleanly (failures, not errors); the
reference, put back into the package, scores full marks through the package's own grader; each chapter
exercise it declares names the sections and functions its chapter's text names, and those sections run
in its student package with only those functions written. Then a scripted walk-through (one function
right, one wrong), a timeout, and a train_merges that delegates to the naive trainer.
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


@pytest.fixture(scope="module")
def stubbed(tmp_path_factory):
    """stubbed(name): the assignment's student package, made once for this file's tests, which only read it."""
    made = {}

    def package(name: str) -> Path:
        if name not in made:
            made[name] = tmp_path_factory.mktemp(f"{name}-package")
            make_student_copy(name, made[name])
        return made[name]

    return package


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
def test_package_layout_and_no_solution_region(stubbed, name):
    a = ASSIGNMENTS[name]
    out = stubbed(name)
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
    assert "make test FN=" in md and "make grade" in md and ("make chapter" in md or not a.chapters)
    assert "pytest-timeout" in (out / "requirements.txt").read_text(encoding="utf-8")


def grade_quiet(name, student, **kw):
    lines = []
    result = grade(name, student, echo=lines.append, **kw)
    result["table"] = "\n".join(lines)
    return result


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_stubs_fail_every_graded_test_cleanly(stubbed, name):
    """Slow tests included: on stubs they fail at once."""
    result = grade_quiet(name, stubbed(name))
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
    """The chapter's set-up cells (those before its first "## " heading) and the exercise's sections, as one
    script. A heading may sit anywhere in a markdown cell; the last one in a cell says where its code goes."""
    nb = nbformat.read(package / exercise.chapter, as_version=4)
    setup, section, where = [], [], "setup"
    for cell in nb.cells:
        for heading in re.findall(r"^## .*", cell.source, re.M) if cell.cell_type == "markdown" else []:
            if heading.startswith(exercise.start):
                where = "in"
            elif exercise.stop and heading.startswith(exercise.stop) and where == "in":
                where = "done"
            elif where == "setup":
                where = "before"  # sections before the exercise's are not run
        if cell.cell_type == "code":
            {"setup": setup, "in": section}.get(where, []).append(cell.source)
    assert setup and section, exercise
    return "\n\n".join(setup + section)


def run_exercise(package: Path, exercise) -> subprocess.CompletedProcess:
    """Run the exercise's script in the package's chapters/ folder, as the notebook would (no kernel: cheaper)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MINICODER_STUDENT", "PYTHONPATH")}
    env.update(MPLBACKEND="Agg", OMP_WAIT_POLICY=env.get("OMP_WAIT_POLICY", "PASSIVE"))
    check = ("\nimport minicoder, pathlib\n"
             "assert pathlib.Path(minicoder.__file__).resolve().is_relative_to(pathlib.Path('..').resolve())\n")
    return subprocess.run([sys.executable, "-c", exercise_script(package, exercise) + check],
                          cwd=(package / exercise.chapter).parent, env=env, capture_output=True, text=True, timeout=600)


def exercise_runs() -> dict[str, tuple[str, list]]:
    """Each distinct check once: {test id: (assignment, its exercises)}. Exercises that run the same sections with
    the same functions stubbed (chapter 2's 2 and 3; its 4, which every data assignment declares with all of its
    functions, so nothing is stubbed) share one run."""
    runs: dict[tuple, list[tuple[str, object]]] = {}
    for a in ASSIGNMENTS.values():
        for e in a.exercises:
            stubbed = frozenset(a.functions) - set(e.functions)
            runs.setdefault((e.chapter, e.start, e.stop, stubbed), []).append((a.name, e))
    ids = {}
    for run in runs.values():
        names = "+".join(dict.fromkeys(name for name, _ in run))
        numbers = ",".join(str(n) for n in sorted({e.number for _, e in run}))
        ids[f"{names}-{Path(run[0][1].chapter).stem[:2]}-exercise-{numbers}"] = (run[0][0], [e for _, e in run])
    return ids


EXERCISE_RUNS = exercise_runs()


@pytest.mark.slow
@pytest.mark.parametrize("run", sorted(EXERCISE_RUNS))
def test_exercise_runs_with_only_its_functions(tmp_path, run):
    """The exercise's sections run in the assignment's student package with only its functions written (the
    assignment's others stubbed, other assignments' solved): the package that a student actually has."""
    name, (exercise, *_) = EXERCISE_RUNS[run]
    keep = tuple(f.split(":", 1)[1] for f in exercise.functions)
    make_student_copy(name, tmp_path, keep=keep)
    proc = run_exercise(tmp_path, exercise)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.slow
def test_exercise_check_sees_a_missing_function(tmp_path):
    """The check above is not vacuous: chapter 3's sections 1 and 2 fail once split_fim is a stub too."""
    exercise = next(e for e in ASSIGNMENTS["fim"].exercises if e.number == 1)
    make_student_copy("fim", tmp_path, keep=("format_fim",))
    proc = run_exercise(tmp_path, exercise)
    assert proc.returncode != 0 and "implement split_fim" in proc.stderr, proc.stderr[-2000:]


EXERCISE_ITEM = re.compile(r"^# (\d+)\. \*\*[^*]+\*\* \((sections? [^;)]*)", re.M)


def section_numbers(words: str) -> set[int]:
    """ "sections 1 and 2" -> {1, 2}; "sections 3 to 8" -> {3, ..., 8}; "section 5" -> {5}."""
    numbers = [int(n) for n in re.findall(r"\d+", words)]
    return set(range(numbers[0], numbers[-1] + 1)) if " to " in words else set(numbers)


@pytest.mark.parametrize("name", NAMES)
def test_exercises_match_their_chapters_text(name):
    """Each declared exercise is in its chapter's list, runs the sections the text names, and its functions are
    named there (or the text says it needs every function); and every exercise of the chapter's list that says
    what it "needs" is declared by one of the chapter's assignments."""
    for e in ASSIGNMENTS[name].exercises:
        source = (REPO / e.chapter).with_suffix(".py").read_text(encoding="utf-8")
        headings = re.findall(r"^# (## .*)", source, re.M)
        exercises = source[source.index("# ## Exercises"):]
        items = {int(n): words for n, words in EXERCISE_ITEM.findall(exercises)}
        assert e.number in items, f"{e.chapter} has no exercise {e.number} naming its section"
        first = next(i for i, h in enumerate(headings) if h.startswith(e.start))
        last = next((i for i, h in enumerate(headings) if e.stop and h.startswith(e.stop)), len(headings))
        ran = {int(m[1]) for h in headings[first:last] if (m := re.match(r"## (\d+)\.", h))}
        assert ran == section_numbers(items[e.number]), (e, items[e.number])
        item = re.split(r"^# \d+\. \*\*", exercises[exercises.index(f"# {e.number}. **") + 3:], flags=re.M)[0]
        if set(e.functions) != set(ASSIGNMENTS[name].functions):
            for f in e.functions:
                short = f.split(":", 1)[1].split(".")[-1]
                assert re.search(rf"\b{short}\b", item), f"{e.chapter} exercise {e.number} does not name {short}"
    for chapter in {e.chapter for e in ASSIGNMENTS[name].exercises}:
        source = (REPO / chapter).with_suffix(".py").read_text(encoding="utf-8")
        source = source[source.index("# ## Exercises"):]
        declared = {e.number for a in ASSIGNMENTS.values() for e in a.exercises if e.chapter == chapter}
        needs = {int(n) for n, words in re.findall(r"^# (\d+)\. \*\*[^*]+\*\* \(([^)]*)", source, re.M)
                 if "needs" in words and "no assignment" not in words}
        assert needs <= declared, f"{chapter}: exercises {sorted(needs - declared)} are declared by no assignment"


def third_party_modules(paths: list[Path]) -> set[str]:
    """The top-level modules that these files (and the minicoder modules they import, transitively) load:
    import statements anywhere in them, and the names given to pytest.importorskip, importlib.import_module
    and importlib.resources.files. Standard-library modules and minicoder itself are left out."""
    todo, seen, found = list(paths), set(), set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        if path.suffix == ".ipynb":
            cells = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
            sources = ["\n".join(x for x in c.splitlines() if not x.lstrip().startswith(("%", "!"))) for c in cells]
        else:
            sources = [path.read_text(encoding="utf-8")]
        names = set()
        for node in (n for src in sources for n in ast.walk(ast.parse(src))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
            elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
                  and isinstance(node.args[0].value, str)
                  and getattr(node.func, "attr", getattr(node.func, "id", None)) in {"importorskip", "import_module",
                                                                                     "files"}):
                names.add(node.args[0].value)
        for module in names:
            top = module.split(".")[0]
            if top == "minicoder":
                for candidate in (REPO / f"{module.replace('.', '/')}.py", REPO / module.replace(".", "/") / "__init__.py"):
                    if candidate.is_file():
                        todo.append(candidate)
            elif top not in sys.stdlib_module_names:
                found.add(top)
    return found


def installs(requirements: list[str]) -> set[str]:
    """The distributions that `pip install` of these requirements brings in (as installed here), normalised."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    todo, found = [Requirement(r) for r in requirements], set()
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in found:
            continue
        found.add(name)
        try:
            deps = requires(req.name) or []
        except PackageNotFoundError:
            continue
        for dep in map(Requirement, deps):
            if dep.marker is None or dep.marker.evaluate({"extra": ""}):
                todo.append(dep)
    return found


@pytest.mark.parametrize("name", NAMES)
def test_requirements_cover_what_the_tests_and_chapters_import(stubbed, name):
    """A student's `make setup` installs requirements.txt: it must bring every third-party module that the
    assignment's graded tests, conftest and chapters import (a missing one skips or fails graded tests)."""
    from importlib.metadata import packages_distributions

    from packaging.utils import canonicalize_name

    a, package = ASSIGNMENTS[name], stubbed(name)
    files = [package / f for f in (*assignments.ALWAYS_COPIED, *a.test_files, *a.chapters)]
    lines = (package / "requirements.txt").read_text(encoding="utf-8").split()
    installed = installs(lines)
    owners = packages_distributions()
    missing = {m: owners.get(m) for m in third_party_modules(files)
               if not any(canonicalize_name(d) in installed for d in owners.get(m, []))}
    assert not missing, f"{name}: requirements.txt lacks the distributions of {missing}; add them to `requires`"


def test_requirements_name_dev_packages():
    with pytest.raises(ValueError, match="pyproject.toml's dev list lacks"):
        assignments._requirements(assignments.Assignment("demo", "demo", parts=(), requires=("no-such-package",)))


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
    assert json.loads(json.dumps(assignments._requirements(ASSIGNMENTS["tokenizer"])))  # pyproject's lists parse
