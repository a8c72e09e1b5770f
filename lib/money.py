"""One way to write an amount of money, so the same run shows the same cents everywhere.

Why: Python's `f"{0.625:.2f}"` rounds half to even ("0.62") while the browser's sprintf in a table
column rounds half up ("0.63"): the same pro 10 s run showed $0.62 on its card and $0.63 in History.
Every page now rounds here, half up on the decimal value (0.625 → 0.63, 0.185 → 0.19), and tables get
amounts already rounded to cents, so their own formatting has nothing left to round.
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

_CENT = Decimal("0.01")


def _decimal(usd: float | int | str | Decimal | None) -> Decimal:
    """The amount as a Decimal of what was written (repr of a float: 0.625, not its binary expansion)."""
    try:
        value = Decimal(repr(usd) if isinstance(usd, float) else str(usd if usd is not None else 0))
    except (InvalidOperation, ValueError):
        return Decimal(0)
    return value if value.is_finite() else Decimal(0)


def cents(usd: float | int | str | Decimal | None) -> float:
    """The amount rounded half up to whole cents (for table columns and sums shown as numbers)."""
    return float(_decimal(usd).quantize(_CENT, rounding=ROUND_HALF_UP)) + 0.0  # + 0.0: no -0.0


def usd(amount: float | int | str | Decimal | None) -> str:
    """'$0.63', '$1,234.50', '-$0.05': dollars and cents, thousands separated, rounded half up."""
    value = _decimal(amount).quantize(_CENT, rounding=ROUND_HALF_UP)
    if value == 0:
        value = abs(value)  # no "-$0.00"
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def approx(amount: float | int | str | Decimal | None) -> str:
    """'≈ $0.63': a price before anything is sent (an estimate, never the gateway's bill)."""
    return f"≈ {usd(amount)}"


def estimate(amount: float | int | str | Decimal | None) -> str:
    """'≈ $0.63 (estimate)': the long form, where there is room to say what the number is."""
    return f"{approx(amount)} (estimate)"
