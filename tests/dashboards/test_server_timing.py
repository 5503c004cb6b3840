"""The report's server-timing panel on a synthetic run with known server samples: its
traces hold the per-interval means of the server's histograms, the GPU rows appear when a
GPU was scraped, and without timing families (or a GPU) there is no panel."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dashboards.server_timing import server_timing_panel
from dashboards.view import RunView
from tests.dashboards import T0, synthetic_run
from tests.sla.test_server_intervals import histogram, scraped

URL = "http://127.0.0.1:8000/metrics"
# (family, seconds added per request in each interval) for 10, then 20 requests
TIMINGS = (
    ("slabench_queue_time_seconds", (0.01, 0.05)),
    ("slabench_request_prefill_time_seconds", (0.02, 0.03)),
    ("slabench_request_decode_time_seconds", (0.5, 0.8)),
    ("slabench_request_latency_seconds", (0.6, 1.0)),
)


def page(scrape: int, gpu: bool) -> str:
    """The server's families after ``scrape`` (0, 1, 2) intervals."""
    counts = (0, 10, 30)[scrape]
    text = ""
    for family, per_request in TIMINGS:
        total = per_request[0] * min(counts, 10) + per_request[1] * max(counts - 10, 0)
        text += histogram(family, total, counts)
    if gpu:
        text += (
            "# TYPE slabench_gpu_utilization_ratio gauge\n"
            f'slabench_gpu_utilization_ratio{{gpu="0"}} {0.3 + 0.2 * scrape}\n'
            f'# TYPE slabench_gpu_power_watts gauge\nslabench_gpu_power_watts{{gpu="0"}} 250\n'
        )
    return text


def scrapes(tmp_path: Path, gpu: bool) -> pd.DataFrame:
    return scraped(tmp_path, *((T0 + 20.0 * (i + 1), URL, page(i, gpu)) for i in range(3)))


def test_the_panel_draws_the_servers_per_interval_means_and_the_gpu(tmp_path: Path) -> None:
    run = synthetic_run(200, server_metrics=scrapes(tmp_path, gpu=True))
    panel = server_timing_panel(RunView.of(run))
    assert panel is not None
    traces = {t.name: t for t in panel.figure.data}
    expected = {"queue": [10.0, 50.0], "prefill": [20.0, 30.0], "decode": [500.0, 800.0]}
    expected["e2e"] = [600.0, 1000.0]
    for part, means in expected.items():
        assert list(traces[f"server {part}"].y) == pytest.approx(means), part
    assert list(traces["server queue"].x) == pytest.approx([30.0, 50.0])  # interval middles
    assert {"client ttft", "client e2e"} <= traces.keys()
    assert list(traces["slabench_gpu_utilization_ratio"].y) == pytest.approx([30.0, 50.0, 70.0])
    assert list(traces["slabench_gpu_power_watts"].y) == pytest.approx([250.0] * 3)
    assert "slabench reference server: found queue: slabench_queue_time_seconds" in panel.note
    assert "missing ttft: slabench_time_to_first_token_seconds" in panel.note
    assert "power integrated: slabench_gpu_power_watts" in panel.note


def test_without_gpu_rows_the_panel_has_one_row(tmp_path: Path) -> None:
    run = synthetic_run(200, server_metrics=scrapes(tmp_path, gpu=False))
    panel = server_timing_panel(RunView.of(run))
    assert panel is not None
    names = {t.name for t in panel.figure.data}
    assert "slabench_gpu_utilization_ratio" not in names and "server decode" in names
    assert "no energy source: the target exports no energy or power metric" in panel.note


def test_no_timing_families_and_no_gpu_is_no_panel(tmp_path: Path) -> None:
    other = scraped(tmp_path, (T0 + 20, URL, "# TYPE up gauge\nup 1\n"), (T0 + 40, URL, "up 1\n"))
    assert server_timing_panel(RunView.of(synthetic_run(50, server_metrics=other))) is None
    assert server_timing_panel(RunView.of(synthetic_run(50))) is None
    gauge = "# TYPE slabench_queue_depth gauge\nslabench_queue_depth 3\n"  # no timing family
    only = scraped(tmp_path / "g", (T0 + 20, URL, gauge), (T0 + 40, URL, gauge))
    assert server_timing_panel(RunView.of(synthetic_run(50, server_metrics=only))) is None
