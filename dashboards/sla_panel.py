"""The SLA panel: every objective's headroom to its limit, coloured by status, with the verdict.

Headroom is ``ObjectiveResult.margin_rel`` in percent: positive is room to spare (below a
max limit, above a min limit), negative a violation, so max and min objectives read the same
way on one axis. The whiskers are the objective's confidence bounds turned into headroom.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from dashboards.panel import STATUS_COLOURS, Panel, new_figure, padded_range, safe_label
from sla.fmt import fmt_value
from sla.objectives import ObjectiveResult
from sla.verdict import Verdict


def headroom_pct(result: ObjectiveResult) -> float:
    """``margin_rel`` in percent; NaN when it has none (a limit of 0, no samples)."""
    return result.margin_rel * 100.0 if math.isfinite(result.margin_rel) else math.nan


def headroom_bounds_pct(result: ObjectiveResult) -> tuple[float, float]:
    """The confidence bounds of ``observed`` as a headroom range ``(worst, best)`` in
    percent; NaN where a bound does not exist."""
    limit = result.limit
    if not limit:
        return math.nan, math.nan
    low = math.nan if result.ci_low is None else result.ci_low
    high = math.nan if result.ci_high is None else result.ci_high
    if result.op == "max":
        return (limit - high) / limit * 100.0, (limit - low) / limit * 100.0
    return (low - limit) / limit * 100.0, (high - limit) / limit * 100.0


def objective_label(result: ObjectiveResult) -> str:
    """``"p99 ttft_ms: 412 ms (limit ≤ 450 ms)"``: the y label of an objective's bar."""
    symbol = "≤" if result.op == "max" else "≥"
    observed = fmt_value(result.metric, result.observed)
    return f"{result.label}: {observed} (limit {symbol} {fmt_value(result.metric, result.limit)})"


def bar_text(result: ObjectiveResult) -> str:
    """``"PASS, +8.4%"``: the status and the headroom, shown next to the bar."""
    headroom = headroom_pct(result)
    return f"{result.status}, {headroom:+.1f}%" if math.isfinite(headroom) else str(result.status)


def sla_panel(verdict: Verdict | None) -> Panel | None:
    """Horizontal headroom bars, one per objective, in spec order; None without a verdict."""
    if verdict is None or not verdict.objectives:
        return None
    results = verdict.objectives
    suffix = " (load generator saturated: not trustworthy)" if verdict.saturated else ""
    if verdict.disturbed:
        suffix += " (load generator disturbed: not trustworthy)"
    title = f"SLA {verdict.spec_name}: {verdict.status}{suffix}"
    fig = new_figure(
        f"SLA {safe_label(verdict.spec_name, 60)}: {verdict.status}{suffix}",
        x_title="headroom to the limit (% of the limit)",
        y_title="objective (spec order)",
        height_px=160 + 44 * len(results),
    )
    headroom = np.array([headroom_pct(r) for r in results])
    bounds = np.array([headroom_bounds_pct(r) for r in results]).reshape(-1, 2)
    shown = np.nan_to_num(headroom)  # no headroom (limit 0, no samples): a bar of 0
    fig.add_trace(
        go.Bar(
            x=shown,
            y=[objective_label(r) for r in results],
            orientation="h",
            marker={"color": [STATUS_COLOURS.get(str(r.status), "#777777") for r in results]},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": np.nan_to_num(bounds[:, 1] - headroom),
                "arrayminus": np.nan_to_num(headroom - bounds[:, 0]),
                "color": "#333333",
            },
            text=[bar_text(r) for r in results],
            textposition="outside",
            cliponaxis=False,
            customdata=[safe_label(r.message, 300) for r in results],
            hovertemplate="%{customdata}<extra></extra>",
            name="headroom",
            showlegend=False,
        )
    )
    fig.add_vline(x=0.0, line={"color": "#333333", "width": 1})
    fig.update_yaxes(type="category", autorange="reversed")
    fig.update_xaxes(range=padded_range(np.concatenate((shown, bounds.ravel()))))
    fig.update_layout(hovermode="closest")
    counts = verdict.counts
    note = (
        f"Verdict {verdict.status} at {verdict.confidence * 100:g}% confidence over "
        f"{counts.measured:,} judged requests ({counts.ok:,} ok, {counts.failed:,} failed). "
        "Bars: headroom (right of 0 is within the limit); whiskers: the confidence bounds."
    )
    return Panel("sla", title, fig, note)
