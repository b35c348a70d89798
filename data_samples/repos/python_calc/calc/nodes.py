"""Syntax tree nodes. `Node.from_source` parses, so this module and parser.py import each other."""

from dataclasses import dataclass


class Node:
    @staticmethod
    def from_source(source: str) -> "Node":
        from .parser import parse  # late import: parser.py imports this module at the top

        return parse(source)


@dataclass
class Number(Node):
    value: float


@dataclass
class BinOp(Node):
    op: str
    left: Node
    right: Node
