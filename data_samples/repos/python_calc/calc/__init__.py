"""calc: parse and evaluate arithmetic like "2 * (3 + 4)"."""

from .evaluator import evaluate
from .parser import parse


def run(source: str) -> float:
    return evaluate(parse(source))
