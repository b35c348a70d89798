"""Repository-level ordering: each file after the files it depends on (DeepSeek-Coder section 2.2).

DeepSeek-Coder parses the dependencies between files of one repository and concatenates the
files so that "the context of each file is placed before the code of the current file". The
paper's Algorithm 1 ("Topological Sort for Dependency Analysis"):

    an edge B -> A means A depends on B; inDegree[A] = number of files A depends on
    for each weakly connected component of the graph:
        repeat until every file of the component is emitted:
            emit the not-yet-emitted file with the smallest inDegree,
            then decrement inDegree of every file that depends on it

A plain topological sort (Kahn's) only emits files of in-degree 0 and stalls on a cycle; taking
the *smallest* in-degree instead always makes progress, which is how the algorithm breaks cycles.
Each component becomes one training sample: its files in emission order, each preceded by a
comment giving its path (`# pkg/mod.py`), as DeepSeek's maintainers describe (GitHub issue
deepseek-ai/DeepSeek-Coder#43: "For file paths, we add them on each code file as a comment").

Two choices this file makes explicit, both behind `order_repository(..., method=...)`:
- Ties. DeepSeek breaks them at random (same issue); we break them by path, so runs repeat.
- "paper": Algorithm 1 exactly. It can emit a file before a dependency that no cycle connects
  to it: with a cycle X <-> Y (in-degree 1 each), U depending on X and V on U (in-degree 1
  each), all four tie at 1 and V, U may come before X. "cycle-aware" (the default) restricts
  each choice to files whose remaining dependencies all lie in their own strongly connected
  component (those exist: a source component of what remains), then applies the same rule.
  It never puts a file before a dependency outside its cycle, and on a graph without cycles it
  emits exactly what "paper" does (both then pick the smallest path among in-degree 0). This
  default is where minicoder departs from the paper; `--order paper` restores Algorithm 1.

Dependencies come from each language's import statements, resolved to files of the repository
(imports of anything else are ignored): Python, C/C++, Java, JavaScript/TypeScript, Go, Rust
and C#. DeepSeek did this for Python, Java, C#, C and C++ (issue #43); files of other languages
are isolated nodes, each its own one-file sample. Java and C# need no import for a class of the
same package (namespace), and `import a.b.*` / `using A.B;` name a whole package: there a file
depends on the files of that package that declare a type whose name occurs in it.

Python absolute imports resolve against the `sys.path` roots a repository implies: its root,
`src/`, and the parent of every top-level package (`lib/` for lib/mypkg/__init__.py, so an
empty __init__.py matters and callers should keep empty files in the graph). When the root
itself holds `__init__.py` it is a package named after the repository (`package=`): the standard
library's email/, read as its own repository, resolves `from email.feedparser import FeedParser`
to feedparser.py and `import email.mime.text` to mime/text.py (on Python 3.11: 29 .py files, 59
edges, one component of 28 files beside the empty mime/__init__.py; with no package name, 0 edges
and 29 one-file components).

Left out: parsing beyond regular expressions (except Python, which uses `ast`), build-system
include paths, conditional compilation, dynamic imports (`importlib`, computed `require`),
Python's parent-package `__init__.py` as an implicit dependency (it would tie every module into
a cycle with its package, whose `__init__` usually imports it back), Go files of one package
depending on each other, and Rust workspaces of several crates.
"""

import ast
import heapq
import posixpath
import re
from functools import cached_property

from .filters import language_of

METHODS = ("cycle-aware", "paper")

# -----------------------------------------------------------------------------
# The repository: paths, and lookups every language's resolver shares


