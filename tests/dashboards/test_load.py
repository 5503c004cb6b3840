from __future__ import annotations

import numpy as np
import pytest

from dashboards import Panel, build_panels
from dashboards.load import SCATTER_CAP, input_length_bins
from sla.files.run import Run
from sla.metrics import with_request_metrics
from tests.dashboards import T0, synthetic_run, trace, with_columns


def _panels(run: Run) -> dict[str, Panel]:
    return {p.key: p for p in build_panels(run)}


def test_latency_against_throughput_has_a_point_per_user_level() -> None:
    shape = "spike:base=2,peak=8,at=20s,for=10s,total=40s"
    run = synthetic_run(
        8_000,
        duration_s=40.0,
        warmup_s=5.0,
        error_share=0.05,
        load_profile={"mode": "closed", "shape": shape},
    )
    fig = _panels(run)["latency_vs_throughput"].figure
    rows = with_request_metrics(run.requests)
    rows = rows[rows["ok"]]
    t = rows["start"].to_numpy() - T0
    base = ((t >= 5.0) & (t < 20.0)) | ((t >= 30.0) & (t < 40.0))  # warm-up excluded
    peak = (t >= 20.0) & (t < 30.0)
    expected_x = [base.sum() / 25.0, peak.sum() / 10.0]
    for p in (50, 90, 99):
        points = trace(fig, f"p{p}")
        assert list(points.x) == pytest.approx(expected_x)
        latency = rows["latency_ms"].to_numpy()
        assert list(points.y) == [np.percentile(latency[base], p), np.percentile(latency[peak], p)]
    assert list(trace(fig, "p99").text) == ["2 users", "8 users"]


def test_a_run_with_one_level_has_no_latency_throughput_panel() -> None:
    for profile in (
        {"mode": "closed", "users": 8},
        {"mode": "closed", "shape": "steps:users=4,step=60s"},
        {"mode": "open", "arrival_rate_rps": 10.0},
    ):
        assert "latency_vs_throughput" not in _panels(synthetic_run(500, load_profile=profile))


def test_ttft_against_input_length_uses_every_request_for_the_lines() -> None:
    run = synthetic_run(20_000)
    lengths = np.random.default_rng(2).choice([128, 512, 2048], 20_000).astype(np.int32)
    run = with_columns(run, input_tokens=lengths)
    fig = _panels(run)["ttft_vs_input_tokens"].figure
    rows = with_request_metrics(run.requests)
    rows = rows[(rows["start"] >= T0 + 10.0) & rows["ok"]]  # the measured window
    for name, p in (("p50", 50), ("p90", 90)):
        line = trace(fig, f"{name} per input length")
        assert list(line.x) == [128, 512, 2048]
        expected = [
            np.percentile(rows["ttft_ms"].to_numpy()[rows["input_tokens"].to_numpy() == n], p)
            for n in (128, 512, 2048)
        ]
        assert list(line.y) == expected
    dots = trace(fig, f"requests (sample of {SCATTER_CAP:,})")
    assert len(dots.x) == SCATTER_CAP


def test_many_input_lengths_are_binned_by_equal_counts() -> None:
    tokens = np.arange(1.0, 1001.0)
    centres, index = input_length_bins(tokens)
    assert len(centres) == 40
    assert np.bincount(index).tolist() == [25] * 40
    assert centres[0] == np.median(tokens[:25])


def test_one_input_length_has_no_ttft_input_panel() -> None:
    run = with_columns(synthetic_run(500), input_tokens=np.full(500, 64, dtype=np.int32))
    assert "ttft_vs_input_tokens" not in _panels(run)
