"""How quantities are printed."""

DIGITS = 3
SEPARATOR = "\u2009"  # a thin space between value and unit
