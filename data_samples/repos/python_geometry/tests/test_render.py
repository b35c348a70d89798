from geometry.render import render_svg
from geometry.shapes import Circle
from geometry.vector import Vector


def test_circle():
    assert render_svg([Circle(Vector(1, 2), 3)]) == '<circle cx="1.00" cy="2.00" r="3"/>'
