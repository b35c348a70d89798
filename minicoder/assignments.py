"""Course assignments: turn minicoder's own sources into student stubs, and grade them.

The reference solution *is* the library. A solution region inside a function is fenced by two
comment lines:

    def get_pair_counts(ids):
        \"\"\"Count adjacent pairs: [1, 2, 3, 1, 2] -> {(1, 2): 2, (2, 3): 1, (3, 1): 1}.\"\"\"
        # BEGIN ASSIGNMENT tokenizer
        counts = {}
        ...
        return counts
        # END ASSIGNMENT

`make_student_copy("tokenizer", out)` copies the `minicoder` package to `out/minicoder` and replaces
every `tokenizer` region with `raise NotImplementedError(...)`, keeping the signature and the
docstring, which is the student's specification. Regions of other assignments stay solved.

Grading runs the assignment's graded test files with `MINICODER_STUDENT=out`; `tests/conftest.py`
then puts `out` first on `sys.path`, so the very same tests import the student's `minicoder`.
`tests/test_assignments.py` proves both directions: every graded test fails on the stubs, and a
copy made without stubbing passes.

Left out: partial-credit weighting and hidden tests; an instructor adds those by listing more
test files in ASSIGNMENTS.
"""

import io
import os
import re
import shutil
import subprocess
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent

_BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN ASSIGNMENT (?P<name>[\w-]+)\s*$")
_END = re.compile(r"^[ \t]*# END ASSIGNMENT\s*$")
_DEF = re.compile(r"^(?P<indent>[ \t]*)(?:async\s+)?def\s+(?P<name>\w+)")


@dataclass(frozen=True)
class Assignment:
    """One course assignment.

    Attributes:
        name: the tag used in `# BEGIN ASSIGNMENT <name>` markers.
        title: one line shown to students.
        tests: graded test files, relative to the repository root. Every test in them must
            exercise a solution region, so that all of them fail on the stubs.
    """

    name: str
    title: str
    tests: tuple[str, ...]


ASSIGNMENTS = {
    a.name: a
    for a in [
        Assignment("tokenizer", "Byte-level BPE: training, encoding, decoding (chapter 1)",
                   ("tests/test_tokenizer_bpe.py",)),
    ]
}


def get_assignment(name: str) -> Assignment:
    if name not in ASSIGNMENTS:
        raise ValueError(f"unknown assignment {name!r}; choose one of: {', '.join(sorted(ASSIGNMENTS))}")
    return ASSIGNMENTS[name]


def stub_source(source: str, assignment: str, filename: str = "<source>") -> tuple[str, int]:
    """Replace each region of `assignment` in `source` by a NotImplementedError; return (text, count).

    Markers of other assignments are left in place (their code stays solved).
    """
    lines = source.splitlines(keepends=True)
    comments = _comment_lines(source)  # markers count only as real comments, not inside strings
    out: list[str] = []
    count = 0
    i = 0
    while i < len(lines):
        m = _BEGIN.match(lines[i]) if i + 1 in comments else None
        if not m or m["name"] != assignment:
            out.append(lines[i])
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not (j + 1 in comments and _END.match(lines[j])):
            if j + 1 in comments and _BEGIN.match(lines[j]):
                raise ValueError(f"{filename}:{j + 1}: nested BEGIN ASSIGNMENT; close the region at line {i + 1} first")
            j += 1
        if j == len(lines):
            raise ValueError(f"{filename}:{i + 1}: BEGIN ASSIGNMENT {assignment} has no matching '# END ASSIGNMENT'")
        func = _enclosing_function(lines, i, len(m["indent"]))
        if func is None:
            raise ValueError(f"{filename}:{i + 1}: an assignment region must sit inside a function body")
        out.append(f'{m["indent"]}raise NotImplementedError("assignment {assignment}: implement {func} '
                   f'(its docstring is the specification)")\n')
        count += 1
        i = j + 1
    return "".join(out), count


def _comment_lines(source: str) -> set[int]:
    """1-based numbers of the lines that start with a comment token (Python's own tokenizer)."""
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT and not tok.line[: tok.start[1]].strip():
            lines.add(tok.start[0])
    return lines


