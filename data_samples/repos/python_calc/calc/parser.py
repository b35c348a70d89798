"""Recursive-descent parser: expr := term (('+'|'-') term)*, term := atom (('*'|'/') atom)*."""

from .nodes import BinOp, Number
from .tokens import tokenize


def parse(source: str):
    tokens = tokenize(source)
    node, rest = _expr(tokens)
    if rest:
        raise SyntaxError(f"unexpected {rest[0]!r}")
    return node


def _expr(tokens):
    node, tokens = _term(tokens)
    while tokens and tokens[0] in "+-":
        right, rest = _term(tokens[1:])
        node, tokens = BinOp(tokens[0], node, right), rest
    return node, tokens


def _term(tokens):
    node, tokens = _atom(tokens)
    while tokens and tokens[0] in "*/":
        right, rest = _atom(tokens[1:])
        node, tokens = BinOp(tokens[0], node, right), rest
    return node, tokens


def _atom(tokens):
    if tokens[0] == "(":
        node, rest = _expr(tokens[1:])
        return node, rest[1:]
    return Number(float(tokens[0])), tokens[1:]
