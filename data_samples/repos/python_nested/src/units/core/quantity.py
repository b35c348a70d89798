"""A value with a unit."""

from dataclasses import dataclass

from units.core.table import FACTORS, to_base


@dataclass(frozen=True)
class Quantity:
    value: float
    unit: str

    def to(self, unit: str) -> "Quantity":
        """Quantity(3, "km").to("m") -> Quantity(3000.0, "m")."""
        return Quantity(to_base(self.value, self.unit) / FACTORS[unit], unit)