class Repo:
    """The files of one repository (POSIX paths relative to its root) and lazily built indexes.

    `package` is the repository's own name as Python would import it (the directory name, e.g.
    "email" for the standard library's email/ taken as a repository root); it only counts when the
    root holds an `__init__.py`, i.e. when the root directory is itself that package.
    """

    def __init__(self, files: dict[str, str], package: str | None = None):
        self.files = files
        self.paths = set(files)
        self.dirs = {posixpath.dirname(p) for p in files}
        self.root_package = package if package and "__init__.py" in self.paths else None
        self._words: dict[str, set[str]] = {}

    def first(self, candidates) -> str | None:
        """The first candidate path that is a file of the repository."""
        for c in candidates:
            c = posixpath.normpath(c) if c else c
            if c in self.paths:
                return c
        return None

    def words(self, path: str) -> set[str]:
        """Identifiers that occur in a file (used to see which same-package types it references)."""
        if path not in self._words:
            self._words[path] = set(re.findall(r"[A-Za-z_]\w*", self.files[path]))
        return self._words[path]

    # -- Python --
    @cached_property
    def python_roots(self) -> list[str]:
        """Directories absolute imports resolve from (entries of a `sys.path`): the repository
        root, `src/`, and the parent of every top-level package (a directory with `__init__.py`
        whose parent has none: `lib/` for lib/mypkg/__init__.py). The root is left out when it
        holds an `__init__.py` itself: then it is a package, and its parent (outside the
        repository) is what would be on `sys.path`; see `root_package`."""
        roots = {""}
        for p in self.paths:
            if p.endswith("/__init__.py"):
                pkg = posixpath.dirname(p)
                parent = posixpath.dirname(pkg)
                if posixpath.join(parent, "__init__.py") not in self.paths:
                    roots.add(parent)
        if "src" in self.dirs or any(d.startswith("src/") for d in self.dirs):
            roots.add("src")
        if "__init__.py" in self.paths:
            roots.discard("")
        return sorted(roots)

    # -- C / C++ --
    @cached_property
    def include_roots(self) -> list[str]:
        """The repository root and every directory named include, inc or src."""
        roots = {""}
        for d in self.dirs:
            parts = d.split("/")
            for i, part in enumerate(parts):
                if part in ("include", "inc", "src"):
                    roots.add("/".join(parts[: i + 1]))
        return sorted(roots)

    # -- Java and C#: package/namespace -> files; file -> type names it declares; full name -> file --
    def _declarations(self, language: str, decl: str) -> tuple[dict, dict, dict]:
        by_space: dict[str, list[str]] = {}
        types: dict[str, set[str]] = {}
        full: dict[str, str] = {}
        for p in sorted(self.paths):
            if language_of(p) != language:
                continue
            text = self.files[p]
            names = set(re.findall(r"\b(?:class|interface|enum|record|struct)\s+([A-Za-z_]\w*)", text))
            if language == "java":
                names.add(posixpath.splitext(posixpath.basename(p))[0])
            types[p] = names
            for space in re.findall(decl, text, flags=re.M) or [""]:
                by_space.setdefault(space, []).append(p)
                for t in sorted(names):
                    full.setdefault(f"{space}.{t}" if space else t, p)
        return by_space, types, full

    @cached_property
    def java(self) -> tuple[dict, dict, dict]:
        return self._declarations("java", r"^\s*package\s+([\w.]+)\s*;")

    @cached_property
    def csharp(self) -> tuple[dict, dict, dict]:
        return self._declarations("csharp", r"^\s*namespace\s+([\w.]+)")

    # -- Go: (directory, module path) of every go.mod, longest module path first --
    @cached_property
    def go_modules(self) -> list[tuple[str, str]]:
        mods = []
        for p in self.paths:
            if posixpath.basename(p) == "go.mod":
                m = re.search(r"^\s*module\s+(\S+)", self.files[p], flags=re.M)
                if m:
                    mods.append((posixpath.dirname(p), m.group(1).strip('"')))
        return sorted(mods, key=lambda dm: (-len(dm[1]), dm))


# -----------------------------------------------------------------------------
# Python: `import a.b`, `from a.b import c`, `from ..a import b`


