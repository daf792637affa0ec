"""How figures read in the report, the verdicts and the tables: one place for each format."""

from __future__ import annotations

from collections.abc import Sequence


def percent(value: float | None, signed: bool = False) -> str:
    """A rate or skill as a percentage with one decimal ("undefined" for None)."""
    if value is None:
        return "undefined"
    return f"{100 * value:+.1f}%" if signed else f"{100 * value:.1f}%"


def interval(bounds: Sequence[float] | None, signed: bool = False) -> str:
    """An interval of rates, "[low%, high%]" ("undefined" for None)."""
    if bounds is None:
        return "undefined"
    return "[" + ", ".join(percent(v, signed) for v in bounds) + "]"


def p_value(value: float | None) -> str:
    """A p-value: three decimals, or two significant digits below 0.001."""
    if value is None:
        return "undefined"
    return f"{value:.2g}" if value < 0.001 else f"{value:.3f}"


def number(value: float | None, digits: int = 3) -> str:
    """A figure with `digits` decimals ("undefined" for None)."""
    return "undefined" if value is None else f"{value:.{digits}f}"
