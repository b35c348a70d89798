"""Colours used by the logo script."""

PRIMARY = "#1f6feb"
ACCENT = "#f78166"
