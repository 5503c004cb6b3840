"""Multi-turn sessions: TTFT and E2E latency by turn.

A row of a multi-turn run carries its ``turn`` (1 for a conversation's first request); each
later turn resends a longer history, so its prefill grows and, with a prefix cache, most of
it is served from the cache. The samples are the measured window's successful requests
that have a turn (as the SLA judges them); turns from ``LAST_TURN_GROUP`` on are pooled
("10+") so that a few long conversations do not draw a long tail of one-sample points.
Percentiles are numpy's default (linear), as ``dashboards.windows`` computes them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboards.panel import COLOURS, Panel, style
from dashboards.view import RunView
from dashboards.windows import PERCENTS, grouped_percentiles
from sla.metrics import floats
from sla.reading import Reading

LAST_TURN_GROUP = 10  # turns >= this are pooled as "10+"
_METRICS = (("ttft_ms", "ttft", "TTFT"), ("latency_ms", "latency", "E2E latency"))


def turn_label(group: int) -> str:
    """``"3"``, or ``"10+"`` for the pooled last group."""
    return f"{group}+" if group >= LAST_TURN_GROUP else str(group)


def turn_stats(reading: Reading) -> pd.DataFrame:
    """One row per turn group present, in turn order: ``turn`` (its label), ``n`` (successful
    measured requests), ``ttft_pNN_ms`` and ``latency_pNN_ms`` (NaN without samples, e.g. a
    non-streamed run's TTFT). Empty when no measured successful row has a turn."""
    rows = reading.measured_ok
    turns = floats(rows, "turn")
    has_turn = ~np.isnan(turns)
    columns = ["turn", "n"] + [f"{p}_p{q:g}_ms" for _, p, _ in _METRICS for q in PERCENTS]
    if not has_turn.any():
        return pd.DataFrame({name: [] for name in columns})
    groups = np.minimum(turns[has_turn], LAST_TURN_GROUP).astype(np.int64)
    present = np.unique(groups)
    index = np.searchsorted(present, groups)
    out: dict[str, object] = {
        "turn": [turn_label(int(g)) for g in present],
        "n": np.bincount(index, minlength=len(present)),
    }
    for metric, prefix, _ in _METRICS:
        values = floats(rows, metric)[has_turn]
        table = grouped_percentiles(index, values, len(present), PERCENTS)
        for column, percent in enumerate(PERCENTS):
            out[f"{prefix}_p{percent:g}_ms"] = table[:, column]
    return pd.DataFrame(out, columns=columns)


def turns_panel(view: RunView) -> Panel | None:
    """p50/p90/p99 of TTFT (left) and E2E latency (right) per turn; None when no measured
    successful request has a turn (single-turn traffic, or a run written before turns)."""
    stats = turn_stats(view.reading)
    if stats.empty:
        return None
    title = "TTFT and E2E latency by turn (p50 / p90 / p99)"
    shown = [m for m in _METRICS if np.isfinite(stats[f"{m[1]}_p50_ms"].to_numpy()).any()]
    fig = make_subplots(
        rows=1,
        cols=len(shown),
        horizontal_spacing=0.12,
        subplot_titles=[f"{name} by turn" for _, _, name in shown],
    )
    style(fig, title)
    x = stats["turn"].tolist()
    n = stats["n"].to_numpy()
    for col, (_, prefix, name) in enumerate(shown, start=1):
        for percent in PERCENTS:
            label = f"p{percent:g}"
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=stats[f"{prefix}_{label}_ms"].to_numpy(dtype=np.float64),
                    name=label,
                    legendgroup=label,
                    showlegend=col == 1,
                    mode="lines+markers",
                    line={"color": COLOURS[label]},
                    customdata=n,
                    hovertemplate=(
                        f"turn %{{x}}: {name} {label} %{{y:.4g}} ms (n=%{{customdata}})"
                        "<extra></extra>"
                    ),
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text="turn (count)", type="category", row=1, col=col)
        fig.update_yaxes(title_text=f"{name} (ms)", rangemode="tozero", row=1, col=col)
    fig.update_layout(hovermode="closest")
    note = (
        f"Measured window, successful requests that belong to a conversation "
        f"(n={int(n.sum()):,}); turns from {LAST_TURN_GROUP} on are pooled as "
        f"{turn_label(LAST_TURN_GROUP)}. The report's turn table gives the exact values."
    )
    return Panel("turns", title, fig, note)
