"""Split an expression into numbers, operators and parentheses."""

import re

TOKEN = re.compile(r"\s*(?:(\d+\.?\d*)|(.))")


def tokenize(source: str) -> list[str]:
    tokens = []
    for number, other in TOKEN.findall(source):
        tokens.append(number or other)
    return [t for t in tokens if t.strip()]
