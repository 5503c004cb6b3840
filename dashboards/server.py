"""Server-side metrics scraped during the run, on the client's time axis.

``server_metrics.parquet`` holds one row per Prometheus sample per scrape: ``scraped_at``
(epoch s), ``name``, ``labels`` (JSON) and ``value``. Each series of ``SERVER_SERIES`` is
drawn from the first of its metric names the target exposes (the reference server's
``slabench_*``, vLLM's ``vllm:*``, TGI's and SGLang's), summed over label sets (all queues,
all models):

- gauges as scraped;
- counters as a rate: the increase between consecutive scrapes over their interval, per
  label set (a drop is a counter reset: the new value is the increase), then summed;
- histograms as the mean observation between scrapes: increase of ``_sum`` over increase of
  ``_count`` (the batch size of the batches run in that interval);
- a pair of counters (hits and queries) as the ratio of their increases between scrapes,
  in % (a prefix cache's hit rate; ``dashboards.cache`` draws it).

The top row repeats the client's E2E latency per window, and every row shares its x axis
(seconds since the run start), so a queue building up sits above the latency it causes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboards.panel import COLOURS, TIME_AXIS_TITLE, Panel, mark_timeline, style, timeline_note
from dashboards.timeseries import midpoints_s
from dashboards.view import Timeline
from sla.metrics import FloatArray

Kind = Literal["gauge", "fraction", "rate", "histogram_mean", "hit_ratio"]


@dataclass(frozen=True, slots=True)
class ServerSeries:
    key: str
    y_title: str  # with its unit
    kind: Kind
    names: tuple[str, ...]  # candidates, first found wins; a histogram's base name
    per: tuple[str, ...] = ()  # hit_ratio: the denominator counter of each of ``names``


_HOW: dict[str, str] = {
    "gauge": "as scraped",
    "fraction": "as scraped, in %",
    "rate": "rate between scrapes",
    "histogram_mean": "mean between scrapes",
    "hit_ratio": "hits / queries between scrapes, in %",
}

SERVER_SERIES = (
    ServerSeries(
        "queue_depth",
        "queue depth (requests)",
        "gauge",
        ("slabench_queue_depth", "tgi_queue_size", "sglang:num_queue_reqs"),
    ),
    ServerSeries("batch_size", "mean batch (requests)", "histogram_mean", ("slabench_batch_size",)),
    ServerSeries(
        "running",
        "running (sequences)",
        "gauge",
        ("slabench_running_sequences", "vllm:num_requests_running", "sglang:num_running_reqs"),
    ),
    ServerSeries(
        "waiting",
        "waiting (sequences)",
        "gauge",
        ("slabench_waiting_sequences", "vllm:num_requests_waiting"),
    ),
    ServerSeries(
        "generation_tokens",
        "generated (tokens/s)",
        "rate",
        ("slabench_generation_tokens_total", "vllm:generation_tokens_total"),
    ),
    ServerSeries(
        "kv_cache",
        "KV cache used (%)",
        "fraction",
        ("vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc"),
    ),
)


def _wide(samples: pd.DataFrame, name: str) -> pd.DataFrame:
    """One column per label set, one row per scrape time (sorted)."""
    rows = samples[samples["name"] == name]
    return rows.pivot_table(index="scraped_at", columns="labels", values="value", aggfunc="last")


def gauge(samples: pd.DataFrame, name: str) -> tuple[FloatArray, FloatArray]:
    """``(scraped_at, value summed over label sets)`` of a gauge."""
    wide = _wide(samples, name)
    return wide.index.to_numpy(dtype=np.float64), wide.sum(axis=1, min_count=1).to_numpy()


def counter_increase(samples: pd.DataFrame, name: str) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``(interval midpoints, interval lengths in s, increase over each interval)`` of a
    counter, summed over label sets; a value lower than the previous one is a reset, so the
    whole new value counts as the increase."""
    wide = _wide(samples, name).ffill()
    values = wide.to_numpy(dtype=np.float64)
    times = wide.index.to_numpy(dtype=np.float64)
    if len(times) < 2:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    step = np.diff(values, axis=0)
    step = np.where(step < 0, values[1:], step)
    return (times[1:] + times[:-1]) / 2.0, np.diff(times), np.nansum(step, axis=1)


