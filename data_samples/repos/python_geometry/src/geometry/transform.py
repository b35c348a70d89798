"""Rotations about the origin."""

import math

from geometry.vector import Vector


def rotate(v: Vector, degrees: float) -> Vector:
    t = math.radians(degrees)
    return Vector(v.x * math.cos(t) - v.y * math.sin(t), v.x * math.sin(t) + v.y * math.cos(t))
