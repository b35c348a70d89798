"""Every chapter notebook runs top to bottom (cwd = chapters/, no network, CPU), and every saved notebook holds
the cells of its jupytext source (chapters/NN_topic.py), executed. That each exercise's sections run with only the
functions it asks for is checked in the assignment's own student package, from the exercises the assignments
declare (tests/test_assignments.py::test_exercise_runs_with_only_its_functions).

Run: .venv/bin/pytest tests/test_chapters.py -q
One chapter: .venv/bin/pytest tests/test_chapters.py -q -k 04
Rebuild a chapter's notebook after editing its source: .venv/bin/python chapters/build.py 04
"""

import importlib.util
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = REPO / "chapters"
NOTEBOOKS = sorted(CHAPTERS.glob("[0-9][0-9]_*.ipynb"))
SOURCES = sorted(CHAPTERS.glob("[0-9][0-9]_*.py"))  # chapters without one yet are only executed


def _build_module():
    spec = importlib.util.spec_from_file_location("chapters_build", CHAPTERS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_chapters_exist():
    assert [p.name[:2] for p in NOTEBOOKS] == sorted({p.name[:2] for p in NOTEBOOKS})
    assert len(NOTEBOOKS) >= 1
    assert {p.stem for p in SOURCES} <= {p.stem for p in NOTEBOOKS}, "a source without its notebook: build it"


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_notebook_matches_source(source):
    assert _build_module().differences(source) == []


def test_differences_catches_drift(tmp_path):
    build = _build_module()
    source = tmp_path / "01_demo.py"
    source.write_text('# %% [markdown]\n# # Chapter 1\n\n# %%\nprint("hi")\n', encoding="utf-8")
    assert "missing" in build.differences(source)[0]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Chapter 1"),
                                         nbformat.v4.new_code_cell('print("hi")', execution_count=1)],
                                  metadata={"jupytext": {"formats": build.PAIRING}})
    nbformat.write(nb, source.with_suffix(".ipynb"))
    assert build.differences(source) == []
    source.write_text(source.read_text().replace("hi", "hello"), encoding="utf-8")  # edited, not rebuilt
    assert "cell 1 differs" in build.differences(source)[0]
    nb.cells[1].execution_count = None                                               # saved without running
    nbformat.write(nb, source.with_suffix(".ipynb"))
    assert any("not executed" in p for p in build.differences(source))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# Chapter")
    # OMP's spin-waiting makes torch crawl on a 2-core machine shared with the test runner.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(CHAPTERS)}})
    client.execute()  # raises CellExecutionError with the cell's traceback on failure
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
