"""Render shapes as SVG elements."""

from . import shapes
from .transform import rotate


def render_svg(items, angle: float = 0.0) -> str:
    parts = []
    for item in items:
        if isinstance(item, shapes.Circle):
            c = rotate(item.centre, angle)
            parts.append(f'<circle cx="{c.x:.2f}" cy="{c.y:.2f}" r="{item.radius}"/>')
        elif isinstance(item, shapes.Square):
            points = " ".join(f"{p.x:.2f},{p.y:.2f}" for p in (rotate(q, angle) for q in item.corners()))
            parts.append(f'<polygon points="{points}"/>')
    return "\n".join(parts)
