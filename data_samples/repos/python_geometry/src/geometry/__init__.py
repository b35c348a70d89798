"""geometry: a tiny 2D shapes library that renders to SVG."""

from .render import render_svg
from .shapes import Circle, Square

__all__ = ["Circle", "Square", "render_svg"]
