"""Baseline against candidate: overlaid latency CDFs and the relative change of each metric.

The CDFs are of each run's measured, successful requests, read at the same quantile grid as
a single run's (``dashboards.distributions.CDF_GRID``). The delta chart draws
``sla.compare``'s ``MetricChange``s as they are: the relative change, its two-sided interval
as error bars, coloured by the regression verdict, with the tolerance marked.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from dashboards.distributions import cdf_points
from dashboards.panel import COLOURS, Panel, new_figure, padded_range
from dashboards.view import LATENCY_METRICS, METRIC_NAMES, RunView
from sla.compare import Change, Comparison, MetricChange
from sla.files.run import Run
from sla.reading import Reading

CHANGE_COLOURS = {
    Change.REGRESSED: "#CC3311",
    Change.IMPROVED: "#009E73",
    Change.NO_CHANGE: "#888888",
    Change.INCONCLUSIVE: "#E69F00",
}


def comparison_panels(
    baseline: Run | Reading, candidate: Run | Reading, comparison: Comparison
) -> list[Panel]:
    """The delta chart, then one CDF overlay per latency metric that either run has (of
    runs, or of readings already made of them)."""
    views = {"baseline": RunView.of(baseline), "candidate": RunView.of(candidate)}
    panels = [delta_panel(comparison)]
    for metric in LATENCY_METRICS:
        panel = cdf_overlay(metric, views)
        if panel is not None:
            panels.append(panel)
    return [p for p in panels if p is not None]


def cdf_overlay(metric: str, views: dict[str, RunView]) -> Panel | None:
    """Both runs' CDFs of ``metric`` on one log axis; None when neither has samples."""
    samples = {name: view.values(metric) for name, view in views.items()}
    if not any(len(v) for v in samples.values()):
        return None
    name = METRIC_NAMES.get(metric, metric)
    title = f"{name} CDF: baseline vs candidate"
    fig = new_figure(title, x_title=f"{metric} (ms, log scale)", y_title="percentile (%)")
    for run_name, values in samples.items():
        if not len(values):
            continue
        x, percent = cdf_points(values)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=percent,
                mode="lines",
                name=f"{run_name} (n={len(values):,})",
                line={"color": COLOURS[run_name]},
                hovertemplate=f"{run_name} p%{{y:.4g}}: %{{x:.4g}} ms<extra></extra>",
            )
        )
    fig.update_xaxes(type="log")
    fig.update_yaxes(range=[0, 100.5])
    fig.update_layout(hovermode="closest")
    note = "Measured window, successful requests of each run, at a fixed quantile grid."
    return Panel(f"compare_cdf_{metric}", title, fig, note)


def change_bounds_pct(change: MetricChange) -> tuple[float, float]:
    """Error-bar lengths ``(above, below)`` of the change in percent; 0 without an interval."""
    if change.ci_low is None or change.ci_high is None or not math.isfinite(change.change_rel):
        return 0.0, 0.0
    return (
        (change.ci_high - change.change_rel) * 100.0,
        (change.change_rel - change.ci_low) * 100.0,
    )


def delta_panel(comparison: Comparison) -> Panel | None:
    """Horizontal bars of ``change_rel`` (percent) per metric with their intervals; the
    error rate, a difference of shares in points, is in the table only."""
    changes = [c for c in comparison.changes if c.ci_kind == "relative"]
    if not changes:
        return None
    title = "Candidate against baseline: relative change per metric"
    fig = new_figure(
        title,
        x_title="change, candidate vs baseline (%)",
        y_title="metric (statistic)",
        height_px=160 + 30 * len(changes),
    )
    bounds = np.array([change_bounds_pct(c) for c in changes]).reshape(-1, 2)
    rel = np.array([c.change_rel * 100.0 for c in changes])
    fig.add_trace(
        go.Bar(
            x=np.nan_to_num(rel),
            y=[c.label for c in changes],
            orientation="h",
            marker={"color": [CHANGE_COLOURS.get(c.verdict, "#888888") for c in changes]},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": bounds[:, 0],
                "arrayminus": bounds[:, 1],
                "color": "#333333",
            },
            text=[str(c.verdict) for c in changes],
            textposition="outside",
            cliponaxis=False,
            customdata=[c.message for c in changes],
            hovertemplate="%{customdata}<extra></extra>",
            showlegend=False,
            name="change",
        )
    )
    tolerance = comparison.max_regression * 100.0
    for x in (-tolerance, tolerance):
        fig.add_vline(x=x, line={"dash": "dot", "color": "#777777", "width": 1})
    fig.add_vline(x=0.0, line={"color": "#333333", "width": 1})
    ends = np.concatenate((np.nan_to_num(rel), rel + bounds[:, 0], rel - bounds[:, 1]))
    fig.update_xaxes(range=padded_range(np.r_[ends, -tolerance, tolerance]))
    fig.update_yaxes(type="category", autorange="reversed")
    fig.update_layout(hovermode="closest")
    note = (
        f"Bars: relative change; whiskers: the {comparison.confidence * 100:g}% interval; "
        f"dotted: the ±{tolerance:g}% tolerance. Latencies: right is worse; rates: left is "
        "worse."
    )
    return Panel("compare_changes", title, fig, note)
