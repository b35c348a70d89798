"""A context manager that prints how long its block took."""

import time
from contextlib import contextmanager


@contextmanager
def timed(label: str):
    start = time.perf_counter()
    yield
    print(f"{label}: {time.perf_counter() - start:.3f}s")
