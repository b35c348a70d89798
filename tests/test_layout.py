"""The library's files import in one direction: no cycles among minicoder/*.py.

Run: .venv/bin/pytest tests/test_layout.py -q

The graph is read from the source with `ast`, not by importing: an edge X -> Y for every
`import minicoder.Y`, `from minicoder.Y import ...` or `from minicoder import Y` in X, at module
level or inside a function (a lazy import is still a dependency a reader has to hold). Modules
imported by a name computed at run time (cli.py's `_run_in("minicoder.train", ...)`) are not seen;
the CLI sits on top of everything anyway.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "minicoder"

# Cycles tolerated for now, each as the sorted files on it; the test fails on any other. (The last
# one, data -> fim -> tokenizer -> data through tokenizer.read_corpus, went when the corpus walk
# moved into corpus.py, below all three.)
KNOWN_CYCLES: set[tuple[str, ...]] = set()


def imports_of(path: Path) -> set[str]:
    """The minicoder modules a file imports: `from minicoder.train import x` -> {"train"}."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "minicoder":  # from minicoder import tokenizer, __version__
                names = [f"minicoder.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "minicoder" and len(parts) > 1 and (PACKAGE / f"{parts[1]}.py").is_file():
                found.add(parts[1])
    found.discard(path.stem)
    return found


def import_graph() -> dict[str, set[str]]:
    return {p.stem: imports_of(p) for p in sorted(PACKAGE.glob("*.py"))}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one file (Tarjan), each as a sorted list.

    {"a": {"b"}, "b": {"a", "c"}, "c": set()} -> [["a", "b"]].
    """
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_find_cycles_by_hand():
    assert find_cycles({"a": {"b"}, "b": {"a", "c"}, "c": set()}) == [["a", "b"]]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_of_sees_module_and_function_level_imports(tmp_path):
    source = ("import os\nimport minicoder.model\nfrom minicoder.config import ModelConfig\n"
              "from minicoder import tokenizer\nfrom . import nothing\n"
              "def f():\n    from minicoder.train import train\n")
    path = tmp_path / "probe.py"
    path.write_text(source)
    assert imports_of(path) == {"model", "config", "tokenizer", "train"}


def test_no_import_cycles():
    graph = import_graph()
    assert {"train", "checkpoint", "generate", "train_config"} <= graph.keys()
    cycles = find_cycles(graph)
    gone = KNOWN_CYCLES - {tuple(c) for c in cycles}
    assert not gone, f"known cycle(s) {sorted(gone)} no longer exist: delete them from KNOWN_CYCLES"
    new = [c for c in cycles if tuple(c) not in KNOWN_CYCLES]
    assert not new, "import cycle(s) among minicoder's files: " + "; ".join(
        " <-> ".join(c) + " (" + ", ".join(f"{v} imports {sorted(graph[v] & set(c))}" for v in c) + ")" for c in new)


def test_checkpoints_sit_below_training_and_generation():
    graph = import_graph()
    assert not graph["checkpoint"] & {"train", "generate"}, graph["checkpoint"]
    assert "train" not in graph["generate"], "generate.py loads checkpoints through minicoder.checkpoint"
