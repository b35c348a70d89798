"""Dependency parsing and Algorithm 1 ordering (DeepSeek-Coder section 2.2), end to end.

Run: .venv/bin/pytest tests/test_depsort.py -q
The `depsort` assignment's graded tests (the components, both orders, Python imports) are in
tests/test_depsort_graded.py; this file is not graded: the other languages, order_repository, samples,
and repositories through the pipeline.

Oracles: hand-derived graphs and orders of the shipped repositories (data_samples/repos/EXPECTED.json);
for real standard-library packages, imports found independently here with `ast` and
`importlib.util.resolve_name`, and strongly connected components from Tarjan's algorithm written
here (the library uses Kosaraju's).

The pipeline reads each top-level stdlib package as its own repository root (email/ holds
feedparser.py, mime/text.py, ... while the code says `from email.feedparser import FeedParser`):
the "real layout" tests below read packages that way, through `prepare.read_repository` too.
"""

import ast
import importlib.util
import json
import sysconfig
from pathlib import Path

import pytest
from test_depsort_graded import tarjan  # the independent SCC oracle, written once

from minicoder.data import STDLIB_EXCLUDE
from minicoder.depsort import (
    METHODS,
    _expand_use,
    concatenate_with_spans,
    find_dependencies,
    order_repository,
    path_comment,
    python_imports,
    repository_samples,
    topological_sort,
)
from minicoder.filters import FilterConfig
from minicoder.prepare import read_repository

REPOS = Path(__file__).resolve().parents[1] / "data_samples" / "repos"
EXPECTED = {k: v for k, v in json.loads((REPOS / "EXPECTED.json").read_text()).items() if not k.startswith("_")}
STDLIB = Path(sysconfig.get_paths()["stdlib"])