def python_imports(text: str) -> list[tuple[int, str, list[str]]]:
    """(level, module, names) per import: 'from ..a import b, c' -> (2, 'a', ['b', 'c'])."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):  # e.g. Python 2 code: fall back to the lines that look like imports
        found = [(len(m[1]), m[2], [n.strip().split(" ")[0] for n in m[3].strip("()\\ ").split(",")])
                 for m in re.findall(r"^\s*(from\s+(\.*)([\w.]*)\s+import\s+([^\n#;]+))", text, flags=re.M)]
        found += [(0, name.strip().split(" ")[0], []) for line in
                  re.findall(r"^\s*import\s+([\w., ]+)", text, flags=re.M) for name in line.split(",")]
        return found
    found = []
    for node in ast.walk(tree):  # every import, also those inside functions
        if isinstance(node, ast.Import):
            found += [(0, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or "", [a.name for a in node.names]))
    return found


def _python_module(repo: Repo, base: str, dotted: str) -> str | None:
    """The file of module `dotted` under directory `base`: base/a/b.py or base/a/b/__init__.py;
    with `dotted` empty, the package `base` itself (base/__init__.py)."""
    if not dotted:
        return repo.first([posixpath.join(base, "__init__.py")])
    stem = posixpath.join(base, *dotted.split("."))
    return repo.first([stem + ".py", stem + "/__init__.py", stem + ".pyi"])


def _python_targets(repo: Repo, base: str, module: str, names: list[str]) -> set[str]:
    """Files read by `from module import names` (`import module` if no names) with `base` as root.

    The most specific module named counts: a submodule `module.name` where there is one, else
    `module` itself, or the longest prefix of it that is a file (`import a.b.c`, only a/b.py).
    """
    subs = [_python_module(repo, base, f"{module}.{n}" if module else n) for n in names if n != "*"]
    found = {s for s in subs if s}
    if not names or len(found) < len(names):  # some name is not a submodule: it is defined in `module`
        parts = module.split(".") if module else []
        for k in range(len(parts), -1, -1):
            hit = _python_module(repo, base, ".".join(parts[:k]))
            if hit or k <= 1:
                found |= {hit} if hit else set()
                break
    return found


def python_dependencies(path: str, text: str, repo: Repo) -> set[str]:
    r"""The files of `repo` that the Python file `path` (source `text`) imports, as Python would find them.

    For each (level, module, names) of `python_imports(text)`, `_python_targets(repo, base, module,
    names)` gives the files it reads under one directory `base`; the first base that gives any wins:
    - relative (level >= 1): the only base is the file's own directory, gone up level - 1 times;
    - absolute, with the repository's own package name first (`import email.utils` inside email/, when
      `repo.root_package` is "email"): the rest of the name, "utils", from the root; if that finds no
      file, or the head is another name, go on as below;
    - absolute: the file's own directory when it is a script (no `__init__.py` beside it: Python puts
      a script's directory first on sys.path), then each of `repo.python_roots` in order.
    Imports that resolve to nothing (the standard library, third-party packages) are ignored.

    >>> repo = Repo({"app.py": "import util\nfrom pkg import a\n", "util.py": "",
    ...              "pkg/__init__.py": "", "pkg/a.py": "from . import b\nfrom .b import f\nimport os\n",
    ...              "pkg/b.py": "def f(): pass\n"})
    >>> sorted(python_dependencies("app.py", repo.files["app.py"], repo))
    ['pkg/a.py', 'util.py']
    >>> sorted(python_dependencies("pkg/a.py", repo.files["pkg/a.py"], repo))
    ['pkg/b.py']
    """
    # BEGIN ASSIGNMENT depsort
    here = posixpath.dirname(path)
    script_dir = [] if posixpath.join(here, "__init__.py") in repo.paths else [here]  # sys.path[0] of a script
    deps = set()
    for level, module, names in python_imports(text):
        if level:  # relative: from the file's package, going up level - 1 times
            base = here
            for _ in range(level - 1):
                base = posixpath.dirname(base)
            bases = [base]
        else:
            head, _, rest = module.partition(".")
            if repo.root_package and head == repo.root_package:  # `import email.utils` inside email/
                found = _python_targets(repo, "", rest, names)
                if found:
                    deps |= found
                    continue
            bases = script_dir + repo.python_roots
        for base in bases:
            found = _python_targets(repo, base, module, names)
            if found:
                deps |= found
                break
    return deps
    # END ASSIGNMENT


# -----------------------------------------------------------------------------
# C and C++: #include "x.h" (relative to the including file, then include roots), #include <x.h>


def c_dependencies(path: str, text: str, repo: Repo) -> set[str]:
    deps = set()
    for quote, name in re.findall(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', text, flags=re.M):
        local = [posixpath.join(posixpath.dirname(path), name)] if quote == '"' else []
        hit = repo.first(local + [posixpath.join(r, name) for r in repo.include_roots])
        if hit is None:  # an include path we do not know: accept a unique file ending in /name
            ends = [p for p in repo.paths if p.endswith("/" + name)]
            hit = ends[0] if len(ends) == 1 else None
        if hit:
            deps.add(hit)
    return deps


# -----------------------------------------------------------------------------
# Java: `import a.b.C;`, `import a.b.*;`, `import static a.b.C.m;`, and same-package classes


def _referenced(repo: Repo, path: str, candidates, types) -> set[str]:
    """Those candidate files that declare a type whose name occurs in `path`."""
    words = repo.words(path)
    return {c for c in candidates if types[c] & words}


def java_dependencies(path: str, text: str, repo: Repo) -> set[str]:
    by_package, types, fqcn = repo.java
    package = (re.findall(r"^\s*package\s+([\w.]+)\s*;", text, flags=re.M) or [""])[0]
    deps = _referenced(repo, path, by_package.get(package, []), types)  # same package: no import needed
    for name, star in re.findall(r"^\s*import\s+(?:static\s+)?([\w.]+?)(\.\*)?\s*;", text, flags=re.M):
        parts = name.split(".")
        for k in range(len(parts), 0, -1):  # a.b.C.Inner / a.b.C.member -> a.b.C
            if ".".join(parts[:k]) in fqcn:
                deps.add(fqcn[".".join(parts[:k])])
                break
        else:
            if star and name in by_package:
                deps |= _referenced(repo, path, by_package[name], types)
    return deps


# -----------------------------------------------------------------------------
# C#: `using A.B;` of namespaces the repository declares, `using static A.B.C;`, `using X = A.B.C;`


def csharp_dependencies(path: str, text: str, repo: Repo) -> set[str]:
    by_space, types, full = repo.csharp
    visible = {""}  # the global namespace is visible everywhere
    for space in re.findall(r"^\s*namespace\s+([\w.]+)", text, flags=re.M):
        parts = space.split(".")
        visible |= {".".join(parts[:k]) for k in range(1, len(parts) + 1)}  # enclosing namespaces too
    deps = set()
    usings = re.findall(r"^\s*(?:global\s+)?using\s+(static\s+)?(?:\w+\s*=\s*)?([\w.]+)\s*;", text, flags=re.M)
    for static, name in usings:
        if name in by_space and not static:
            visible.add(name)
        elif name in full:  # a type A.B.C (static import or alias)
            deps.add(full[name])
    for space in visible:
        deps |= _referenced(repo, path, by_space.get(space, []), types)
    return deps


# -----------------------------------------------------------------------------
# JavaScript / TypeScript: relative `import ... from './x'`, `require('./x')`, `export ... from`

_JS_EXTS = ("", ".ts", ".tsx", ".d.ts", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts", ".json")
_JS_SPECIFIERS = re.compile(
    r"""(?:\b(?:import|export)\s+(?:type\s+)?[\w$*{}\s,]+?\s+from\s*|\bimport\s*|\bimport\s*\(\s*|\brequire\s*\(\s*)"""
    r"""['"]([^'"\n]+)['"]""")


def js_dependencies(path: str, text: str, repo: Repo) -> set[str]:
    deps = set()
    for spec in _JS_SPECIFIERS.findall(text):
        if not spec.startswith(("./", "../")):
            continue  # a package from node_modules, not a file of this repository
        stem = posixpath.join(posixpath.dirname(path), spec)
        stems = [stem]
        if re.search(r"\.[mc]?jsx?$", stem):  # TypeScript's ESM style: './x.js' names x.ts
            stems.append(re.sub(r"\.[mc]?jsx?$", "", stem))
        hit = repo.first([s + e for s in stems for e in _JS_EXTS] + [f"{stem}/index{e}" for e in _JS_EXTS[1:]])
        if hit:
            deps.add(hit)
    return deps


# -----------------------------------------------------------------------------
# Go: imports of the module's own packages (module path from go.mod) -> the .go files of that dir


def go_dependencies(path: str, text: str, repo: Repo) -> set[str]:
    specs = re.findall(r'^\s*import\s+(?:[\w.]+\s+)?"([^"]+)"', text, flags=re.M)
    for block in re.findall(r"^\s*import\s*\(([^)]*)\)", text, flags=re.M):
        specs += re.findall(r'"([^"]+)"', block)
    deps = set()
    for spec in specs:
        for mod_dir, mod_path in repo.go_modules:
            if spec == mod_path or spec.startswith(mod_path + "/"):
                pkg_dir = posixpath.normpath(posixpath.join(mod_dir, spec[len(mod_path) + 1:]))
                pkg_dir = "" if pkg_dir == "." else pkg_dir
                deps |= {p for p in repo.paths if posixpath.dirname(p) == pkg_dir and p.endswith(".go")
                         and not p.endswith("_test.go")}
                break
    return deps


# -----------------------------------------------------------------------------
# Rust: `mod x;` and paths `crate::a::b`, `super::x`, `self::x` (in `use` trees and in code)


def _rust_crate_and_module(path: str, repo: Repo) -> tuple[str, list[str]]:
    """(crate root directory, module path) of a file: 'src/a/b.rs' -> ('src', ['a', 'b'])."""
    d = posixpath.dirname(path)
    while True:
        if repo.first([posixpath.join(d, "lib.rs"), posixpath.join(d, "main.rs")]) or not d:
            break
        d = posixpath.dirname(d)
    rel = posixpath.relpath(path, d or ".")[: -len(".rs")].split("/")
    if rel[-1] == "mod" or (len(rel) == 1 and rel[0] in ("lib", "main")):
        rel = rel[:-1]
    return d, rel


def _expand_use(tree: str) -> list[str]:
    """'crate::a::{b, c::{self, D}}' -> ['crate::a::b', 'crate::a::c', 'crate::a::c::D']."""
    tree = re.sub(r"\s+", "", re.sub(r"\s+as\s+\w+", "", tree))
    if "{" not in tree:
        return [re.sub(r"::(self|\*)$", "", tree)]
    head, inner = tree.split("{", 1)
    inner = inner[: inner.rfind("}")]
    items, depth, start = [], 0, 0
    for i, ch in enumerate(inner + ","):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            items.append(inner[start:i])
            start = i + 1
    return [p for item in items if item for p in _expand_use(head + item)]


def rust_dependencies(path: str, text: str, repo: Repo) -> set[str]:
    root, module = _rust_crate_and_module(path, repo)
    base = posixpath.basename(path)
    child_dir = posixpath.dirname(path) if base in ("lib.rs", "main.rs", "mod.rs") else path[: -len(".rs")]
    deps = set()
    for name in re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text, flags=re.M):
        hit = repo.first([posixpath.join(child_dir, name + ".rs"), posixpath.join(child_dir, name, "mod.rs")])
        if hit:
            deps.add(hit)
    paths = re.findall(r"\b(?:crate|super|self)(?:::\w+)+", text)
    for tree in re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", text, flags=re.M):
        paths += _expand_use(tree)
    for p in paths:
        segs = p.split("::")
        if segs[0] == "crate":
            target, segs = [], segs[1:]
        else:  # super/self, or a path relative to this module (2018 edition `use a::b` of a child)
            target = list(module)
            while segs and segs[0] in ("super", "self"):
                target = target[:-1] if segs.pop(0) == "super" else target
        for k in range(len(segs), -1, -1):  # the longest prefix that is a module file
            mod = target + segs[:k]
            stem = posixpath.join(root, *mod)
            names = [stem + ".rs", stem + "/mod.rs"] if mod else [posixpath.join(root, "lib.rs"),
                                                                 posixpath.join(root, "main.rs")]
            hit = repo.first(names)
            if hit:  # k == 0: an item of the module `target` itself, e.g. `super::helper`
                deps.add(hit)
                break
    return deps


# -----------------------------------------------------------------------------
# The dependency graph

FINDERS = {
    "python": python_dependencies,
    "c": c_dependencies, "cpp": c_dependencies, "cuda": c_dependencies,
    "objective-c": c_dependencies, "objective-cpp": c_dependencies,
    "java": java_dependencies,
    "csharp": csharp_dependencies,
    "javascript": js_dependencies, "typescript": js_dependencies,
    "go": go_dependencies,
    "rust": rust_dependencies,
}


def find_dependencies(files: dict[str, str], package: str | None = None) -> dict[str, set[str]]:
    """{path: set of paths of this repository that it depends on}, for every path in `files`.

    {"a.py": "import b", "b.py": ""} -> {"a.py": {"b.py"}, "b.py": set()}
    With package="email" and a root __init__.py, `from email.utils import x` in a file of the
    root resolves to utils.py (see `Repo`).
    """
    repo = Repo(files, package)
    deps = {}
    for path in sorted(files):
        finder = FINDERS.get(language_of(path))
        deps[path] = (finder(path, files[path], repo) if finder else set()) - {path}
    return deps


def weakly_connected_components(deps: dict[str, set[str]]) -> list[list[str]]:
    """Components of the graph with edges taken both ways, each sorted, ordered by first path.

    deps is {node: nodes it depends on}, every node a key. Two nodes are in one component when a path
    joins them, following edges in either direction.

    >>> weakly_connected_components({"c": {"a"}, "a": set(), "d": set(), "b": {"d"}, "e": {"d"}})
    [['a', 'c'], ['b', 'd', 'e']]
    """
    # BEGIN ASSIGNMENT depsort
    neighbours = {v: set(ds) for v, ds in deps.items()}
    for v, ds in deps.items():
        for d in ds:
            neighbours[d].add(v)
    seen, components = set(), []
    for start in sorted(deps):
        if start in seen:
            continue
        seen.add(start)
        stack, comp = [start], []
        while stack:
            v = stack.pop()
            comp.append(v)
            for w in neighbours[v] - seen:
                seen.add(w)
                stack.append(w)
        components.append(sorted(comp))
    return components
    # END ASSIGNMENT


def strongly_connected_components(deps: dict[str, set[str]]) -> dict[str, int]:
    """{node: id of its strongly connected component}; ids are arbitrary integers, one per component.

    Two nodes share a component when each can reach the other along dependency edges (a cycle); a node
    on no cycle is a component of its own. The reference uses Kosaraju's algorithm, iteratively (a
    recursive depth-first search overflows Python's stack on a long chain of imports): a DFS that
    lists nodes by finishing time, then a DFS along reversed edges from the latest finisher.

    >>> scc = strongly_connected_components({"a": {"b"}, "b": {"a"}, "c": {"a"}, "d": {"d"}})
    >>> scc["a"] == scc["b"], scc["a"] == scc["c"], len(set(scc.values()))
    (True, False, 3)
    """
    # BEGIN ASSIGNMENT depsort
    order, seen = [], set()
    for start in sorted(deps):  # pass 1: nodes by finishing time of a DFS along dependency edges
        if start in seen:
            continue
        seen.add(start)
        stack = [(start, iter(sorted(deps[start])))]
        while stack:
            v, it = stack[-1]
            w = next((w for w in it if w not in seen), None)
            if w is None:
                stack.pop()
                order.append(v)
            else:
                seen.add(w)
                stack.append((w, iter(sorted(deps[w]))))
    dependents = {v: [] for v in deps}
    for v, ds in deps.items():
        for d in ds:
            dependents[d].append(v)
    component: dict[str, int] = {}
    for root in reversed(order):  # pass 2: DFS along reversed edges, latest finisher first
        if root in component:
            continue
        component[root] = len(component)
        cid, stack = component[root], [root]
        while stack:
            v = stack.pop()
            for w in dependents[v]:
                if w not in component:
                    component[w] = cid
                    stack.append(w)
    return component
    # END ASSIGNMENT


def topological_sort(deps: dict[str, set[str]], method: str = "cycle-aware") -> list[list[str]]:
    """Algorithm 1 on a graph {file: files it depends on}: one emission order per weakly
    connected component. Ties in in-degree go to the smallest path. `method` picks `paper_order`
    (Algorithm 1 as printed) or `cycle_aware_order` (see the module docstring).

    {"a": {"b"}, "b": {"a"}, "c": {"a"}, "d": set()} -> [["a", "b", "c"], ["d"]]
    """
    if method not in METHODS:
        raise ValueError(f"unknown ordering method {method!r}; choose one of {', '.join(METHODS)}")
    missing = {d for ds in deps.values() for d in ds} - set(deps)
    if missing:
        raise ValueError(f"dependencies {sorted(missing)[:3]} are not nodes of the graph; add them as keys")
    return paper_order(deps) if method == "paper" else cycle_aware_order(deps)


def _dependents(deps: dict[str, set[str]]) -> dict[str, list[str]]:
    """The reversed graph: {file: files that depend on it}."""
    dependents = {v: [] for v in deps}
    for v, ds in deps.items():
        for d in ds:
            dependents[d].append(v)
    return dependents


def paper_order(deps: dict[str, set[str]]) -> list[list[str]]:
    """The paper's Algorithm 1: for each weakly connected component (in `weakly_connected_components`'
    order), emit one file at a time, always the not-yet-emitted file with the smallest inDegree (ties:
    the smallest path), where inDegree counts the file's dependencies not yet emitted.

    Every file of a component is emitted, cycles or not: a cycle only means no file has inDegree 0.
    Keeping (inDegree, path) in a heap, pushed again whenever it drops, makes it O(E log V); a plain
    scan for the minimum is O(V^2) and gives the same order.

    >>> paper_order({"a": {"b"}, "b": {"a"}, "c": {"a"}, "d": set()})
    [['a', 'b', 'c'], ['d']]
    >>> paper_order({"x": {"y"}, "y": {"x"}, "u": {"x"}, "v": {"u"}})  # all tie at 1: u first
    [['u', 'v', 'x', 'y']]
    """
    # BEGIN ASSIGNMENT depsort
    dependents = _dependents(deps)
    result = []
    for comp in weakly_connected_components(deps):
        in_degree = {v: len(deps[v]) for v in comp}  # edges from files not yet emitted
        heap = [(in_degree[v], v) for v in comp]
        heapq.heapify(heap)
        emitted, order = set(), []
        while heap:
            degree, v = heapq.heappop(heap)
            if v in emitted or degree != in_degree[v]:
                continue  # a stale entry: v was pushed again with its newer, smaller in-degree
            emitted.add(v)
            order.append(v)
            for w in dependents[v]:
                if w not in emitted:
                    in_degree[w] -= 1
                    heapq.heappush(heap, (in_degree[w], w))
        result.append(order)
    return result
    # END ASSIGNMENT


def cycle_aware_order(deps: dict[str, set[str]]) -> list[list[str]]:
    """Algorithm 1 that never puts a file before a dependency outside its own cycle.

    As `paper_order`, except that each choice is made only among the files that are *ready*: every
    dependency not yet emitted lies in the file's own strongly connected component
    (`strongly_connected_components`). Among the ready files, the smallest (inDegree, path) goes first.
    Some file is always ready (those of a component no other remaining component points into), and on
    a graph without cycles the order equals `paper_order`'s.

    >>> cycle_aware_order({"x": {"y"}, "y": {"x"}, "u": {"x"}, "v": {"u"}})  # u is ready once x is out
    [['x', 'u', 'v', 'y']]
    """
    # BEGIN ASSIGNMENT depsort
    dependents = _dependents(deps)
    scc = strongly_connected_components(deps)
    result = []
    for comp in weakly_connected_components(deps):
        in_degree = {v: len(deps[v]) for v in comp}  # edges from files not yet emitted
        blocking = {v: sum(scc[d] != scc[v] for d in deps[v]) for v in comp}  # ... outside v's own cycle
        heap = [(in_degree[v], v) for v in comp if blocking[v] == 0]
        heapq.heapify(heap)
        emitted, order = set(), []
        while heap:
            degree, v = heapq.heappop(heap)
            if v in emitted or degree != in_degree[v]:
                continue  # a stale entry: v was pushed again with its newer, smaller in-degree
            emitted.add(v)
            order.append(v)
            for w in dependents[v]:
                if w in emitted:
                    continue
                in_degree[w] -= 1
                if scc[w] != scc[v]:
                    blocking[w] -= 1
                if blocking[w] == 0:
                    heapq.heappush(heap, (in_degree[w], w))
        result.append(order)
    return result
    # END ASSIGNMENT


def order_repository(files: dict[str, str], method: str = "cycle-aware", package: str | None = None) -> list[list[str]]:
    """Paths of one repository, one list per weakly connected component, each in emission order;
    components ordered by their smallest path. `package`: the repository's own import name (see
    `Repo`); pass the directory's name when the root may itself be a Python package."""
    return topological_sort(find_dependencies(files, package), method)


