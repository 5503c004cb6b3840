"""How a verdict reads on a terminal: ``format_table(verdict)`` (pure)."""

from __future__ import annotations

import math

from sla.fmt import fmt_ci, fmt_confidence, fmt_number, fmt_value, op_symbol
from sla.objectives import ObjectiveResult, Status
from sla.spec import PROPORTION_METRICS
from sla.verdict import Verdict

__all__ = ["format_table"]


def format_table(verdict: Verdict) -> str:
    """The terminal table: one row per objective, then the reason of every non-PASS."""
    c = verdict.counts
    if verdict.window_s is None:
        window = "an unknown window"
    else:
        window = f"{verdict.window_s:.1f} s" if verdict.window_s > 0 else "an empty window"
    lines = [
        f"SLA {verdict.spec_name} ({verdict.spec_source}) on {verdict.run_path}: {verdict.status}",
        f"{c.measured} requests judged ({c.ok} ok, {c.failed} failed) over {window}; "
        f"bounds at {fmt_confidence(verdict.confidence)} confidence",
    ]
    if verdict.errors_by_class:
        classes = ", ".join(f"{name} {n}" for name, n in verdict.errors_by_class)
        lines.append(f"failed by class: {classes}")
    header = (
        "objective",
        "observed",
        "limit",
        "margin",
        "n",
        f"{fmt_confidence(verdict.confidence)} CI",
    )
    rows: list[tuple[str, ...]] = [(*header, "status")]
    rows.extend(_row(r) for r in verdict.objectives)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if verdict.saturated:
        lines.append(
            "SATURATED LOAD GENERATOR, never a PASS: the load generator was saturated (run.json "
            "generator.saturated); its timings are not trustworthy: add load-generator "
            "processes and re-run"
        )
    lines.extend(f"INCOMPLETE RUN, never a PASS: {reason}" for reason in verdict.incomplete)
    lines.extend(
        f"DISTURBED LOAD GENERATOR, never a PASS: {reason}" for reason in verdict.disturbed
    )
    if verdict.stopped_early:
        lines.append(f"STOPPED EARLY (--sla-stop-early): {verdict.stopped_early}")
    lines.extend(r.message for r in verdict.objectives if r.status is not Status.PASS)
    return "\n".join(lines)


def _row(r: ObjectiveResult) -> tuple[str, ...]:
    ci = "-" if r.direct else fmt_ci(r.metric, r.ci_low, r.ci_high)
    limit = f"{op_symbol(r.op, True)} {fmt_value(r.metric, r.limit)}"
    observed = fmt_value(r.metric, r.observed)
    return (r.label, observed, limit, _margin(r), str(r.n), ci, str(r.status))


def _margin(r: ObjectiveResult) -> str:
    if not math.isfinite(r.margin):
        return "n/a"
    sign = "+" if r.margin >= 0 else "-"
    margin = f"{sign}{fmt_value(r.metric, abs(r.margin))}"
    if r.metric in PROPORTION_METRICS:  # points, not a relative change
        margin = f"{sign}{fmt_number(abs(r.margin), r.metric)} pp"
    if math.isfinite(r.margin_rel):
        margin += f" ({r.margin_rel:+.0%})"
    return margin
