from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dashboards import build_panels
from dashboards.server import SERVER_SERIES, ServerSeries, counter_increase, gauge, series_values
from tests.dashboards import T0, synthetic_run, trace


def _samples(rows: list[tuple[float, str, dict[str, str], float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [(T0 + t, name, json.dumps(labels), value) for t, name, labels, value in rows],
        columns=["scraped_at", "name", "labels", "value"],
    )


def _series(key: str) -> ServerSeries:
    return next(s for s in SERVER_SERIES if s.key == key)


def test_gauges_are_summed_over_label_sets() -> None:
    samples = _samples(
        [
            (1.0, "slabench_queue_depth", {"queue": "lm"}, 3.0),
            (1.0, "slabench_queue_depth", {"queue": "embed"}, 1.0),
            (2.0, "slabench_queue_depth", {"queue": "lm"}, 5.0),
            (2.0, "slabench_queue_depth", {"queue": "embed"}, 0.0),
        ]
    )
    t, value = gauge(samples, "slabench_queue_depth")
    assert (t - T0).tolist() == [1.0, 2.0] and value.tolist() == [4.0, 5.0]


def test_counters_become_rates_and_survive_a_reset() -> None:
    name = "slabench_generation_tokens_total"
    samples = _samples(
        [(0.0, name, {}, 100.0), (2.0, name, {}, 300.0), (3.0, name, {}, 50.0)]
    )  # the server restarted between 2 s and 3 s
    t, span, increase = counter_increase(samples, name)
    assert (t - T0).tolist() == [1.0, 2.5] and span.tolist() == [2.0, 1.0]
    assert increase.tolist() == [200.0, 50.0]
    used, _, rate = series_values(samples, _series("generation_tokens"))
    assert used == name and rate.tolist() == [100.0, 50.0]


def test_batch_size_is_the_mean_between_scrapes_from_sum_and_count() -> None:
    labels = {"queue": "lm"}
    samples = _samples(
        [
            (0.0, "slabench_batch_size_sum", labels, 0.0),
            (0.0, "slabench_batch_size_count", labels, 0.0),
            (1.0, "slabench_batch_size_sum", labels, 40.0),  # 5 batches of mean 8
            (1.0, "slabench_batch_size_count", labels, 5.0),
            (2.0, "slabench_batch_size_sum", labels, 40.0),  # no batch at all
            (2.0, "slabench_batch_size_count", labels, 5.0),
            (2.0, "slabench_batch_size_bucket", {**labels, "le": "8"}, 5.0),
        ]
    )
    used, t, mean = series_values(samples, _series("batch_size"))
    assert used == "slabench_batch_size"
    assert (t - T0).tolist() == [0.5, 1.5]
    assert mean[0] == 8.0 and np.isnan(mean[1])


def test_vllm_names_are_found_when_the_target_is_vllm() -> None:
    samples = _samples(
        [
            (0.0, "vllm:num_requests_running", {"model_name": "m"}, 4.0),
            (0.0, "vllm:gpu_cache_usage_perc", {"model_name": "m"}, 0.25),
        ]
    )
    assert series_values(samples, _series("running"))[0] == "vllm:num_requests_running"
    assert series_values(samples, _series("kv_cache"))[2].tolist() == [25.0]
    assert series_values(samples, _series("queue_depth"))[0] == ""


def test_server_rows_share_the_client_time_axis() -> None:
    depth = [(t, "slabench_queue_depth", {"queue": "lm"}, t / 10) for t in np.arange(0, 60, 2.0)]
    run = synthetic_run(3_000, duration_s=60.0, server_metrics=_samples(depth))
    fig = {p.key: p for p in build_panels(run, window_s=5.0)}["server_metrics"].figure
    queue = trace(fig, "slabench_queue_depth")
    assert list(queue.x) == pytest.approx(np.arange(0, 60, 2.0).tolist())  # s since start
    assert list(queue.y) == pytest.approx([t / 10 for t in np.arange(0, 60, 2.0)])
    client = trace(fig, "client E2E p99")
    assert list(client.x) == pytest.approx(np.arange(2.5, 60, 5.0).tolist())
    assert queue.xaxis == "x2" and fig.layout.xaxis.matches == "x2"  # one shared x axis
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert {s.xref for s in rects} == {"x", "x2"}  # the warm-up shaded on every row


def test_no_server_metrics_no_panel() -> None:
    assert "server_metrics" not in {p.key for p in build_panels(synthetic_run(300))}
    unknown = _samples([(0.0, "process_cpu_seconds_total", {}, 1.0)])
    run = synthetic_run(300, server_metrics=unknown)
    assert "server_metrics" not in {p.key for p in build_panels(run)}