def _enclosing_function(lines: list[str], at: int, indent: int) -> str | None:
    for k in range(at - 1, -1, -1):
        m = _DEF.match(lines[k])
        if m and len(m["indent"]) < indent:
            return m["name"]
    return None


def make_student_copy(assignment: str, out: str | os.PathLike, stub: bool = True) -> Path:
    """Copy the package to `out/minicoder`, stubbing `assignment`'s regions (unless `stub=False`).

    Returns the path of the copied package. Refuses to overwrite a non-empty `out/minicoder`,
    which may hold a student's work.
    """
    get_assignment(assignment)
    out = Path(out)
    dest = out / "minicoder"
    if dest.exists() and any(dest.iterdir()):
        raise ValueError(f"{dest} already exists and is not empty; choose another --out or remove it first")
    shutil.copytree(PACKAGE_DIR, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)
    total = 0
    for path in sorted(dest.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if stub:
            new, n = stub_source(text, assignment, str(path))
            if n:
                path.write_text(new, encoding="utf-8")
                total += n
        else:
            total += stub_source(text, assignment, str(path))[1]
    if total == 0:
        raise ValueError(f"no '# BEGIN ASSIGNMENT {assignment}' regions found in {PACKAGE_DIR}")
    a = ASSIGNMENTS[assignment]
    (out / "ASSIGNMENT.md").write_text(
        f"# Assignment: {a.title}\n\n"
        f"{total} function bodies in `minicoder/` raise NotImplementedError; each docstring says what to build.\n"
        f"Grade your work from the minicoder checkout with:\n\n"
        f"    make grade ASSIGNMENT={assignment} STUDENT={out.resolve()}\n\n"
        f"Graded tests: {', '.join(a.tests)}\n",
        encoding="utf-8",
    )
    return dest


def grade(assignment: str, student: str | os.PathLike, extra_args: list[str] | None = None) -> int:
    """Run the assignment's graded tests against the `minicoder` package under `student`."""
    a = get_assignment(assignment)
    student = Path(student).resolve()
    if not (student / "minicoder" / "__init__.py").is_file():
        raise ValueError(f"{student} has no minicoder/__init__.py; pass the --out directory of 'assignment make'")
    tests = [str(REPO_DIR / t) for t in a.tests]
    missing = [t for t in tests if not Path(t).is_file()]
    if missing:
        raise FileNotFoundError(f"graded tests not found: {missing}; run grading from a minicoder checkout")
    env = dict(os.environ, MINICODER_STUDENT=str(student))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests, *(extra_args or [])]
    return subprocess.call(cmd, cwd=REPO_DIR, env=env)


def register_cli(sub) -> None:
    p = sub.add_parser("assignment", help="make student copies of a module and grade them")
    asub = p.add_subparsers(dest="assignment_command", metavar="ACTION", required=True)
    mk = asub.add_parser("make", help="write a copy of minicoder with the assignment's regions stubbed")
    mk.add_argument("name", help=f"assignment name, one of: {', '.join(ASSIGNMENTS)}")
    mk.add_argument("--out", required=True, help="directory to create; the copy lands in OUT/minicoder")
    mk.add_argument("--solved", action="store_true", help="copy without stubbing (to check the grader)")
    mk.set_defaults(func=_cli_make)
    gr = asub.add_parser("grade", help="run the assignment's graded tests against a student copy")
    gr.add_argument("name", help=f"assignment name, one of: {', '.join(ASSIGNMENTS)}")
    gr.add_argument("--student", required=True, help="the OUT directory given to 'assignment make'")
    gr.set_defaults(func=_cli_grade)
    ls = asub.add_parser("list", help="list the assignments and their graded tests")
    ls.set_defaults(func=_cli_list)


def _cli_make(args) -> int:
    dest = make_student_copy(args.name, args.out, stub=not args.solved)
    print(f"wrote {dest}; see {Path(args.out) / 'ASSIGNMENT.md'}")
    return 0


def _cli_grade(args) -> int:
    return grade(args.name, args.student)


def _cli_list(args) -> int:
    for a in ASSIGNMENTS.values():
        print(f"{a.name:12s} {a.title}  [{', '.join(a.tests)}]")
    return 0
