"""Distributions of TTFT, ITL, TPOT and E2E latency: a histogram and a CDF, log x axes.

The samples are the measured window's successful requests (``itl_ms`` pools every chunk
gap), as the SLA judges them. A figure holds aggregates only, never one point per request:
the histogram has ``N_BINS`` log-spaced bins counted with numpy and drawn as bars, the CDF
is read at a fixed quantile grid (``CDF_GRID``, dense in the tail). The limits of the SLA's
objectives on the metric are drawn as labelled vertical lines, coloured by their status.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboards.panel import COLOURS, STATUS_COLOURS, Panel, style
from dashboards.view import LATENCY_METRICS, METRIC_NAMES, RunView
from sla.fmt import fmt_value
from sla.metrics import FloatArray
from sla.objectives import ObjectiveResult
from sla.spec import percentile_of
from sla.verdict import Verdict

N_BINS = 60
# 0 to 0.9 in steps of 0.005, then 100 points log-spaced in 1 - p down to p99.999, then 1.
CDF_GRID: FloatArray = np.unique(
    np.concatenate((np.linspace(0.0, 0.9, 181), 1.0 - np.geomspace(0.1, 1e-5, 100), [1.0]))
)


def log_histogram(values: FloatArray, n_bins: int = N_BINS) -> tuple[FloatArray, FloatArray]:
    """``(edges, counts)``: ``n_bins`` log-spaced bins from the smallest positive value to
    the largest; values <= 0 (a zero gap) are counted in the first bin."""
    positive = values[values > 0]
    low = float(positive.min()) if len(positive) else 1e-3
    high = float(values.max()) if len(values) else low
    if not high > low:
        low, high = low / 1.1, max(high, low) * 1.1
    # Equal bins of log10(value): numpy's fast path for uniform bins, no sort of the values.
    log_low, log_high = math.log10(low), math.log10(high)
    counts, _ = np.histogram(
        np.log10(np.maximum(values, low)), bins=n_bins, range=(log_low, log_high)
    )
    return np.logspace(log_low, log_high, n_bins + 1), counts.astype(np.float64)


def cdf_points(values: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``(value, percentile)`` at the ``CDF_GRID`` quantiles (numpy's linear quantiles)."""
    return np.quantile(values, CDF_GRID), CDF_GRID * 100.0


def distribution_panel(
    metric: str, values: FloatArray, objectives: Sequence[ObjectiveResult] = ()
) -> Panel | None:
    """Histogram (left) and CDF (right) of ``values`` in ms; None when there are none."""
    if not len(values):
        return None
    name = METRIC_NAMES.get(metric, metric)
    unit_of = "gaps" if metric == "itl_ms" else "requests"
    title = f"{name} distribution ({metric}, n={len(values):,})"
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1)
    style(fig, title)
    edges, counts = log_histogram(values)
    fig.add_trace(
        go.Bar(
            x=(edges[:-1] + edges[1:]) / 2.0,
            y=counts,
            width=np.diff(edges),
            name=f"{unit_of} per bin",
            marker={"color": COLOURS["p50"], "line": {"width": 0}},
            customdata=np.column_stack((edges[:-1], edges[1:])),
            hovertemplate="%{customdata[0]:.4g}–%{customdata[1]:.4g} ms: %{y}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    x, percent = cdf_points(values)
    fig.add_trace(
        go.Scatter(
            x=x,
            y=percent,
            name="CDF",
            mode="lines",
            line={"color": COLOURS["p50"]},
            hovertemplate="p%{y:.4g}: %{x:.4g} ms<extra></extra>",
        ),
        row=1,
        col=2,
    )
    for result in objectives:
        _add_limit(fig, result, float(counts.max()))
    fig.update_xaxes(type="log", title_text=f"{metric} (ms, log scale)")
    fig.update_yaxes(title_text=f"{unit_of} (count)", row=1, col=1)
    fig.update_yaxes(title_text="percentile (%)", range=[0, 100.5], row=1, col=2)
    fig.update_layout(bargap=0.0, hovermode="closest")
    note = (
        f"Measured window, successful requests. Histogram: {N_BINS} log-spaced bins; "
        "CDF: read at a fixed quantile grid."
    )
    if objectives:
        note += " Vertical lines: the SLA limits on this metric, coloured by verdict."
    return Panel(f"distribution_{metric}", title, fig, note)


def distribution_panels(view: RunView, verdict: Verdict | None) -> list[Panel]:
    """One panel per latency metric that has samples."""
    panels = []
    for metric in LATENCY_METRICS:
        objectives = [
            r
            for r in (verdict.objectives if verdict else ())
            if r.metric == metric and math.isfinite(r.limit) and r.limit > 0
        ]
        panel = distribution_panel(metric, view.values(metric), objectives)
        if panel is not None:
            panels.append(panel)
    return panels


def limit_label(result: ObjectiveResult) -> str:
    """``"p99 ≤ 450 ms (PASS)"``: the objective, its limit and its status."""
    symbol = "≤" if result.op == "max" else "≥"
    stat = result.stat or result.metric
    return f"{stat} {symbol} {fmt_value(result.metric, result.limit)} ({result.status})"


def _add_limit(fig: go.Figure, result: ObjectiveResult, top_count: float) -> None:
    colour = STATUS_COLOURS.get(str(result.status), "#555555")
    label = limit_label(result)
    line = {"color": colour, "dash": "dash", "width": 2}
    for col, top in ((1, max(top_count, 1.0)), (2, 100.0)):
        fig.add_trace(
            go.Scatter(
                x=[result.limit, result.limit],
                y=[0.0, top],
                name=label,
                legendgroup=label,
                showlegend=col == 1,
                mode="lines+text",
                text=["", label if col == 1 else ""],
                textposition="bottom right",  # inside the plot, in the histogram's tail
                textfont={"color": colour},
                line=line,
                hovertemplate=f"{label}<extra></extra>",
            ),
            row=1,
            col=col,
        )
    percent = percentile_of(result.stat)
    if percent is not None:  # where the CDF has to pass: left of the limit at this height
        fig.add_trace(
            go.Scatter(
                x=[result.limit],
                y=[percent],
                name=f"{label} target",
                legendgroup=label,
                showlegend=False,
                mode="markers",
                marker={"color": colour, "size": 9, "symbol": "diamond"},
                hovertemplate=f"{label}<extra></extra>",
            ),
            row=1,
            col=2,
        )
