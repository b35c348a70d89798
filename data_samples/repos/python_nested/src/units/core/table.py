"""Conversion factors to SI base units (metres, seconds)."""

FACTORS = {"m": 1.0, "km": 1000.0, "cm": 0.01, "s": 1.0, "min": 60.0, "h": 3600.0}


def to_base(value: float, unit: str) -> float:
    """3 km -> 3000.0 (metres)."""
    try:
        return value * FACTORS[unit]
    except KeyError:
        raise ValueError(f"unknown unit {unit!r}; known: {', '.join(sorted(FACTORS))}") from None
