"""Shapes placed by their centre."""

from dataclasses import dataclass

from .vector import Vector


@dataclass
class Circle:
    centre: Vector
    radius: float

    def area(self) -> float:
        return 3.141592653589793 * self.radius ** 2


@dataclass
class Square:
    centre: Vector
    side: float

    def corners(self) -> list[Vector]:
        h = self.side / 2
        return [self.centre + Vector(dx, dy) for dx, dy in [(-h, -h), (h, -h), (h, h), (-h, h)]]
