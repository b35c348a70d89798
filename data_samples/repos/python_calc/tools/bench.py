"""Time the standard library's eval on a long expression (run from tools/)."""

from timer import timed

EXPRESSION = " + ".join(str(i) for i in range(1000))

if __name__ == "__main__":
    with timed("eval"):
        for _ in range(100):
            eval(EXPRESSION)