def read_repo(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8") for p in sorted(root.rglob("*")) if p.is_file()}


def check_order(graph: dict[str, set[str]], components: list[list[str]]) -> list[tuple[str, str]]:
    """Check `components` is a partition into weakly connected pieces; return the edges
    (file, dependency) that no cycle connects yet whose dependency comes second."""
    flat = [p for comp in components for p in comp]
    assert sorted(flat) == sorted(graph), "every file emitted exactly once"
    where = {p: (i, j) for i, comp in enumerate(components) for j, p in enumerate(comp)}
    scc = tarjan(graph)
    bad = []
    for v, ds in graph.items():
        for d in ds:
            assert where[v][0] == where[d][0], f"{v} and its dependency {d} in different components"
            if scc[v] != scc[d] and where[d][1] > where[v][1]:
                bad.append((v, d))
    # components are *weakly connected*: a component with no edge to the rest of itself would be two
    for comp in components:
        reach, todo = {comp[0]}, [comp[0]]
        undirected = {p: set(graph[p]) | {q for q in comp if p in graph[q]} for p in comp}
        while todo:
            for w in undirected[todo.pop()] - reach:
                reach.add(w)
                todo.append(w)
        assert reach == set(comp), f"component {comp} is not connected"
    return bad


# -- the shipped repositories --

@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_repository_dependencies(name):
    deps = find_dependencies(read_repo(REPOS / name))
    assert {k: sorted(v) for k, v in deps.items()} == EXPECTED[name]["edges"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_repository_order(name):
    files = read_repo(REPOS / name)
    order = order_repository(files)
    assert order == EXPECTED[name]["order"]
    graph = {k: set(v) for k, v in EXPECTED[name]["edges"].items()}
    assert check_order(graph, order) == []


def test_shipped_repositories_cover_cycles_diamonds_and_components():
    kinds = {"cycle": 0, "diamond": 0, "several components": 0}
    for e in EXPECTED.values():
        graph = {k: set(v) for k, v in e["edges"].items()}
        scc = tarjan(graph)
        kinds["cycle"] += len(set(scc.values())) < len(scc)
        kinds["several components"] += len([c for c in e["order"] if len(c) > 1]) > 1
        # a diamond: a file reaching one dependency along two different direct dependencies
        for ds in graph.values():
            below = [reach(graph, d) | {d} for d in ds]
            kinds["diamond"] += any(below[i] & below[j] for i in range(len(below)) for j in range(i))
    assert all(count >= 2 for count in kinds.values()), kinds


def reach(graph, start):
    seen, todo = set(), [start]
    while todo:
        for w in graph[todo.pop()] - seen:
            seen.add(w)
            todo.append(w)
    return seen


def test_paper_method_misplaces_a_file_that_cycle_aware_places():
    """calc/evaluator.py needs calc/nodes.py (no cycle between them); nodes.py sits in a cycle with
    parser.py. After tokens.py, five files tie at in-degree 1 and the paper's rule, ties by path,
    emits evaluator.py first; then __init__.py (waiting on parser.py) ties again and wins."""
    files = read_repo(REPOS / "python_calc")
    graph = {k: set(v) for k, v in EXPECTED["python_calc"]["edges"].items()}
    paper = order_repository(files, method="paper")
    assert paper[0] == ["calc/tokens.py", "calc/evaluator.py", "calc/__init__.py", "calc/repl.py",
                        "calc/nodes.py", "calc/parser.py"]
    assert sorted(check_order(graph, paper)) == [("calc/__init__.py", "calc/parser.py"),
                                                 ("calc/evaluator.py", "calc/nodes.py")]
    assert check_order(graph, order_repository(files, method="cycle-aware")) == []


# -- real standard-library packages --

def stdlib_imports(files: dict[str, str], root_package: str = "") -> dict[str, set[str]]:
    """The in-package imports of a standard-library package, found independently: resolve every
    import to an absolute module name and map names to files by the package's own layout.
    root_package: the dotted name of the directory `files` are relative to ("" for the stdlib
    root, "email" when email/ is the repository root)."""
    prefix = f"{root_package}." if root_package else ""
    module_file = {}
    for path in files:
        name = prefix + path[: -len(".py")].replace("/", ".")
        module_file[name.removesuffix(".__init__")] = path
    graph = {}
    for path, text in files.items():
        package = (prefix + path).rsplit("/", 1)[0].replace("/", ".") if "/" in path else root_package
        found = set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                found |= {module_file.get(a.name) for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
                subs = [module_file.get(f"{base}.{a.name}") for a in node.names]
                found |= set(subs)
                if None in subs:
                    found.add(module_file.get(base))
        graph[path] = found - {None, path}
    return graph


@pytest.mark.parametrize("package", ["json", "email", "asyncio"])
def test_standard_library_package(package):
    files = {p.relative_to(STDLIB).as_posix(): p.read_text(encoding="utf-8")
             for p in sorted((STDLIB / package).rglob("*.py"))}
    deps = find_dependencies(files)
    oracle = stdlib_imports(files)
    assert sum(map(len, oracle.values())) >= len(files) - 1  # the oracle does find imports
    for path in files:
        assert oracle[path] <= deps[path], f"{path}: imports {oracle[path] - deps[path]} not found"
    assert check_order(deps, order_repository(files)) == []


def read_package(package: str) -> dict[str, str]:
    """A stdlib package as the pipeline reads it: paths relative to the package directory, without
    the test directories the default corpus skips."""
    root = STDLIB / package
    return {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.py"))
            if not set(p.relative_to(root).parts[:-1]) & set(STDLIB_EXCLUDE)}


def pipeline_samples(name: str, root: Path) -> list[list[str]]:
    """The files of each sample `prepare.read_repository` makes of one repository, in order (read
    back from the path comments the samples carry)."""
    job = (name, str(root), True, FilterConfig(), "cycle-aware", STDLIB_EXCLUDE, None)
    _, samples, _, _ = read_repository(job)
    header = {f"{path_comment(q)}\n": q for q in (r.relative_to(root).as_posix() for r in root.rglob("*"))}
    return [[header[text[h:b]] for h, b, _ in spans] for _, text, _, spans in samples]


@pytest.mark.parametrize("package", ["json", "email", "asyncio", "importlib", "concurrent", "xml"])
def test_real_layout_package_as_repository_root(package):
    """email/ as the repository root: `from email.feedparser import FeedParser` -> feedparser.py."""
    files = read_package(package)
    oracle = stdlib_imports(files, root_package=package)
    deps = find_dependencies(files, package=package)
    assert deps == oracle
    assert check_order(deps, order_repository(files, package=package)) == []
    # the package name counts only for the repository's own name: under another name, or with
    # no name, absolute self-imports find nothing (the root is a package, not a sys.path entry)
    if package == "email":
        assert sum(map(len, find_dependencies(files).values())) == 0
        assert sum(map(len, find_dependencies(files, package="mail").values())) == 0


def test_email_through_the_pipeline_is_a_few_ordered_samples():
    """The issue's measure: email reached training as 29 one-file samples with 0 edges."""
    files = read_package("email")
    oracle = stdlib_imports(files, root_package="email")
    assert sum(map(len, oracle.values())) >= 50
    samples = pipeline_samples("email", STDLIB / "email")
    assert len(samples) <= 3
    emitted = [p for s in samples for p in s if p.endswith(".py")]  # (also architecture.rst, on its own)
    assert sorted(emitted) == sorted(p for p in files if files[p].strip())  # the empty mime/__init__.py is left out
    # every edge between emitted files stays in one sample, the dependency first unless a cycle joins them
    where = {p: (i, j) for i, s in enumerate(samples) for j, p in enumerate(s)}
    scc = tarjan(oracle)
    for v, ds in oracle.items():
        for d in ds & set(where):
            assert where[v][0] == where[d][0], (v, d)
            assert scc[v] == scc[d] or where[d][1] < where[v][1], (v, d)


def test_distutils_through_the_pipeline():
    if not (STDLIB / "distutils").is_dir():
        pytest.skip("distutils is not in this Python (removed in 3.12)")
    files = read_package("distutils")
    assert sum(map(len, stdlib_imports(files, root_package="distutils").values())) >= 100
    assert 1 <= len(pipeline_samples("distutils", STDLIB / "distutils")) <= 2


def test_nested_packages_with_empty_init_stay_one_sample():
    """python_nested: lib/ is a sys.path root only because lib/unitfmt/__init__.py (empty) exists.
    Dropping empty files before parsing (the old pipeline) cut the repository into three samples."""
    root = REPOS / "python_nested"
    files = read_repo(root)
    empty = sorted(p for p, t in files.items() if not t.strip())
    assert empty == ["lib/unitfmt/__init__.py", "src/units/__init__.py", "src/units/core/__init__.py"]
    assert pipeline_samples("python_nested", root) == [[p for p in EXPECTED["python_nested"]["order"][1]]]
    without_empty = order_repository({p: t for p, t in files.items() if p not in empty})
    assert len(without_empty) == 3


def test_empty_file_joining_two_files_does_not_split_them(tmp_path):
    """a.py and b.py meet only in the empty pkg/__init__.py: it stays in the graph, leaves the sample."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "a.py").write_text("import pkg\n")
    (tmp_path / "b.py").write_text("import pkg\n\nB = 2\n")
    (tmp_path / "c.py").write_text("CONSTANT = 3\n")
    assert pipeline_samples("repo", tmp_path) == [["a.py", "b.py"], ["c.py"]]



def test_concatenate_with_spans():
    files = {"b.py": "B = 1", "a.py": "A = 2\n"}
    text, spans = concatenate_with_spans(files, ["b.py", "a.py"])
    assert text == "# b.py\nB = 1\n\n# a.py\nA = 2\n" and spans == [(0, 7, 13), (14, 21, 27)]
    assert [text[h:b] for h, b, _ in spans] == ["# b.py\n", "# a.py\n"]
    assert [text[b:e] for _, b, e in spans] == ["B = 1\n", "A = 2\n"]





def test_topological_sort_docstring_example_and_errors():
    assert topological_sort({"a": {"b"}, "b": {"a"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"], ["d"]]
    with pytest.raises(ValueError, match="add them as keys"):
        topological_sort({"a": {"zzz"}})
    with pytest.raises(ValueError, match="choose one of"):
        topological_sort({"a": set()}, method="random")
    assert set(METHODS) == {"paper", "cycle-aware"}


# -- language details the shipped repositories do not exercise --

def test_python_imports():
    assert python_imports("from ..a import (b, c)\n") == [(2, "a", ["b", "c"])]
    assert python_imports("import a.b, c\ndef f():\n    from . import d\n") == [(0, "a.b", []), (0, "c", []),
                                                                               (1, "", ["d"])]
    assert python_imports("print 'py2'\nfrom x import y  # z\nimport p.q\n") == [(0, "x", ["y"]), (0, "p.q", [])]



def test_c_and_js_details():
    files = {
        "vendor/lib/deep/thing.h": "int thing(void);\n",
        "app/main.c": '#include "deep/thing.h"\n#include <stdio.h>\n',  # only a unique suffix matches
        "ui/a.jsx": "export { b } from './b';\nimport c from '../lib';\nimport pkg from 'react';\n",
        "ui/b.tsx": "export const b = 1;\n",
        "lib/index.js": "module.exports = 2;\n",
    }
    deps = find_dependencies(files)
    assert deps["app/main.c"] == {"vendor/lib/deep/thing.h"}
    assert deps["ui/a.jsx"] == {"ui/b.tsx", "lib/index.js"}


def test_go_java_csharp_rust_details():
    files = {
        "tools/go.mod": "module example.com/tools\n",
        "tools/lint/lint.go": 'package lint\nimport . "example.com/tools/rules"\n',
        "tools/rules/rules.go": "package rules\n",
        "tools/rules/rules_test.go": "package rules\n",
        "J/Outer.java": "package p;\npublic class Outer { public static class Inner {} }\n",
        "J/Use.java": "package q;\nimport p.Outer.Inner;\nclass Use { Inner i; }\n",
        "G.cs": "public class Glob {}\n",
        "N.cs": "namespace A { class N { Glob g; } }\n",
    }
    deps = find_dependencies(files)
    assert deps["tools/lint/lint.go"] == {"tools/rules/rules.go"}
    assert deps["J/Use.java"] == {"J/Outer.java"}
    assert deps["N.cs"] == {"G.cs"}  # the global namespace is visible from every namespace
    assert _expand_use("crate::a::{b as c, d::{self, E}, f::*}") == ["crate::a::b", "crate::a::d",
                                                                       "crate::a::d::E", "crate::a::f"]


# -- samples --

def test_repository_samples_concatenate_in_order_with_path_comments():
    files = {"b.py": "B = 1\n", "a.py": "from b import B\nA = B", "notes.md": "# Notes\n"}
    assert repository_samples(files) == ["# b.py\nB = 1\n\n# a.py\nfrom b import B\nA = B\n",
                                         "<!-- notes.md -->\n# Notes\n"]
    assert [path_comment(p) for p in ["x.go", "x.rs", "x.cs", "x.java", "x.ts", "x.sql", "x.css", "x.html"]] == [
        "// x.go", "// x.rs", "// x.cs", "// x.java", "// x.ts", "-- x.sql", "/* x.css */", "<!-- x.html -->"]


# -- the grader: shortcuts and slips fail the graded tests meant to catch them --

RECURSIVE_SCC = '''
index, low, on_stack, stack, comp = {}, {}, set(), [], {}

def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(deps[v]):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on_stack:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        while True:
            w = stack.pop()
            on_stack.discard(w)
            comp[w] = index[v]
            if w == v:
                break

for v in sorted(deps):
    if v not in index:
        visit(v)
return comp
'''
GRADED = "tests/test_depsort_graded.py"
SHORTCUTS = {
    # name: (function, body, the graded tests that must fail)
    "cycle_aware_order_returns_paper_order": (
        "cycle_aware_order", "return paper_order(deps)",
        {f"{GRADED}::test_cycle_aware_order_of_the_shipped_repositories",
         f"{GRADED}::test_cycle_aware_order_equals_the_literal_algorithm",
         "tests/test_worked_examples.py::test_worked_examples"}),  # its docstring's example shows the difference
    "recursive_tarjan": (  # right on every small graph, but a 3,000-file chain of imports overflows the stack
        "strongly_connected_components", RECURSIVE_SCC,
        {f"{GRADED}::test_strongly_connected_components_of_a_long_chain_and_a_long_cycle"}),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SHORTCUTS))
def test_shortcut_fails_the_test_meant_to_catch_it(tmp_path, case):
    from test_assignment_shortcuts import fill_in

    from minicoder.assignments import ASSIGNMENTS, grade, make_student_copy

    function, body, must_fail = SHORTCUTS[case]
    keep = tuple(f.split(":", 1)[1] for f in ASSIGNMENTS["depsort"].functions if f != f"depsort:{function}")
    make_student_copy("depsort", tmp_path, keep=keep)
    fill_in(tmp_path, "depsort", function, body)
    lines = []
    result = grade("depsort", tmp_path, only=function, echo=lines.append)
    (row,) = result["rows"]
    failed = {r["nodeid"].split("[")[0] for r in result["records"] if r["outcome"] == "failed"}
    assert row["status"] == "failed" and failed == must_fail, "\n".join(lines)
    assert row["passed"] > 0, "\n".join(lines)  # right where the shortcut is right
