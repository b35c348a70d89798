"""Parse "3 km" and convert it to another unit."""

from units.core.quantity import Quantity


def parse(text: str) -> Quantity:
    value, unit = text.split()
    return Quantity(float(value), unit)


def convert(text: str, unit: str) -> Quantity:
    """convert("90 min", "h") -> Quantity(1.5, "h")."""
    return parse(text).to(unit)
