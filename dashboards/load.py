"""Latency against what drives it: TTFT against input length, latency against throughput.

Both use the measured window's successful requests. TTFT is summarised per input-length
bin (median and p90); the scatter behind it is a fixed-seed sample of at most
``SCATTER_CAP`` requests. Latency against throughput takes one point per load level of a
shaped run (``dashboards.levels``): the requests that started while that many users ran,
their rate over that time and their latency percentiles.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboards.levels import Level, load_levels
from dashboards.panel import COLOURS, Panel, new_figure
from dashboards.view import RunView
from dashboards.windows import PERCENTS, grouped_percentiles
from sla.metrics import FloatArray

SCATTER_CAP = 2000
MAX_BINS = 40
MIN_REQUESTS_PER_LEVEL = 10  # fewer gives a p99 that is just the largest value


def input_length_bins(tokens: FloatArray) -> tuple[FloatArray, np.ndarray]:
    """``(representative input length per bin, bin index per request)``: one bin per distinct
    length when there are at most ``MAX_BINS``, else equal-count bins (their median length)."""
    distinct = np.unique(tokens)
    if len(distinct) <= MAX_BINS:
        return distinct, np.searchsorted(distinct, tokens)
    edges = np.unique(np.quantile(tokens, np.linspace(0.0, 1.0, MAX_BINS + 1)))
    index = np.clip(np.searchsorted(edges, tokens, side="right") - 1, 0, len(edges) - 2)
    counts = np.bincount(index, minlength=len(edges) - 1)
    medians = grouped_percentiles(index, tokens, len(edges) - 1, (50.0,))[:, 0]
    return medians[counts > 0], np.cumsum(counts > 0)[index] - 1


def ttft_vs_input(view: RunView) -> Panel | None:
    """Median and p90 TTFT per input-length bin over a capped scatter; None without TTFT and
    input lengths, or when every request had the same input length."""
    rows = view.measured_ok
    ttft = rows["ttft_ms"].to_numpy(dtype=np.float64)
    tokens = pd.to_numeric(rows["input_tokens"]).to_numpy(np.float64, na_value=np.nan)
    keep = np.isfinite(ttft) & np.isfinite(tokens)
    ttft, tokens = ttft[keep], tokens[keep]
    if len(np.unique(tokens)) < 2:
        return None
    title = "TTFT against input length"
    fig = new_figure(title, x_title="input length (tokens)", y_title="TTFT (ms)")
    sample = np.arange(len(ttft))
    if len(sample) > SCATTER_CAP:
        sample = np.sort(np.random.default_rng(0).choice(len(ttft), SCATTER_CAP, replace=False))
    fig.add_trace(
        go.Scatter(
            x=tokens[sample],
            y=ttft[sample],
            mode="markers",
            name=f"requests (sample of {len(sample):,})",
            marker={"color": "#999999", "size": 4, "opacity": 0.35},
        )
    )
    centres, index = input_length_bins(tokens)
    table = grouped_percentiles(index, ttft, len(centres), (50.0, 90.0))
    for column, name in ((0, "p50"), (1, "p90")):
        fig.add_trace(
            go.Scatter(
                x=centres,
                y=table[:, column],
                mode="lines+markers",
                name=f"{name} per input length",
                line={"color": COLOURS[name]},
            )
        )
    fig.update_layout(hovermode="closest")
    note = f"Measured window, successful streamed requests (n={len(ttft):,})."
    if len(ttft) > SCATTER_CAP:
        note += f" Dots: a fixed-seed sample of {SCATTER_CAP:,}; lines: every request."
    return Panel("ttft_vs_input_tokens", title, fig, note)


def level_points(view: RunView, levels: tuple[Level, ...]) -> pd.DataFrame:
    """One row per distinct user count: ``users``, ``duration_s`` of the measured window at
    that count, ``n_ok``, ``requests_per_s`` and ``latency_pNN_ms``."""
    rows = view.measured_ok
    t = rows["start"].to_numpy(dtype=np.float64) - view.timeline.origin
    lo, hi = view.timeline.measured_start_s, view.timeline.end_s
    spans: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for level in levels:
        start, end = max(level.start_s, lo), min(level.end_s, hi)
        if end > start:
            spans[level.users].append((start, end))
    users = sorted(spans)
    if not users:
        columns = ["users", "duration_s", "n_ok", "requests_per_s"]
        return pd.DataFrame(columns=columns + [f"latency_p{p:g}_ms" for p in PERCENTS])
    # The spans do not overlap: find each start's span by a search over their sorted starts.
    flat = sorted((s, e, g) for g, u in enumerate(users) for s, e in spans[u])
    span_start = np.array([s for s, _, _ in flat], dtype=np.float64)
    span_end = np.array([e for _, e, _ in flat], dtype=np.float64)
    span_group = np.array([g for _, _, g in flat], dtype=np.int64)
    at = np.searchsorted(span_start, t, side="right") - 1
    inside = (at >= 0) & (t < span_end[np.maximum(at, 0)])
    group = np.where(inside, span_group[np.maximum(at, 0)], -1)
    latency = rows["latency_ms"].to_numpy(dtype=np.float64)[inside]
    table = grouped_percentiles(group[inside], latency, len(users), PERCENTS)
    n_ok = np.bincount(group[inside], minlength=len(users))
    duration = np.array([sum(e - s for s, e in spans[u]) for u in users], dtype=np.float64)
    out = pd.DataFrame(
        {"users": users, "duration_s": duration, "n_ok": n_ok, "requests_per_s": n_ok / duration}
    )
    for column, percent in enumerate(PERCENTS):
        out[f"latency_p{percent:g}_ms"] = table[:, column]
    return out


def latency_vs_throughput(view: RunView) -> Panel | None:
    """Latency percentiles against achieved throughput, one point per load level; None for a
    run with fewer than two levels that have enough requests."""
    levels = load_levels(view.load_profile())
    if len({level.users for level in levels}) < 2:
        return None
    points = level_points(view, levels)
    points = points[points["n_ok"] >= MIN_REQUESTS_PER_LEVEL]
    if len(points) < 2:
        return None
    title = "Latency against throughput (one point per load level)"
    fig = new_figure(
        title, x_title="throughput (successful requests/s)", y_title="E2E latency (ms)"
    )
    text = [f"{u} users" for u in points["users"]]
    for percent in PERCENTS:
        name = f"p{percent:g}"
        fig.add_trace(
            go.Scatter(
                x=points["requests_per_s"].to_numpy(),
                y=points[f"latency_{name}_ms"].to_numpy(),
                mode="lines+markers+text" if name == "p99" else "lines+markers",
                text=text if name == "p99" else None,
                textposition="top left",
                name=name,
                line={"color": COLOURS[name]},
                customdata=np.column_stack((points["users"], points["n_ok"])),
                hovertemplate=(
                    f"{name} %{{y:.4g}} ms at %{{x:.4g}} req/s "
                    "(%{customdata[0]} users, n=%{customdata[1]})<extra></extra>"
                ),
            )
        )
    fig.update_layout(hovermode="closest")
    note = (
        "Per user count of the load shape: requests that started while it ran (measured "
        "window, successful), their rate over that time and their E2E latency percentiles."
    )
    return Panel("latency_vs_throughput", title, fig, note)
