"""Failed requests: counts by error class, and by HTTP status over time.

A failure is a row that is not ``ok`` (``sla.metrics.ok_mask``); it is counted under its
error class (``sla.files.error_class``: a closed vocabulary, so a run with a million
distinct error texts still draws a handful of bars; the report's table gives each class's
most frequent message). Requests cancelled by the end of the test are not failures of the
target and are left out (the note says how many). Statuses beyond the most frequent are
pooled as "other".
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboards.panel import (
    TIME_AXIS_TITLE,
    Panel,
    mark_timeline,
    safe_label,
    style,
    timeline_note,
)
from dashboards.timeseries import midpoints_s
from dashboards.view import RunView
from sla.files.error_class import CLIENT_ERROR

TOP_STATUSES = 6
_STATUS_COLOURS = ("#CC3311", "#EE7733", "#E69F00", "#AA3377", "#882255", "#332288", "#999999")


def class_counts(failed: pd.DataFrame) -> pd.Series:
    """Failed rows by error class, largest first (ties by name)."""
    classes = failed["error_class"].astype(object).fillna(CLIENT_ERROR)
    counts = classes.value_counts()
    order = sorted(counts.index, key=lambda name: (-int(counts[name]), str(name)))
    return counts[order]


def status_label(status: int) -> str:
    return "no response" if status == 0 else f"HTTP {status}"


def errors_panel(view: RunView, stats: pd.DataFrame) -> Panel | None:
    """Bars of failures by reason (left) and failures per window by status (right, stacked);
    None when nothing failed."""
    rows = view.rows
    not_ok = ~rows["ok"].to_numpy(dtype=bool)
    failed = rows[["start", "status", "error_class"]][not_ok & ~view.reading.cancelled]
    if failed.empty or stats.empty:
        return None
    title = f"Errors ({len(failed):,} failed requests)"
    fig = make_subplots(rows=1, cols=2, column_widths=[0.4, 0.6], horizontal_spacing=0.12)
    style(fig, title, height_px=420)
    counts = class_counts(failed)
    fig.add_trace(
        go.Bar(
            x=counts.to_numpy(),
            y=[safe_label(str(name), 60) for name in counts.index],
            orientation="h",
            marker={"color": "#CC3311"},
            name="by class",
            showlegend=False,
            hovertemplate="%{y}: %{x}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    _add_status_bars(fig, view, failed, stats)
    fig.update_xaxes(title_text="failed requests (count)", row=1, col=1)
    fig.update_yaxes(title_text="error class", type="category", autorange="reversed", row=1, col=1)
    fig.update_xaxes(title_text=TIME_AXIS_TITLE, row=1, col=2)
    fig.update_yaxes(title_text="failed requests per window (count)", row=1, col=2)
    fig.update_layout(barmode="stack", hovermode="closest")
    mark_timeline(fig, view.timeline, row=1, col=2)
    note = (
        "Whole run, by error class (the report's error table gives each class's most "
        f"frequent message). {timeline_note(view.timeline)}"
    )
    if n_cancelled := int(view.reading.cancelled.sum()):
        note += f" {n_cancelled:,} requests cancelled by the end of the test are not shown."
    return Panel("errors", title, fig, note)


def _add_status_bars(
    fig: go.Figure, view: RunView, failed: pd.DataFrame, stats: pd.DataFrame
) -> None:
    timeline = view.timeline
    # The window of each failure exactly as window_stats numbers them.
    first = round(float(stats["start_s"].iloc[0]) / timeline.window_s)
    t = failed["start"].to_numpy(dtype=np.float64) - timeline.origin
    finite = np.isfinite(t)
    index = np.floor(t[finite] / timeline.window_s).astype(np.int64) - first
    index = np.clip(index, 0, len(stats) - 1)
    status = failed["status"].to_numpy(dtype=np.int64)[finite]
    ranked = pd.Series(status).value_counts().index.to_numpy()
    top = ranked[:TOP_STATUSES]
    x = midpoints_s(stats)
    for i, code in enumerate(top):
        per_window = np.bincount(index[status == code], minlength=len(stats))
        _status_trace(fig, x, per_window, status_label(int(code)), _STATUS_COLOURS[i])
    rest = ~np.isin(status, top)
    if rest.any():
        per_window = np.bincount(index[rest], minlength=len(stats))
        _status_trace(fig, x, per_window, "other statuses", _STATUS_COLOURS[-1])


def _status_trace(fig: go.Figure, x: np.ndarray, y: np.ndarray, name: str, colour: str) -> None:
    fig.add_trace(
        go.Bar(x=x, y=y, name=name, marker={"color": colour, "line": {"width": 0}}),
        row=1,
        col=2,
    )
