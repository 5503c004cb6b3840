"""Where the time goes: each request's client latency split by what its server said.

From the measured window's successful requests whose server told its timings
(``server_*_ms``, ``server_timing_source``; ``loadtests.client.server_timings``), the client
latency from the send (``done_at - sent_at``: the open-loop schedule lag is the load
generator's own wait before the request left, shown by ``schedule_lag_ms``, not here) is
stacked into:

- server queue, server prefill, server decode: as the server told them (0 where it told
  none of one part);
- server, other: its total minus those three (tokenisation, an unsplit compute time such as
  TGI's inference time or an embedding batch's; 0 without a total);
- client + network: the latency minus the server's total (``client_overhead_ms``: the
  network both ways, HTTP and the load generator's reading). Without a server total
  (llama.cpp tells none) it is the latency minus the parts told, so it holds the server's
  untold time too; the note says so.

The parts of one request add up to its latency. Over time: per-window means (windows by
request start). At p50 and p99: the mean parts of the requests *around* that percentile of
the latency (those within half a percent of the requests of its rank, at least one), so each
bar is made of real requests and adds up to about that percentile; it is not a sum of
per-component percentiles, which would belong to no request (the report's table gives
those too).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboards.panel import TIME_AXIS_TITLE, Panel, mark_timeline, style, timeline_note
from dashboards.view import RunView
from sla.metrics import FloatArray, floats

PARTS = (
    ("queue", "server queue", "#E69F00"),
    ("prefill", "server prefill", "#0072B2"),
    ("decode", "server decode", "#56B4E9"),
    ("other", "server, other", "#999999"),
    ("client", "client + network", "#D55E00"),
)
AROUND_PERCENTS = (50.0, 99.0)
_AROUND_SHARE = 0.005  # half a percent of the requests either side of a percentile's rank


@dataclass(frozen=True, slots=True)
class Breakdown:
    """The told requests (same order everywhere): start (epoch s), latency from the send,
    each part of ``PARTS`` (ms); ``with_total`` those whose server told its total;
    ``sources`` the conventions read and their counts; ``of`` the successful measured
    requests considered."""

    start: FloatArray
    latency_ms: FloatArray
    parts: dict[str, FloatArray]
    with_total: int
    sources: dict[str, int]
    of: int

    def __len__(self) -> int:
        return len(self.latency_ms)

    def around(self, percent: float) -> dict[str, float]:
        """The mean latency and parts of the requests around ``percent`` of the latency."""
        order = np.argsort(self.latency_ms, kind="stable")
        n = len(order)
        rank = round(percent / 100.0 * (n - 1))
        half = max(0, int(_AROUND_SHARE * n))
        pick = order[max(0, rank - half) : min(n, rank + half + 1)]
        out = {"latency": float(self.latency_ms[pick].mean()), "n": float(len(pick))}
        out.update({key: float(values[pick].mean()) for key, values in self.parts.items()})
        return out


def _zero(values: FloatArray) -> FloatArray:
    return np.where(np.isnan(values), 0.0, values)


def breakdown(rows: pd.DataFrame) -> Breakdown:
    """The breakdown of ``rows`` (successful requests with the metric columns)."""
    of = len(rows)
    if "server_timing_source" not in rows:
        rows = rows.iloc[:0]
    rows = rows[rows["server_timing_source"].notna().to_numpy(dtype=bool)]
    sent, done = floats(rows, "sent_at"), floats(rows, "done_at")
    latency = (done - sent) * 1000.0
    keep = np.isfinite(latency)
    rows, latency = rows[keep], latency[keep]
    queue, prefill, decode = (
        _zero(floats(rows, f"server_{p}_ms")) for p in ("queue", "prefill", "decode")
    )
    told = queue + prefill + decode
    total = floats(rows, "server_total_ms")
    has_total = np.isfinite(total)
    other = np.where(has_total, np.maximum(total - told, 0.0), 0.0)
    client = np.where(has_total, latency - total, latency - told)
    sources = Counter(str(s) for s in rows["server_timing_source"])
    return Breakdown(
        start=floats(rows, "start"),
        latency_ms=latency,
        parts=dict(queue=queue, prefill=prefill, decode=decode, other=other, client=client),
        with_total=int(has_total.sum()),
        sources=dict(sources.most_common()),
        of=of,
    )


def sources_text(b: Breakdown) -> str:
    """``timings (ours) ×120, llama.cpp ×4``: the conventions the figures come from."""
    names = {"timings": "timings object (slabench reference server)", "tgi": "TGI headers",
             "server-timing": "Server-Timing header", "llama.cpp": "llama.cpp timings"}  # fmt: skip
    return ", ".join(f"{names.get(s, s)} ×{n:,}" for s, n in b.sources.items())


def breakdown_panel(view: RunView) -> Panel | None:
    """Per-window means (left) and the requests around p50 and p99 (right), stacked; None
    when no measured successful request carries server timings."""
    b = breakdown(view.measured_ok)
    if not len(b):
        return None
    timeline = view.timeline
    title = f"Where the time goes (n={len(b):,})"
    fig = make_subplots(rows=1, cols=2, column_widths=[0.72, 0.28], horizontal_spacing=0.08)
    style(fig, title)
    window = timeline.window_s
    index = np.floor((b.start - timeline.origin) / window).astype(np.int64)
    frame = pd.DataFrame({key: values for key, values in b.parts.items()}).assign(w=index)
    means = frame.groupby("w").mean()
    centres = (means.index.to_numpy(dtype=np.float64) + 0.5) * window
    around = {p: b.around(p) for p in AROUND_PERCENTS}
    labels = [f"around p{p:g}" for p in AROUND_PERCENTS]
    for key, name, colour in PARTS:
        fig.add_trace(
            go.Bar(x=centres, y=means[key], width=window, name=name, legendgroup=key,
                   marker={"color": colour},
                   hovertemplate=f"{name}: %{{y:.4g}} ms<extra></extra>"),
            row=1, col=1,
        )  # fmt: skip
        fig.add_trace(
            go.Bar(x=labels, y=[around[p][key] for p in AROUND_PERCENTS], name=name,
                   legendgroup=key, showlegend=False, marker={"color": colour},
                   hovertemplate=f"{name} %{{x}}: %{{y:.4g}} ms<extra></extra>"),
            row=1, col=2,
        )  # fmt: skip
    mark_timeline(fig, timeline, row=1, col=1)
    fig.update_layout(barmode="stack", bargap=0.05)
    fig.update_xaxes(title_text=TIME_AXIS_TITLE, row=1, col=1)
    fig.update_xaxes(
        type="category", title_text="requests around the latency percentile", row=1, col=2
    )
    fig.update_yaxes(title_text="mean time per request (ms)", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="mean time per request (ms)", rangemode="tozero", row=1, col=2)
    note = (
        f"Client latency from the send, split by each request's own server timings "
        f"({sources_text(b)}; {len(b):,} of {b.of:,} successful measured requests). Left: "
        f"means per window; right: the mean parts of the requests around p50 and p99 of that "
        f"latency (not per-part percentiles). {_without_total(b)}{timeline_note(timeline)}"
    )
    return Panel("where_the_time_goes", title, fig, note)


def _without_total(b: Breakdown) -> str:
    missing = len(b) - b.with_total
    if not missing:
        return ""
    return (
        f"{missing:,} requests' servers told no total: their client + network part holds "
        "the server time they did not tell. "
    )
