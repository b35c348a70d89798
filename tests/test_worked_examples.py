"""The `>>>` examples in the docstring of every assigned function, for every assignment.

Run: .venv/bin/pytest tests/test_worked_examples.py -q
One function: .venv/bin/pytest "tests/test_worked_examples.py::test_worked_examples[tokenizer:merge]" -q

A docstring is a stub's specification, so its examples are graded with the function (the grader
adds this test to each function's row) and run against the reference in the ordinary suite: the
specification and the graded tests cannot contradict each other.
"""

import doctest

import pytest

from minicoder.assignments import ASSIGNMENTS, STUB_MESSAGE, worked_examples

FUNCTIONS = [name for a in ASSIGNMENTS.values() for name in a.functions]


@pytest.mark.parametrize("name", FUNCTIONS, ids=FUNCTIONS)
def test_worked_examples(name):
    test = worked_examples(name)
    runner = doctest.DebugRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    try:
        runner.run(test, clear_globs=False)
    except doctest.UnexpectedException as e:
        exc = e.exc_info[1]
        if isinstance(exc, NotImplementedError) and STUB_MESSAGE.search(str(exc)):
            raise exc from None  # a stub: the grader reports "not implemented", not a wrong example
        pytest.fail(f"{name}: the example\n    >>> {e.example.source.strip()}\nraised "
                    f"{type(exc).__name__}: {exc}", pytrace=False)
    except doctest.DocTestFailure as e:
        pytest.fail(f"{name}: the example\n    >>> {e.example.source.strip()}\nshould give\n    "
                    f"{e.example.want.strip()}\nbut gave\n    {e.got.strip()}", pytrace=False)