def series_values(
    samples: pd.DataFrame, series: ServerSeries
) -> tuple[str, FloatArray, FloatArray]:
    """``(metric name used, time in epoch s, value)``; ``("", [], [])`` when absent."""
    present = set(samples["name"].unique())
    for index, name in enumerate(series.names):
        if series.kind == "hit_ratio":
            if {name, series.per[index]} <= present:
                t, ratio = _ratio_between_scrapes(samples, name, series.per[index])
                return name, t, ratio * 100.0
        elif series.kind == "histogram_mean":
            if {f"{name}_sum", f"{name}_count"} <= present:
                t, _, total = counter_increase(samples, f"{name}_sum")
                _, _, count = counter_increase(samples, f"{name}_count")
                with np.errstate(divide="ignore", invalid="ignore"):
                    return name, t, np.where(count > 0, total / count, np.nan)
        elif name in present and series.kind == "rate":
            t, span_s, increase = counter_increase(samples, name)
            return name, t, increase / span_s
        elif name in present:
            t, value = gauge(samples, name)
            return name, t, value * 100.0 if series.kind == "fraction" else value
    return "", np.zeros(0), np.zeros(0)


def _ratio_between_scrapes(
    samples: pd.DataFrame, numerator: str, denominator: str
) -> tuple[FloatArray, FloatArray]:
    """``(interval midpoints, increase of numerator / increase of denominator)`` over the
    intervals both counters were scraped in; NaN where the denominator did not grow."""
    t_num, _, num = counter_increase(samples, numerator)
    t_den, _, den = counter_increase(samples, denominator)
    t, at_num, at_den = np.intersect1d(t_num, t_den, return_indices=True)
    num, den = num[at_num], den[at_den]
    with np.errstate(divide="ignore", invalid="ignore"):
        return t, np.where(den > 0, num / den, np.nan)


def found_series(
    samples: pd.DataFrame | None, candidates: tuple[ServerSeries, ...] = SERVER_SERIES
) -> list[tuple[ServerSeries, str, FloatArray, FloatArray]]:
    """The ``candidates`` present in the scraped samples: (series, metric, t, value)."""
    if samples is None or samples.empty or not {"scraped_at", "name", "value"} <= set(samples):
        return []
    if "labels" not in samples.columns:
        samples = samples.assign(labels="{}")
    found = [(s, *series_values(samples, s)) for s in candidates]
    return [f for f in found if len(f[2])]


def server_panel(
    samples: pd.DataFrame | None, stats: pd.DataFrame, timeline: Timeline
) -> Panel | None:
    """Client E2E latency (top row) over the server series found; None without any."""
    found = found_series(samples)
    if not found:
        return None
    title = "Server metrics against client latency"
    rows = 1 + len(found)
    subtitles = ["client E2E latency", *(f"{m} ({_HOW[s.kind]})" for s, m, _, _ in found)]
    fig = make_subplots(
        rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.06, subplot_titles=subtitles
    )
    style(fig, title, height_px=140 + 150 * rows)
    x = midpoints_s(stats)
    for name in ("p50", "p99"):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=stats[f"latency_{name}_ms"].to_numpy(),
                name=f"client E2E {name}",
                line={"color": COLOURS[name]},
            ),
            row=1,
            col=1,
        )
    fig.update_yaxes(title_text="E2E latency (ms)", row=1, col=1)
    for row, (series, metric, t, value) in enumerate(found, start=2):
        fig.add_trace(
            go.Scatter(
                x=t - timeline.origin,
                y=value,
                name=metric,
                showlegend=False,  # the row's axis title and hover name it
                mode="lines",
                line={"color": "#555555", "width": 1.5, "shape": "linear"},
            ),
            row=row,
            col=1,
        )
        fig.update_yaxes(title_text=series.y_title, rangemode="tozero", row=row, col=1)
    fig.update_xaxes(title_text=TIME_AXIS_TITLE, row=rows, col=1)
    mark_timeline(fig, timeline, row="all", col=1)
    note = (
        "Scraped from the target's /metrics, summed over label sets; counters as rates "
        f"between scrapes, batch size as the mean between scrapes. {timeline_note(timeline)}"
    )
    return Panel("server_metrics", title, fig, note)
