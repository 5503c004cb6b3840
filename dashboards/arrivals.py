"""Offered against achieved arrivals of an open-loop run (a rate, sessions, a trace replay).

An open-loop run sends on a schedule (``scheduled_at``) whatever the server does. Three
curves show whether the schedule was kept: requests scheduled per window (the offered load),
sent per window (``sent_at``: a generator that falls behind sends later than scheduled, and a
dropped send never), and completed per window (``done_at``: a server that falls behind
completes fewer than are sent). Each request is counted in the window of its own event;
the lower row gives the same counts cumulated at each window's end, where a gap that opens
between the curves is the backlog. Requests cancelled by the end of the test were
scheduled and sent but never completed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboards.panel import (
    COLOURS,
    TIME_AXIS_TITLE,
    Panel,
    mark_timeline,
    style,
    timeline_note,
)
from dashboards.view import RunView
from sla.metrics import FloatArray, floats

_CURVES = (
    ("scheduled", "scheduled (offered)", COLOURS["users"], "dash"),
    ("sent", "sent", COLOURS["p50"], "solid"),
    ("completed", "completed", COLOURS["ok"], "solid"),
)


@dataclass(frozen=True, slots=True)
class ArrivalCurves:
    """Counts per window: ``edges_s`` (seconds since the run start, one more than the
    counts) and, per curve, the requests whose event fell in each window."""

    edges_s: FloatArray
    scheduled: FloatArray
    sent: FloatArray
    completed: FloatArray

    def per_s(self, curve: str) -> FloatArray:
        counts: FloatArray = getattr(self, curve)
        return counts / np.diff(self.edges_s)

    def cumulative(self, curve: str) -> FloatArray:
        counts: FloatArray = getattr(self, curve)
        return np.cumsum(counts)


def arrival_curves(view: RunView) -> ArrivalCurves | None:
    """The three curves on the run's windows; None for a run without a schedule (closed
    loop, or written before open loop)."""
    rows = view.rows
    scheduled = floats(rows, "scheduled_at")
    scheduled = scheduled[np.isfinite(scheduled)]
    if not len(scheduled):
        return None
    sent = floats(rows, "sent_at")
    sent = sent[np.isfinite(sent)]
    done = floats(rows, "done_at")
    done = done[np.isfinite(done) & ~view.reading.cancelled]
    timeline = view.timeline
    times = np.concatenate((scheduled, sent, done)) - timeline.origin
    # Beyond the run's own windows by at most as many again: a stray timestamp (a clock
    # step on a worker) must not make millions of empty windows; what lies further is not drawn.
    n = timeline.n_windows
    first = max(min(0, math.floor(times.min() / timeline.window_s)), -n)
    last = min(max(n, math.floor(times.max() / timeline.window_s) + 1), 2 * n)
    edges_s = np.arange(first, last + 1, dtype=np.float64) * timeline.window_s
    edges = edges_s + timeline.origin

    def count(values: FloatArray) -> FloatArray:
        return np.histogram(values, bins=edges)[0].astype(np.float64)

    return ArrivalCurves(edges_s, count(scheduled), count(sent), count(done))


def arrivals_panel(view: RunView) -> Panel | None:
    """Per-window rates (top) and cumulative counts (bottom) of scheduled, sent and
    completed requests; None for a run without a schedule."""
    curves = arrival_curves(view)
    if curves is None:
        return None
    timeline = view.timeline
    title = "Offered against achieved arrivals (open loop)"
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.1,
        subplot_titles=["per window", "cumulative"],
    )
    style(fig, title, height_px=560)
    x = (curves.edges_s[:-1] + curves.edges_s[1:]) / 2.0
    for curve, name, colour, dash in _CURVES:
        line = {"color": colour, "dash": dash, "width": 1.5}
        fig.add_trace(
            go.Scatter(x=x, y=curves.per_s(curve), name=name, legendgroup=curve, line=line),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=curves.edges_s[1:],
                y=curves.cumulative(curve),
                name=f"{name} (cumulative)",
                legendgroup=curve,
                showlegend=False,
                line=line,
            ),
            row=2,
            col=1,
        )
    fig.update_yaxes(title_text="rate (requests/s)", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="requests (count)", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text=TIME_AXIS_TITLE, row=2, col=1)
    mark_timeline(fig, timeline, row="all", col=1)
    total = {curve: int(getattr(curves, curve).sum()) for curve, _, _, _ in _CURVES}
    note = (
        f"{total['scheduled']:,} scheduled, {total['sent']:,} sent, {total['completed']:,} "
        f"completed (whole run). "
        f"{timeline_note(timeline, by='the time of each event (schedule, send, completion)')}"
    )
    return Panel("arrivals", title, fig, note)
