"""Plain-text formatting of the report's figures (shared by HTML, markdown and JUnit).

Table values are exact to the displayed resolution: milliseconds to the microsecond, rates to
a thousandth, proportions to a ten-thousandth of a percent. The rounded ``sla.fmt``
style (about four significant digits) is kept for limits and margins, as the terminal shows.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from sla.fmt import fmt_number, fmt_value
from sla.objectives import ObjectiveResult
from sla.spec import LATENCY_METRICS, PROPORTION_METRICS

__all__ = [
    "ci_text",
    "count",
    "duration",
    "exact",
    "exact_value",
    "limit_text",
    "margin_text",
    "signed_pct",
    "timestamp",
]

_RATE_UNITS = {"throughput_rps": "req/s", "goodput_rps": "req/s", "output_tokens_per_s": "tok/s"}


def exact(x: float | None, decimals: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.{decimals}f}"


def exact_value(metric: str, x: float | None) -> str:
    """``110.097 ms``, ``31.540 req/s``, ``0.0000%``; n/a for a missing value."""
    if x is None or not math.isfinite(x):
        return "n/a"
    if metric in PROPORTION_METRICS:
        return f"{x * 100:.4f}%"
    if metric in LATENCY_METRICS:
        return f"{x:.3f} ms"
    return f"{x:.3f} {_RATE_UNITS.get(metric, '')}".rstrip()


def count(n: int | None) -> str:
    return "n/a" if n is None else f"{n:,}"


def limit_text(r: ObjectiveResult) -> str:
    return f"{'≤' if r.op == 'max' else '≥'} {fmt_value(r.metric, r.limit)}"


def margin_text(r: ObjectiveResult) -> str:
    """Signed headroom as ``sla.table.format_table`` prints it: ``+4890 ms (+98%)``."""
    if not math.isfinite(r.margin):
        return "n/a"
    sign = "+" if r.margin >= 0 else "-"
    if r.metric in PROPORTION_METRICS:  # points, not a relative change
        text = f"{sign}{fmt_number(abs(r.margin), r.metric)} pp"
    else:
        text = f"{sign}{fmt_value(r.metric, abs(r.margin))}"
    if math.isfinite(r.margin_rel):
        text += f" ({r.margin_rel:+.0%})"
    return text


def ci_text(r: ObjectiveResult) -> str:
    if r.ci_low is None and r.ci_high is None:
        return "-"
    unit = "%" if r.metric in PROPORTION_METRICS else ""
    ends = [
        fmt_number(x, r.metric) + (unit if x is not None else "") for x in (r.ci_low, r.ci_high)
    ]
    return "–".join(ends)


def signed_pct(rel: float | None) -> str:
    if rel is None or not math.isfinite(rel):
        return "n/a"
    return f"{rel * 100:+.1f}%"


def duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    if seconds < 120:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(seconds, 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return (f"{hours} h " if hours else "") + f"{minutes} min {secs:.0f} s"


def timestamp(epoch_s: Any) -> str:
    """An epoch time from run.json as ``2026-05-01 12:00:03 UTC``; n/a if not a number."""
    if isinstance(epoch_s, bool) or not isinstance(epoch_s, int | float):
        return "n/a"
    if not math.isfinite(epoch_s):
        return "n/a"
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
