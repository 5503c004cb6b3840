"""The prefix cache's hit rate over time: as the client saw it, and as the server counts it.

Client side: per window (requests placed by their start, as every time-axis figure places
them), ``sum(cached_tokens) / sum(input_tokens)`` of the successful requests whose answer
reported ``cached_tokens`` (``usage.prompt_tokens_details.cached_tokens``); the whole run is
drawn, the warm-up shaded, because that is where a cache fills. The note gives the same
ratio over the measured window's successful requests (``Reading.measured_ok``).

Server side, when its ``/metrics`` were scraped: the increase of its prefix-cache hit
counter over the increase of its query counter between scrapes (both in tokens), from the
first family found of ``PREFIX_CACHE_SERIES``: the reference server's
``slabench_prefix_cache_{hit,query}_tokens_total`` (or ``slabench_prefix_cache_{hits,queries}``),
vLLM's ``vllm:prefix_cache_{hits,queries}_total`` (any of them without ``_total``), or
vLLM v0's ``vllm:gpu_prefix_cache_hit_rate`` gauge (a fraction).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboards.panel import (
    COLOURS,
    TIME_AXIS_TITLE,
    Panel,
    mark_timeline,
    new_figure,
    timeline_note,
)
from dashboards.server import ServerSeries, found_series
from dashboards.view import RunView
from sla.metrics import FloatArray, floats

# Counters of prompt tokens: hits (found in the cache) and queries (looked up), with and
# without the ``_total`` a client library appends to a counter's samples.
_COUNTER_PAIRS = tuple(
    (f"{hits}{suffix}", f"{queries}{suffix}")
    for hits, queries in (
        ("slabench_prefix_cache_hit_tokens", "slabench_prefix_cache_query_tokens"),
        ("slabench_prefix_cache_hits", "slabench_prefix_cache_queries"),
        ("vllm:prefix_cache_hits", "vllm:prefix_cache_queries"),
    )
    for suffix in ("_total", "")
)
PREFIX_CACHE_SERIES = (
    ServerSeries(
        "prefix_cache_hit_rate",
        "prefix-cache hit rate (%)",
        "hit_ratio",
        tuple(hits for hits, _ in _COUNTER_PAIRS),
        tuple(queries for _, queries in _COUNTER_PAIRS),
    ),
    ServerSeries(
        "prefix_cache_hit_rate",
        "prefix-cache hit rate (%)",
        "fraction",
        ("vllm:gpu_prefix_cache_hit_rate",),
    ),
)


@dataclass(frozen=True, slots=True)
class ServerHitRate:
    """The server's own hit rate: the metric it came from, scrape time (epoch s), value in %."""

    metric: str
    t: FloatArray
    percent: FloatArray
    how: str  # how the value was derived, for the note


def _reporting(rows: pd.DataFrame) -> tuple[FloatArray, FloatArray, np.ndarray]:
    """``(cached_tokens, input_tokens, mask)``: the successful rows that reported both."""
    cached, prompt = floats(rows, "cached_tokens"), floats(rows, "input_tokens")
    ok = rows["ok"].to_numpy(dtype=bool)
    return cached, prompt, ok & np.isfinite(cached) & np.isfinite(prompt) & (prompt > 0)


def measured_hit_rate(view: RunView) -> tuple[float, int]:
    """``(hit rate in %, requests)`` over the measured window's successful requests that
    reported ``cached_tokens``; ``(nan, 0)`` when none did."""
    cached, prompt, keep = _reporting(view.measured_ok)
    if not keep.any():
        return float("nan"), 0
    return float(cached[keep].sum() / prompt[keep].sum() * 100.0), int(keep.sum())


def client_hit_rate(view: RunView) -> pd.DataFrame:
    """One row per window that has a reporting request: ``start_s``, ``end_s`` (seconds since
    the run start), ``n``, ``cached_tokens``, ``input_tokens`` (sums) and ``hit_rate_pct``.
    Cancelled requests are not successful, so they are never counted."""
    rows = view.rows
    cached, prompt, keep = _reporting(rows)
    t = rows["start"].to_numpy(dtype=np.float64)
    keep &= np.isfinite(t)
    columns = ["start_s", "end_s", "n", "cached_tokens", "input_tokens", "hit_rate_pct"]
    if not keep.any():
        return pd.DataFrame({name: [] for name in columns})
    window_s = view.timeline.window_s
    index = np.floor((t[keep] - view.timeline.origin) / window_s).astype(np.int64)
    present, at = np.unique(index, return_inverse=True)
    cached_sum = np.bincount(at, weights=cached[keep], minlength=len(present))
    prompt_sum = np.bincount(at, weights=prompt[keep], minlength=len(present))
    return pd.DataFrame(
        {
            "start_s": present * window_s,
            "end_s": (present + 1) * window_s,
            "n": np.bincount(at, minlength=len(present)),
            "cached_tokens": cached_sum,
            "input_tokens": prompt_sum,
            "hit_rate_pct": cached_sum / prompt_sum * 100.0,
        },
        columns=columns,
    )


def server_hit_rate(samples: pd.DataFrame | None) -> ServerHitRate | None:
    """The server's hit rate from the first ``PREFIX_CACHE_SERIES`` scraped; None when none
    was, or when its query counter never grew."""
    for series, metric, t, value in found_series(samples, PREFIX_CACHE_SERIES):
        if np.isfinite(value).any():
            how = "hits / queries between scrapes" if series.kind == "hit_ratio" else "scraped"
            return ServerHitRate(metric, t, value, how)
    return None


def cache_panel(view: RunView) -> Panel | None:
    """The client's and the server's hit rate per window; None when neither is known."""
    client = client_hit_rate(view)
    server = server_hit_rate(view.reading.run.server_metrics)
    if client.empty and server is None:
        return None
    timeline = view.timeline
    title = "Prefix-cache hit rate over time"
    fig = new_figure(title, x_title=TIME_AXIS_TITLE, y_title="prefix-cache hit rate (%)")
    notes = []
    if not client.empty:
        fig.add_trace(
            go.Scatter(
                x=((client["start_s"] + client["end_s"]) / 2.0).to_numpy(),
                y=client["hit_rate_pct"].to_numpy(),
                name="cached / input tokens (client)",
                mode="lines+markers",
                marker={"size": 4},
                line={"color": COLOURS["p50"]},
                customdata=client["n"].to_numpy(),
                hovertemplate="%{y:.3g}% (n=%{customdata})<extra></extra>",
            )
        )
        percent, n = measured_hit_rate(view)
        overall = f"{percent:.1f}% over the measured window (n={n:,})" if n else "none measured"
        notes.append(
            "Client: sum of cached_tokens / sum of input_tokens of the successful requests "
            f"that reported cached_tokens, {overall}."
        )
    if server is not None:
        fig.add_trace(
            go.Scatter(
                x=server.t - timeline.origin,
                y=server.percent,
                name=f"{server.metric} (server)",
                mode="lines",
                line={"color": COLOURS["p99"], "width": 1.5},
                hovertemplate="%{y:.3g}%<extra></extra>",
            )
        )
        notes.append(f"Server: {server.metric} as {server.how}.")
    fig.update_yaxes(range=[0, 105])
    mark_timeline(fig, timeline)
    return Panel("prefix_cache", title, fig, " ".join([*notes, timeline_note(timeline)]))
