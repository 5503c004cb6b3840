from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from dashboards.cache import cache_panel, client_hit_rate, measured_hit_rate, server_hit_rate
from dashboards.view import RunView
from loadtests.recording.scrapes import ScrapeRecorder
from reference_server.metrics import create_metrics
from sla.files.run import Run
from sla.files.server_metrics import read_server_metrics
from tests.dashboards import T0, synthetic_run, trace, with_columns


def _cache_run(server_metrics: pd.DataFrame | None = None) -> Run:
    """Eight requests, started at 5, 7, 12, 14, 16, 25, 27 and 29 s (10 s windows; the
    warm-up ends at 10 s). Row 3 reports no cached_tokens, row 4 failed, row 7 reports
    cached_tokens of an empty prompt: none of them counts."""
    run = synthetic_run(8, warmup_s=10.0, server_metrics=server_metrics)
    sent = T0 + np.array([5.0, 7.0, 12.0, 14.0, 16.0, 25.0, 27.0, 29.0])
    status = np.array([200, 200, 200, 200, 500, 200, 200, 200], dtype=np.int32)
    cached = pd.array([10, 0, 30, None, 99, 0, 50, 5], dtype="Int32")
    prompt = np.array([100, 100, 40, 60, 100, 200, 100, 0], dtype=np.int32)
    return with_columns(
        run,
        sent_at=sent,
        first_token_at=sent + 0.01,
        done_at=sent + 0.1,
        status=status,
        error=pd.array([None] * 8, dtype="string"),
        cached_tokens=cached,
        input_tokens=prompt,
    )


def test_client_hit_rate_per_window_is_cached_over_input_tokens_of_reporting_rows() -> None:
    table = client_hit_rate(RunView.of(_cache_run(), window_s=10.0))
    assert table["start_s"].tolist() == [0.0, 10.0, 20.0]
    assert table["n"].tolist() == [2, 1, 2]
    assert table["cached_tokens"].tolist() == [10.0, 30.0, 50.0]
    assert table["input_tokens"].tolist() == [200.0, 40.0, 300.0]
    assert table["hit_rate_pct"].tolist() == pytest.approx([5.0, 75.0, 100.0 * 50 / 300])


def test_the_measured_window_hit_rate_leaves_the_warm_up_out() -> None:
    percent, n = measured_hit_rate(RunView.of(_cache_run(), window_s=10.0))
    assert n == 3 and percent == pytest.approx(100.0 * 80 / 340)


def _counters(hits: str, queries: str, values: list[tuple[float, float, float]]) -> pd.DataFrame:
    rows = []
    for t, hit, query in values:
        rows.append((T0 + t, hits, json.dumps({"model": "m"}), hit))
        rows.append((T0 + t, queries, json.dumps({"model": "m"}), query))
    return pd.DataFrame(rows, columns=["scraped_at", "name", "labels", "value"])


@pytest.mark.parametrize(
    ("hits", "queries"),
    [
        ("slabench_prefix_cache_hit_tokens_total", "slabench_prefix_cache_query_tokens_total"),
        ("slabench_prefix_cache_hits_total", "slabench_prefix_cache_queries_total"),
        ("vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"),
        ("vllm:prefix_cache_hits", "vllm:prefix_cache_queries"),
    ],
)
def test_the_servers_hit_rate_is_the_ratio_of_its_counters_increases(
    hits: str, queries: str
) -> None:
    # 0-2 s: 300 of 1000 tokens hit; 2-4 s: nothing queried; 4-5 s: 90 of 100.
    samples = _counters(
        hits, queries, [(0.0, 0.0, 0.0), (2.0, 300.0, 1000.0), (4.0, 300.0, 1000.0)]
    )
    samples = pd.concat([samples, _counters(hits, queries, [(5.0, 390.0, 1100.0)])])
    found = server_hit_rate(samples)
    assert found is not None and found.metric == hits
    assert (found.t - T0).tolist() == [1.0, 3.0, 4.5]
    assert found.percent[0] == pytest.approx(30.0) and np.isnan(found.percent[1])
    assert found.percent[2] == pytest.approx(90.0)


def test_vllm_v0s_hit_rate_gauge_is_read_as_a_fraction() -> None:
    name = "vllm:gpu_prefix_cache_hit_rate"
    samples = pd.DataFrame(
        {
            "scraped_at": T0 + np.array([1.0, 2.0]),
            "name": name,
            "labels": "{}",
            "value": [0.25, 0.5],
        }
    )
    found = server_hit_rate(samples)
    assert found is not None and found.metric == name
    assert found.percent.tolist() == [25.0, 50.0]


def test_the_panel_draws_client_and_server_and_is_absent_without_either() -> None:
    samples = _counters(
        "slabench_prefix_cache_hit_tokens_total",
        "slabench_prefix_cache_query_tokens_total",
        [(0.0, 0.0, 0.0), (10.0, 50.0, 100.0)],
    )
    view = RunView.of(_cache_run(samples), window_s=10.0)
    panel = cache_panel(view)
    assert panel is not None and panel.key == "prefix_cache"
    client = trace(panel.figure, "cached / input tokens (client)")
    assert list(client.x) == [5.0, 15.0, 25.0]
    assert list(client.y) == pytest.approx([5.0, 75.0, 100.0 * 50 / 300])
    server = trace(panel.figure, "slabench_prefix_cache_hit_tokens_total (server)")
    assert list(server.x) == [5.0] and list(server.y) == [50.0]
    assert "23.5% over the measured window (n=3)" in panel.note
    # Neither cached_tokens nor prefix-cache counters (an older run, another server).
    queue = pd.DataFrame(
        {"scraped_at": [T0, T0 + 1], "name": "slabench_queue_depth", "labels": "{}", "value": 1.0}
    )
    assert cache_panel(RunView.of(synthetic_run(100, server_metrics=queue))) is None
    # The server's counters alone are enough.
    only_server = with_columns(
        synthetic_run(100, server_metrics=samples), cached_tokens=pd.array([None] * 100, "Int32")
    )
    panel = cache_panel(RunView.of(only_server))
    assert panel is not None and panel.figure.data[0].name.endswith("(server)")


def test_the_reference_servers_own_counters_as_recorded_give_its_hit_rate(
    tmp_path: Path,
) -> None:
    """The reference server's metric families, exposed as /metrics exposes them and recorded
    as the scraper records them, are found by name (they must not drift apart)."""
    registry = CollectorRegistry()
    metrics = create_metrics(registry)
    recorder = ScrapeRecorder(tmp_path)
    for t, hits, queries in ((0.0, 0, 0), (1.0, 30, 100), (2.0, 100, 100)):
        metrics.prefix_cache_hits.inc(hits)
        metrics.prefix_cache_queries.inc(queries)
        recorder.record(T0 + t, generate_latest(registry).decode())
    recorder.close()
    found = server_hit_rate(read_server_metrics(tmp_path, ValueError))
    assert found is not None and found.metric == "slabench_prefix_cache_hit_tokens_total"
    assert found.percent.tolist() == [30.0, 100.0]
