"""Shared test set-up.

Run everything with `make test`, or one file with `.venv/bin/pytest tests/test_tokenizer_bpe.py -q`.

Which `minicoder` the tests import: the package in MINICODER_STUDENT when that names a folder (the
grader sets it to a student's package), else the one next to this tests/ folder. So the same tests
grade the reference or a student's copy, and inside a student folder a pip-installed minicoder (the
reference solution) can never stand in for the student's.

Grading: when MINICODER_REPORT names a file, each test appends one JSON line to it: its node id,
outcome, whether it failed on a stub's NotImplementedError (and which function's) or on a timeout,
and the first line of its failure. `minicoder.assignments.grade` builds its table from these.
"""

import json
import os
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data_samples"

_ROOT = Path(os.environ.get("MINICODER_STUDENT") or REPO).resolve()
sys.path.insert(0, str(_ROOT))
for _name in [m for m in sys.modules if m == "minicoder" or m.startswith("minicoder.")]:
    del sys.modules[_name]
import minicoder as _mc  # noqa: E402

if not Path(_mc.__file__).resolve().is_relative_to(_ROOT):
    raise RuntimeError(f"tests must import minicoder from {_ROOT}, but it came from {_mc.__file__}")

_STUB = re.compile(r"assignment [\w-]+: implement (?P<function>[\w.]+)")  # as minicoder.assignments stubs raise
_RECORD = pytest.StashKey[dict]()


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    path = os.environ.get("MINICODER_REPORT")
    if not path:
        return
    rep = outcome.get_result()
    record = item.stash.setdefault(_RECORD, {"nodeid": item.nodeid, "outcome": "passed"})
    if rep.skipped and record["outcome"] == "passed":
        record["outcome"] = "skipped"
    elif rep.failed and record["outcome"] != "failed":
        record["outcome"] = "failed"
        exc = call.excinfo
        message = exc.exconly() if exc is not None else str(rep.longrepr)
        stub = _STUB.search(message) if exc is not None and exc.errisinstance(NotImplementedError) else None
        record["stub"] = stub["function"] if stub else None
        record["timeout"] = "Timeout" in message and "pytest-timeout" in message
        record["message"] = " ".join(message.split())[:160]
        record["phase"] = call.when  # "setup" would be an error in pytest's count, not a failure
    if call.when == "teardown":
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
