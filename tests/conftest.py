"""Shared test set-up.

Run everything with `make test`, or one file with `.venv/bin/pytest tests/test_tokenizer_bpe.py -q`.

Grading: when MINICODER_STUDENT names a directory holding a student's `minicoder/` package
(made by `minicoder assignment make`), that package is imported instead of the reference, so
the same tests grade either one.
"""

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data_samples"

_student = os.environ.get("MINICODER_STUDENT")
if _student:
    sys.path.insert(0, str(Path(_student).resolve()))
    for _name in [m for m in sys.modules if m == "minicoder" or m.startswith("minicoder.")]:
        del sys.modules[_name]
    import minicoder as _mc

    if not Path(_mc.__file__).resolve().is_relative_to(Path(_student).resolve()):
        raise RuntimeError(f"MINICODER_STUDENT={_student} but minicoder was imported from {_mc.__file__}")


@pytest.fixture
def data_dir() -> Path:
    return DATA
