"""Figures over the run's time axis: latency percentile bands, throughput, requests in flight.

Each is drawn from the per-window points of ``dashboards.windows`` (one point per window,
at its midpoint), so a run of a million requests is still a few hundred points per line.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboards.levels import constant_users, load_levels
from dashboards.panel import (
    COLOURS,
    TIME_AXIS_TITLE,
    Panel,
    fmt_seconds,
    mark_timeline,
    new_figure,
    style,
    timeline_note,
)
from dashboards.view import RunView, Timeline
from dashboards.windows import PERCENTS, inflight_per_window, inflight_steps

_BAND_FILL = {"p90": "rgba(230, 159, 0, 0.15)", "p99": "rgba(213, 94, 0, 0.12)"}


def midpoints_s(stats: pd.DataFrame) -> np.ndarray:
    """The x of each window's point: its midpoint, in seconds since the run start."""
    return ((stats["start_s"] + stats["end_s"]) / 2.0).to_numpy(dtype=np.float64)


def percentile_bands(
    stats: pd.DataFrame, timeline: Timeline, *, prefix: str, key: str, what: str
) -> Panel | None:
    """p50/p90/p99 of ``{prefix}_pNN_ms`` per window, the band between them shaded; None when
    no window has a value (no successful request, or no streamed one for TTFT)."""
    columns = [f"{prefix}_p{p:g}_ms" for p in PERCENTS]
    if stats.empty or not np.isfinite(stats[columns].to_numpy()).any():
        return None
    title = f"{what} over time (p50 / p90 / p99 per window)"
    fig = new_figure(title, x_title=TIME_AXIS_TITLE, y_title=f"{what} (ms)")
    x = midpoints_s(stats)
    for percent, column in zip(PERCENTS, columns, strict=True):
        name = f"p{percent:g}"
        fig.add_trace(
            go.Scatter(
                x=x,
                y=stats[column].to_numpy(dtype=np.float64),
                name=name,
                mode="lines",
                line={"color": COLOURS[name], "width": 1.5},
                fill="tonexty" if name in _BAND_FILL else None,
                fillcolor=_BAND_FILL.get(name),
                customdata=stats["n_ok"].to_numpy(),
                hovertemplate=f"{name} %{{y:.4g}} ms (n=%{{customdata}})<extra></extra>",
            )
        )
    mark_timeline(fig, timeline)
    note = f"Successful requests only. {timeline_note(timeline)}"
    return Panel(key, title, fig, note)


def throughput_over_time(stats: pd.DataFrame, view: RunView) -> Panel | None:
    """Successful requests/s, errors/s and output tokens/s (right axis) per window."""
    if stats.empty:
        return None
    title = "Throughput over time"
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    style(fig, title)
    x = midpoints_s(stats)
    for column, name, colour in (
        ("requests_per_s", "requests/s (successful)", COLOURS["ok"]),
        ("errors_per_s", "errors/s", COLOURS["error"]),
    ):
        fig.add_trace(
            go.Scatter(x=x, y=stats[column].to_numpy(), name=name, line={"color": colour}),
            secondary_y=False,
        )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=stats["output_tokens_per_s"].to_numpy(),
            name="output tokens/s",
            line={"color": COLOURS["tokens"], "dash": "dot"},
        ),
        secondary_y=True,
    )
    rate = view.load_profile().get("arrival_rate_rps")
    if isinstance(rate, int | float) and not isinstance(rate, bool) and rate > 0:
        fig.add_trace(
            go.Scatter(
                x=[0.0, view.timeline.end_s],
                y=[float(rate), float(rate)],
                name="target arrival rate (requests/s)",
                mode="lines",
                line={"color": COLOURS["users"], "dash": "dash", "width": 1},
            ),
            secondary_y=False,
        )
    fig.update_xaxes(title_text=TIME_AXIS_TITLE)
    fig.update_yaxes(title_text="rate (requests/s)", secondary_y=False, rangemode="tozero")
    fig.update_yaxes(title_text="output tokens (tokens/s)", secondary_y=True, rangemode="tozero")
    mark_timeline(fig, view.timeline)
    note = f"Rates of the requests that started in each window. {timeline_note(view.timeline)}"
    return Panel("throughput_over_time", title, fig, note)


def inflight_over_time(stats: pd.DataFrame, view: RunView) -> Panel | None:
    """Requests in flight (time-averaged and largest per window), with the configured users
    of a closed-loop run; None when no request was sent."""
    rows = view.rows
    sent = rows["sent_at"].to_numpy(dtype=np.float64)
    was_sent = ~np.isnan(sent)  # a dropped open-loop send was never in flight
    starts = rows["start"].to_numpy(dtype=np.float64)[was_sent]
    ends = rows["done_at"].to_numpy(dtype=np.float64)[was_sent]
    steps = inflight_steps(starts, ends)
    if stats.empty or not len(steps.times):
        return None
    timeline = view.timeline
    # The windows of `stats`, continued to the run's end: requests stay in flight after the
    # last one starts. (1e-9: a run of exactly k windows is not given a k + 1st.)
    first_s, window_s = float(stats["start_s"].iloc[0]), timeline.window_s
    count = max(len(stats), math.ceil((timeline.end_s - first_s) / window_s - 1e-9))
    edges_s = first_s + window_s * np.arange(count + 1, dtype=np.float64)
    mean, largest = inflight_per_window(steps, edges_s + timeline.origin)
    title = "Requests in flight over time"
    fig = new_figure(title, x_title=TIME_AXIS_TITLE, y_title="requests in flight, users (count)")
    x = (edges_s[:-1] + edges_s[1:]) / 2.0
    fig.add_trace(go.Scatter(x=x, y=mean, name="in flight (mean)", line={"color": COLOURS["p50"]}))
    fig.add_trace(
        go.Scatter(
            x=x,
            y=largest,
            name="in flight (max)",
            line={"color": COLOURS["p50"], "width": 1, "dash": "dot"},
        )
    )
    _add_users(fig, view)
    fig.update_yaxes(rangemode="tozero")
    mark_timeline(fig, timeline)
    note = (
        f"From each request's start to its completion; mean and max per "
        f"{fmt_seconds(timeline.window_s)} window. {timeline_note(timeline)}"
    )
    return Panel("inflight_over_time", title, fig, note)


def _add_users(fig: go.Figure, view: RunView) -> None:
    profile = view.load_profile()
    levels = load_levels(profile)
    if levels:
        x = [t for level in levels for t in (level.start_s, level.end_s)]
        y = [level.users for level in levels for _ in range(2)]
    elif (users := constant_users(profile)) is not None:
        x, y = [0.0, view.timeline.end_s], [users, users]
    else:
        return
    fig.add_trace(
        go.Scatter(
            x=x,
            y=y,
            name="users (load profile)",
            mode="lines",
            line={"color": COLOURS["users"], "dash": "dash", "width": 1, "shape": "hv"},
        )
    )
