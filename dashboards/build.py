"""``build_panels``: every figure of one run, in the order a report shows them.

The order answers "did we meet the SLA, and if not, where and when did it go wrong?": the
verdict first, then latency, load (offered against achieved in open loop) and the server
over time (its prefix cache too), the errors, the distributions, latency by turn and
reasoning time, and latency against what drives it. A panel whose data the run lacks is
left out (no TTFT in a non-streamed run, no server metrics, no errors, a single load level,
no verdict, no schedule, no cached_tokens, no turns, no reasoning).
"""

from __future__ import annotations

from dashboards.arrivals import arrivals_panel
from dashboards.breakdown import breakdown_panel
from dashboards.cache import cache_panel
from dashboards.distributions import distribution_panels
from dashboards.failures import errors_panel
from dashboards.load import latency_vs_throughput, ttft_vs_input
from dashboards.panel import Panel
from dashboards.reasoning import reasoning_panel
from dashboards.server import server_panel
from dashboards.server_timing import server_timing_panel
from dashboards.sessions import turns_panel
from dashboards.sla_panel import sla_panel
from dashboards.timeseries import inflight_over_time, percentile_bands, throughput_over_time
from dashboards.view import RunView
from dashboards.windows import window_stats
from sla.files.run import Run
from sla.reading import Reading
from sla.verdict import Verdict


def build_panels(
    run: Run | Reading, verdict: Verdict | None = None, *, window_s: float | None = None
) -> list[Panel]:
    """The panels of ``run`` (or of a reading already made of it); ``window_s`` sets the
    time-series window (default: a 1-2-5 step giving at most 150 windows). Raises
    ``DashboardError`` for an unusable window."""
    view = RunView.of(run, window_s)
    timeline = view.timeline
    stats = window_stats(view.rows, start=timeline.origin, window_s=timeline.window_s)
    panels = [
        sla_panel(verdict),
        percentile_bands(
            stats, timeline, prefix="latency", key="latency_over_time", what="E2E latency"
        ),
        percentile_bands(stats, timeline, prefix="ttft", key="ttft_over_time", what="TTFT"),
        throughput_over_time(stats, view),
        inflight_over_time(stats, view),
        arrivals_panel(view),
        server_panel(view.reading.run.server_metrics, stats, timeline),
        server_timing_panel(view),
        cache_panel(view),
        errors_panel(view, stats),
        *distribution_panels(view, verdict),
        turns_panel(view),
        reasoning_panel(view),
        breakdown_panel(view),
        ttft_vs_input(view),
        latency_vs_throughput(view),
    ]
    return [panel for panel in panels if panel is not None]
