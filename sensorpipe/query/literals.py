"""Numbers written into InfluxQL."""

from __future__ import annotations

from decimal import Decimal


def number_literal(value: float | int) -> str:
    """A number as InfluxQL reads it: a plain decimal, never in exponent form (InfluxQL reads
    `1e-05` as the number 1 followed by a duration unit, and fails). Floats keep a decimal
    point, so a large one is not read as an integer that overflows."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"not a number: {value!r}")
    if isinstance(value, int):
        return str(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"not a finite number: {value!r}")
    text = format(Decimal(repr(value)), "f")
    return text if "." in text else text + ".0"
