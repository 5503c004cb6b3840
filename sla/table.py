"""How a verdict reads on a terminal: numbers with units, and ``format_table(verdict)`` (pure).

The number and interval helpers are shared with ``sla.verdict``, whose per-objective
messages use them, so that a message and its table row always print a value the same way.
This module imports ``sla.verdict`` for type checking only: the verdict imports these helpers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from sla.spec import LATENCY_METRICS, PROPORTION_METRICS

if TYPE_CHECKING:
    from sla.verdict import Verdict

__all__ = ["fmt_ci", "fmt_confidence", "fmt_number", "fmt_value", "format_table", "op_symbol"]

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


def format_table(verdict: Verdict) -> str:
    """The terminal table: one row per objective, then the reason of every non-PASS."""
    c = verdict.counts
    window = f"{verdict.window_s:.1f} s" if verdict.window_s is not None else "an unknown window"
    lines = [
        f"SLA {verdict.spec_name} ({verdict.spec_source}) on {verdict.run_path}: {verdict.status}",
        f"{c.measured} requests judged ({c.ok} ok, {c.failed} failed) over {window}; "
        f"bounds at {fmt_confidence(verdict.confidence)} confidence",
    ]
    header = (
        "objective",
        "observed",
        "limit",
        "margin",
        "n",
        f"{fmt_confidence(verdict.confidence)} CI",
    )
    rows = [(*header, "status")]
    for r in verdict.objectives:
        margin = "n/a"
        if math.isfinite(r.margin):
            sign = "+" if r.margin >= 0 else "-"
            margin = f"{sign}{fmt_value(r.metric, abs(r.margin))}"
            if r.metric in PROPORTION_METRICS:  # points, not a relative change
                margin = f"{sign}{fmt_number(abs(r.margin), r.metric)} pp"
            if math.isfinite(r.margin_rel):
                margin += f" ({r.margin_rel:+.0%})"
        ci = "-" if r.direct else fmt_ci(r.metric, r.ci_low, r.ci_high)
        limit = f"{op_symbol(r.op, True)} {fmt_value(r.metric, r.limit)}"
        observed = fmt_value(r.metric, r.observed)
        rows.append((r.label, observed, limit, margin, str(r.n), ci, str(r.status)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if verdict.saturated:
        lines.append(
            "WARNING: the load generator was saturated (run.json generator.saturated); its "
            "timings are not trustworthy: add load-generator processes and re-run"
        )
    # Status is a StrEnum; comparing with its value spares a runtime import of sla.verdict.
    lines.extend(r.message for r in verdict.objectives if r.status != "PASS")
    return "\n".join(lines)
