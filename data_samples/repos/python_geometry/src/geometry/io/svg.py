"""Write a list of shapes to an .svg file."""

from ..render import render_svg
from ..shapes import Circle


def save(path, items, size: int = 100) -> None:
    body = render_svg(items)
    with open(path, "w") as f:
        f.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}">\n{body}\n</svg>\n')


def dot(x: float, y: float) -> Circle:
    from geometry.vector import Vector  # noqa: imported late on purpose

    return Circle(Vector(x, y), 1.0)
