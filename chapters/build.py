"""Build a chapter's notebook from its source and execute it: chapters/NN_topic.py -> chapters/NN_topic.ipynb.

A chapter's source is a jupytext percent-format script (`# %%` starts a code cell, `# %% [markdown]` a text
cell whose lines are comments): the file a person edits and a reviewer diffs. The `.ipynb` beside it holds the
same cells executed, with their outputs, for reading on GitHub or in JupyterLab. The two are paired (the
source's header says `formats: ipynb,py:percent`), so saving either one in JupyterLab (`make chapters`)
rewrites the other; tests/test_chapters.py checks that every saved notebook has its source's cells and was
executed top to bottom.

Run from the repository root:
    .venv/bin/python chapters/build.py              # every chapter that has a .py source
    .venv/bin/python chapters/build.py 04 03_fim    # some chapters (a number, a name or a path)
    .venv/bin/python chapters/build.py --check      # execute nothing: which notebooks differ from their source?

A notebook runs with cwd = chapters/ (as tests/test_chapters.py runs it) and OMP_WAIT_POLICY=PASSIVE unless
the caller set it: OpenMP's spin-waiting makes torch several times slower on a small shared machine. The saved
notebook is replaced only when every cell ran without an error.

A chapter that is still only a notebook gets its source with
    .venv/bin/jupytext --set-formats ipynb,py:percent chapters/NN_topic.ipynb
which writes chapters/NN_topic.py from the notebook's cells and records the pairing in both files.
"""

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

CHAPTERS = Path(__file__).resolve().parent
PAIRING = "ipynb,py:percent"


def chapter_sources(chapters: Path = CHAPTERS) -> list[Path]:
    """The chapters' sources, in order: chapters/NN_topic.py (not this script or the old _make_NN.py)."""
    return sorted(chapters.glob("[0-9][0-9]_*.py"))


def find_source(name: str, chapters: Path = CHAPTERS) -> Path:
    """The source a command-line name means: "04", "04_transformer", "chapters/04_transformer.ipynb", ..."""
    stem = Path(name).name.removesuffix(".py").removesuffix(".ipynb")
    found = [p for p in chapter_sources(chapters) if p.stem == stem or p.stem.split("_", 1)[0] == stem]
    if len(found) != 1:
        known = ", ".join(p.stem for p in chapter_sources(chapters))
        raise SystemExit(f"build.py: no single chapter source matches {name!r}; the sources are: {known}")
    return found[0]


def cells(nb) -> list[tuple[str, str]]:
    """(cell type, source) of every cell, the part of a notebook its source determines."""
    return [(c.cell_type, c.source) for c in nb.cells]


def differences(source: Path) -> list[str]:
    """What is wrong with the saved notebook of `source`, as sentences; [] when it is up to date.

    Up to date means: the notebook exists, its cells are the source's cells (same types, same text, same
    order), and it was executed top to bottom in one session (execution counts 1, 2, 3, ...; no errors).
    """
    notebook = source.with_suffix(".ipynb")
    fix = f"run: .venv/bin/python chapters/build.py {source.stem}"
    if not notebook.exists():
        return [f"{notebook.name} is missing; {fix}"]
    want, nb = cells(jupytext.read(source)), nbformat.read(notebook, as_version=4)
    have = cells(nb)
    problems = []
    if want != have:
        k = next((i for i, (w, h) in enumerate(zip(want, have)) if w != h), min(len(want), len(have)))
        where = (f"cell {k} differs (source: {want[k][1][:60]!r}..., notebook: {have[k][1][:60]!r}...)"
                 if k < min(len(want), len(have)) else f"the source has {len(want)} cells, the notebook {len(have)}")
        problems.append(f"{notebook.name} does not hold the cells of {source.name}: {where}; edit the .py and {fix} "
                        f"(or, after editing the notebook in JupyterLab without jupytext: .venv/bin/jupytext --sync {notebook})")
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.get("execution_count") for c in code]
    if counts != list(range(1, len(code) + 1)):
        problems.append(f"{notebook.name} was not executed top to bottom in one run (execution counts {counts}); {fix}")
    errors = [k for k, c in enumerate(nb.cells) if c.cell_type == "code"
              and any(o.output_type == "error" for o in c.get("outputs", []))]
    if errors:
        problems.append(f"{notebook.name} holds errors in cells {errors}; {fix}")
    if nb.metadata.get("jupytext", {}).get("formats") != PAIRING:
        problems.append(f"{notebook.name} is not paired with its source (metadata jupytext.formats should be "
                        f"{PAIRING!r}); .venv/bin/jupytext --set-formats {PAIRING} {source}")
    return problems


def build(source: Path, timeout: int = 300) -> float:
    """Execute the cells of `source` and save them, with outputs, as its .ipynb; return the seconds it took.

    Raises CellExecutionError (with the failing cell and its traceback) and then leaves the saved
    notebook as it was.
    """
    nb = jupytext.read(source)
    nb.metadata.setdefault("jupytext", {})["formats"] = PAIRING
    seen = set()
    for k, cell in enumerate(nb.cells):  # ids from the text (the source has none): rebuilding does not churn them
        cell.id = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()[:8]
        cell.id = cell.id if cell.id not in seen else f"{cell.id}-{k}"
        seen.add(cell.id)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # inherited by the kernel
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False, coalesce_streams=True,
                   resources={"metadata": {"path": str(source.parent)}}).execute()
    seconds = time.perf_counter() - start
    notebook = source.with_suffix(".ipynb")
    partial = notebook.with_name(notebook.name + ".partial")
    partial.write_text(jupytext.writes(nb, fmt="ipynb"), encoding="utf-8")
    partial.replace(notebook)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Execute chapter sources (chapters/NN_topic.py) into their "
                                                 "notebooks (chapters/NN_topic.ipynb), outputs saved.")
    parser.add_argument("chapters", nargs="*", help="chapters to build: a number (04), a name (04_transformer) or "
                                                    "a path; default: every chapter with a .py source")
    parser.add_argument("--check", action="store_true", help="execute nothing; list the notebooks that differ "
                                                             "from their source or were not executed, exit 1 if any")
    parser.add_argument("--timeout", type=int, default=300, help="seconds one cell may run (default: 300)")
    args = parser.parse_args(argv)
    sources = [find_source(n) for n in args.chapters] or chapter_sources()
    if args.check:
        problems = [p for s in sources for p in differences(s)]
        print("\n".join(problems) or f"{len(sources)} notebooks match their sources")
        return 1 if problems else 0
    for source in sources:
        try:
            seconds = build(source, args.timeout)
        except CellExecutionError as e:
            print(f"{source.name}: a cell failed; {source.with_suffix('.ipynb').name} is unchanged\n{e}",
                  file=sys.stderr)
            return 1
        print(f"{source.with_suffix('.ipynb').name}: executed in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
