"""Dollars as text, formatted here only: every digit for files, short for people.

Files (results.csv, summary.csv, estimate.csv) keep every digit the price gives, as a plain decimal: a short
call can cost 0.0000112, and exponent notation (1.12e-05) breaks spreadsheets. Reports, logs and plots show
at least three significant digits, so a cheap call never reads as $0.0000.
"""
from __future__ import annotations

import math
from decimal import Decimal

NO_PRICE = "n/a"


def exact(value: Decimal | float) -> str:
    """Every digit of the value, never in exponent notation: 0.0000112, not 1.12e-05."""
    return format(value if isinstance(value, Decimal) else Decimal(repr(value)), "f")


def exact_dollars(value: Decimal | float | None) -> str:
    """'$0.0004208': the dollars to the last digit the price gives, not rounded away."""
    return f"{NO_PRICE} (no known price)" if value is None else f"${exact(value)}"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _places(value: float, at_least: int) -> int:
    """Decimal places that show at least three significant digits of a value below a cent."""
    return max(at_least, 2 - math.floor(math.log10(abs(value)))) if value else at_least


def dollars(value) -> str:
    """For reports: '$1,234.5000', '$0.000154' (at least three significant digits), '$0', 'n/a'."""
    if _missing(value):
        return NO_PRICE
    if value == 0:
        return "$0"
    if abs(value) >= 0.01:
        return f"${value:,.4f}"
    return f"${value:.{_places(value, 6)}f}"


def dollars_with(value, unpriced: int = 0) -> str:
    """Dollars of calls of which `unpriced` have no known price: n/a when none has, '$x + N n/a' for a mix."""
    if _missing(value):
        return NO_PRICE
    return f"{dollars(value)} + {unpriced} {NO_PRICE}" if unpriced else dollars(value)


def dollars_to(value: float, places: int) -> str:
    """For log and progress lines: `places` decimals, more below a cent ($0.0000110, not $0.0000)."""
    return f"${value:.{_places(value, places)}f}"


def tick(value, _position=None) -> str:
    """A plot axis's label: '$0', '$0.0123'."""
    return "$0" if value == 0 else f"${value:.3g}"
