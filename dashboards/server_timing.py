"""Where the time goes, per scrape interval, from the server's own Prometheus families
(``sla.server_intervals``), beside the client's means over the same intervals; and the GPU
(utilisation, power) when a GPU exporter was scraped, with the energy per token.

The note says which families were found and which are missing, where the energy figure
came from (a counter, or power integrated; or that there is no energy source), and, when
streams were burst-delivered, that the client's TTFT/TPOT describe delivery and the
server's generation.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboards.panel import TIME_AXIS_TITLE, Panel, mark_timeline, style
from dashboards.server import gauge
from dashboards.view import RunView
from sla.energy import GPU_UTILISATION, POWER_GAUGES
from sla.server_side import server_side

__all__ = ["server_timing_panel"]

_DASH = {"ttft": "dot", "e2e": "dash", "tpot": "dashdot"}


def server_timing_panel(view: RunView) -> Panel | None:
    """None when the run scraped neither a known server's timing families nor a GPU's
    utilisation or power (the terminal still says which families were found, and why there
    is no energy figure)."""
    side = server_side(view.reading)
    samples = view.reading.run.server_metrics
    if not side.scraped or samples is None:
        return None
    names = set(samples["name"].unique())
    gpu = [
        found
        for y_title, families in (
            ("GPU utilisation (%)", GPU_UTILISATION),
            ("power (W)", POWER_GAUGES),
        )
        for found in [next(((y_title, n, k) for n, k in families if n in names), None)]
        if found is not None
    ]
    if not side.decomposition.found and not gpu:
        return None
    frame = side.decomposition.frame
    rows = 1 + len(gpu)
    title = "Where the time goes (server's Prometheus) and the GPU"
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    style(fig, title, height_px=200 + 170 * rows)
    origin = view.timeline.origin
    if not frame.empty:
        x = (frame["start"] + frame["end"]) / 2.0 - origin
        for column in frame.columns:
            if column.startswith("server_"):
                part = column.removeprefix("server_").removesuffix("_ms")
                fig.add_trace(go.Scatter(x=x, y=frame[column], name=f"server {part}"), row=1, col=1)
            elif column.startswith("client_"):
                part = column.removeprefix("client_").removesuffix("_ms")
                line = {"dash": _DASH.get(part, "dash"), "color": "#333333"}
                fig.add_trace(
                    go.Scatter(x=x, y=frame[column], name=f"client {part}", line=line), row=1, col=1
                )
    fig.update_yaxes(title_text="mean per interval (ms)", rangemode="tozero", row=1, col=1)
    for row, (y_title, name, factor) in enumerate(gpu, start=2):
        t, value = gauge(samples, name)
        fig.add_trace(go.Scatter(x=t - origin, y=value * factor, name=name), row=row, col=1)
        fig.update_yaxes(title_text=y_title, rangemode="tozero", row=row, col=1)
    fig.update_xaxes(title_text=TIME_AXIS_TITLE, row=rows, col=1)
    mark_timeline(fig, view.timeline, row="all", col=1)
    note = " ".join(
        [
            "Server means per scrape interval: increase of a histogram's _sum over its _count "
            "(or of Triton's µs counters over its successful requests); client means over the "
            "successful requests that ended in the same interval. The server's figures describe "
            "generation, the client's delivery.",
            *(line.rstrip(".") + "." for line in side.lines()),
        ]
    )
    return Panel("server_timing", title, fig, note)