# -----------------------------------------------------------------------------
# Samples: a component's files concatenated, each under a comment naming its path

COMMENT_STYLES = {
    "# {}": ("python", "shell", "ruby", "perl", "r", "julia", "elixir", "powershell", "yaml", "toml",
             "makefile", "dockerfile", "cmake", "text", "go-module"),
    "<!-- {} -->": ("html", "xml", "xslt", "markdown", "vue"),
    "/* {} */": ("css",),
    "-- {}": ("sql", "lua", "haskell"),
    "% {}": ("erlang", "tex"),
    ";; {}": ("clojure",),
    "(* {} *)": ("ocaml",),
    "! {}": ("fortran",),
    "REM {}": ("batchfile",),
    ".. {}": ("restructuredtext",),
}


def path_comment(path: str) -> str:
    """A comment naming the file in its own language: 'a/b.py' -> '# a/b.py', 'x.go' -> '// x.go'."""
    language = language_of(path)
    for style, languages in COMMENT_STYLES.items():
        if language in languages:
            return style.format(path)
    return f"// {path}"  # C, C++, Java, C#, JavaScript, TypeScript, Go, Rust, and the rest


def concatenate(files: dict[str, str], component: list[str]) -> str:
    """One sample: the files of `component` in order, each under a comment naming its path,
    separated by a blank line: ["b.py", "a.py"] -> '# b.py\n<b.py>\n# a.py\n<a.py>'."""
    return concatenate_with_spans(files, component)[0]


def concatenate_with_spans(files: dict[str, str], component: list[str]) -> tuple[str, list[tuple[int, int, int]]]:
    """`concatenate`, and where each file lies in the sample: one (head_start, body_start,
    body_end) per file, the head being its path comment line and the body its text (what
    minicoder.fim.encode_fim_files cuts, file by file).

    {"b.py": "B = 1", "a.py": "A = 2\n"}, ["b.py", "a.py"]
        -> ("# b.py\nB = 1\n\n# a.py\nA = 2\n", [(0, 7, 13), (14, 21, 27)])
    """
    pieces, spans, pos = [], [], 0
    for i, path in enumerate(component):
        head = f"{path_comment(path)}\n"
        body = files[path] if files[path].endswith("\n") else files[path] + "\n"
        sep = "\n" if i < len(component) - 1 else ""
        spans.append((pos, pos + len(head), pos + len(head) + len(body)))
        pieces += [head, body, sep]
        pos += len(head) + len(body) + len(sep)
    return "".join(pieces), spans


def repository_samples(files: dict[str, str], method: str = "cycle-aware") -> list[str]:
    """One sample per component of the repository, in `order_repository`'s order."""
    return [concatenate(files, component) for component in order_repository(files, method)]
