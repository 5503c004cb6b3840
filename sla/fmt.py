"""How numbers read on a terminal and in messages: values with units, intervals, signs.

Shared by ``sla.objectives`` (its per-objective messages), ``sla.table``, ``sla.compare`` and
the reports, so that a message and its table row always print a value the same way.
"""

from __future__ import annotations

import math

from sla.spec import LATENCY_METRICS, PROPORTION_METRICS

__all__ = ["fmt_ci", "fmt_confidence", "fmt_number", "fmt_value", "op_symbol"]

_UNITS = {m: "ms" for m in LATENCY_METRICS} | {
    "throughput_rps": "req/s",
    "goodput_rps": "req/s",
    "output_tokens_per_s": "tok/s",
}


def fmt_number(x: float | None, metric: str = "") -> str:
    """About four significant digits, never scientific; proportions as percent; ? for None."""
    if x is None:
        return "?"
    if math.isnan(x):
        return "n/a"
    if metric in PROPORTION_METRICS:
        x *= 100.0
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    decimals = max(0, 3 - math.floor(math.log10(abs(x))))
    text = f"{x:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def fmt_value(metric: str, x: float | None) -> str:
    """A value with its unit: ``812.4 ms``, ``0.5%``, ``21.3 req/s``, ``1834 tok/s``."""
    unit = _UNITS.get(metric, "")
    if x is None or math.isnan(x):
        return "n/a"
    if metric in PROPORTION_METRICS:
        return f"{fmt_number(x, metric)}%"
    return f"{fmt_number(x, metric)} {unit}".rstrip()


def op_symbol(op: str, holds: bool) -> str:
    """The comparison sign for a ``max``/``min`` limit, turned when the limit does not hold."""
    if op == "max":
        return "≤" if holds else ">"
    return "≥" if holds else "<"


def fmt_confidence(confidence: float) -> str:
    """A confidence level as a percent: ``95%``."""
    return f"{confidence * 100:g}%"


def fmt_ci(metric: str, low: float | None, high: float | None) -> str:
    """An interval as ``lo–hi`` in the metric's units; ``?`` for an end that does not exist."""
    unit = "%" if metric in PROPORTION_METRICS else ""
    ends = [fmt_number(x, metric) + (unit if x is not None else "") for x in (low, high)]
    return "–".join(ends)
