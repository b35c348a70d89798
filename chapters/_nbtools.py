"""Shared by the chapter generators (`chapters/_make_NN.py`): build a notebook from cells, run it, save it."""

import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def build(cells: list, name: str) -> Path:
    """Execute `cells` as a notebook with cwd = chapters/ (as tests/test_chapters.py runs it) and write
    chapters/<name> with its outputs stored."""
    nb = nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    })
    t = time.perf_counter()
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    print(f"executed in {time.perf_counter() - t:.1f} s")
    nbformat.write(nb, HERE / name)
    return HERE / name
