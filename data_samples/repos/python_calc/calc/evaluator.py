"""Evaluate a syntax tree."""

import operator

from .nodes import BinOp, Number

OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


def evaluate(node) -> float:
    if isinstance(node, Number):
        return node.value
    if isinstance(node, BinOp):
        return OPS[node.op](evaluate(node.left), evaluate(node.right))
    raise TypeError(f"not a node: {node!r}")
