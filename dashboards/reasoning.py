"""Reasoning against output time, for models that think before they answer.

A reasoning model streams reasoning tokens first (``delta.reasoning`` or
``delta.reasoning_content``) and its visible answer after: ``first_token_at`` is the first
token of either kind, ``first_output_at`` the first non-empty visible text. For each
measured successful request whose first output came after its first token:

- reasoning time = ``first_output_at - first_token_at``;
- output time = ``done_at - first_output_at``.

Their p50/p90/p99 are drawn side by side (each percentile of its own distribution: the
p99s need not come from the same request, so they are not stacked), with their CDFs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboards.distributions import cdf_points
from dashboards.panel import COLOURS, Panel, style
from dashboards.view import RunView
from dashboards.windows import PERCENTS
from sla.metrics import FloatArray, floats

_PARTS = (("reasoning", COLOURS["p90"]), ("output", COLOURS["p50"]))


@dataclass(frozen=True, slots=True)
class ReasoningTimes:
    """Per reasoning request (same order): its reasoning and output time in ms; ``of`` the
    successful measured requests considered."""

    reasoning_ms: FloatArray
    output_ms: FloatArray
    of: int

    def percentiles(self, part: str) -> FloatArray:
        """p50/p90/p99 (numpy's linear percentiles) of ``part`` (``reasoning``/``output``)."""
        values = self.reasoning_ms if part == "reasoning" else self.output_ms
        return np.percentile(values, PERCENTS)


def reasoning_times(view: RunView) -> ReasoningTimes:
    """The reasoning and output time of each measured successful request that reasoned
    (``first_output_at`` later than ``first_token_at``, both known, and ``done_at`` known)."""
    rows = view.measured_ok
    first, done = floats(rows, "first_token_at"), floats(rows, "done_at")
    output = floats(rows, "first_output_at")
    with np.errstate(invalid="ignore"):
        keep = (output > first) & np.isfinite(first) & np.isfinite(done) & (done >= output)
    return ReasoningTimes(
        (output[keep] - first[keep]) * 1000.0, (done[keep] - output[keep]) * 1000.0, len(rows)
    )


def reasoning_panel(view: RunView) -> Panel | None:
    """Percentiles (left) and CDFs (right) of reasoning and output time; None when no
    measured successful request reasoned."""
    times = reasoning_times(view)
    n = len(times.reasoning_ms)
    if not n:
        return None
    title = f"Reasoning against output time (n={n:,})"
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12)
    style(fig, title)
    labels = [f"p{p:g}" for p in PERCENTS]
    for part, colour in _PARTS:
        values = times.reasoning_ms if part == "reasoning" else times.output_ms
        fig.add_trace(
            go.Bar(
                x=labels,
                y=times.percentiles(part),
                name=f"{part} time",
                legendgroup=part,
                marker={"color": colour},
                hovertemplate=f"{part} %{{x}}: %{{y:.4g}} ms<extra></extra>",
            ),
            row=1,
            col=1,
        )
        x, percent = cdf_points(values)
        fig.add_trace(
            go.Scatter(
                x=np.maximum(x, 1e-3),  # a log axis: a zero output time drawn at 1 µs
                y=percent,
                name=f"{part} time CDF",
                legendgroup=part,
                showlegend=False,
                mode="lines",
                line={"color": colour},
                hovertemplate=f"{part} p%{{y:.4g}}: %{{x:.4g}} ms<extra></extra>",
            ),
            row=1,
            col=2,
        )
    fig.update_xaxes(title_text="percentile (of each distribution)", type="category", row=1, col=1)
    fig.update_yaxes(title_text="time (ms)", rangemode="tozero", row=1, col=1)
    fig.update_xaxes(title_text="time (ms, log scale)", type="log", row=1, col=2)
    fig.update_yaxes(title_text="percentile (%)", range=[0, 100.5], row=1, col=2)
    fig.update_layout(barmode="group", hovermode="closest")
    note = (
        "Measured window, successful requests whose first visible output came after their "
        f"first token ({n:,} of {times.of:,}): reasoning = first token to first output, "
        "output = first output to the end."
    )
    return Panel("reasoning", title, fig, note)
