"""Render converted quantities as text."""

from units.convert import convert

from unitfmt import style


def render(text: str, unit: str) -> str:
    """render("90 min", "h") -> "1.5 h"."""
    q = convert(text, unit)
    return f"{round(q.value, style.DIGITS):g}{style.SEPARATOR}{q.unit}"
