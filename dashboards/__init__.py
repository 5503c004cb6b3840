"""Plotly figures built from a run directory (pure functions of a run).

    panels = build_panels(load_run("runs/x"), verdict)       # list[Panel]
    panels = comparison_panels(baseline, candidate, compare(baseline, candidate))

Each ``Panel`` holds a stable ``key``, a ``title``, a ``plotly.graph_objects.Figure`` and a
one-line ``note``. Figures hold aggregates (windows, histogram bins, quantile grids), never
one point per request, so a run of a million requests builds in seconds into small figures.
Time axes are seconds since the run start, with the warm-up shaded and the measured window
marked. ``window_stats`` gives the per-window points the time series are drawn from.

Every builder takes a run or its reading (``sla.reading.read_run``): a caller that already
read the run passes the reading and nothing is derived again. ``DashboardError`` (a figure
option that cannot be used) is a ``sla.errors.SlabenchError``.

Modules: ``view`` (a run's reading and time axis), ``windows`` (per-window points, requests
in flight), ``timeseries``, ``distributions``, ``load`` (TTFT against input length, latency
against throughput), ``levels`` (load levels of a shaped run), ``sla_panel``, ``failures``
(failed requests), ``server`` (scraped server metrics), ``arrivals`` (offered against
achieved, open loop), ``cache`` (prefix-cache hit rate), ``sessions`` (latency by turn),
``reasoning`` (reasoning against output time), ``compare`` and ``build``;
``capacity`` draws the result of a capacity search (``capacity.json``, a ``CapacityResult``)
rather than a run; ``capacity_points`` says which steps make a curve and how they are marked:

    panels = capacity_panels(load_capacity("runs/sweep"))   # sla.files.capacity
"""

from __future__ import annotations

from dashboards.build import build_panels
from dashboards.capacity import (
    capacity_comparison_panel,
    capacity_panels,
    latency_throughput_panel,
    load_throughput_panel,
)
from dashboards.compare import comparison_panels
from dashboards.panel import Panel
from dashboards.view import DashboardError
from dashboards.windows import WindowStats, window_stats

__all__ = [
    "DashboardError",
    "Panel",
    "WindowStats",
    "build_panels",
    "capacity_comparison_panel",
    "capacity_panels",
    "comparison_panels",
    "latency_throughput_panel",
    "load_throughput_panel",
    "window_stats",
]
