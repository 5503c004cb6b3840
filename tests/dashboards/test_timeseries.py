from __future__ import annotations

import numpy as np
import pytest

from dashboards import Panel, build_panels
from dashboards.panel import WARMUP_FILL
from sla.files.run import Run
from sla.metrics import with_request_metrics
from tests.dashboards import T0, as_written, synthetic_run, trace, with_columns, with_meta


def _panel(panels: list[Panel], key: str) -> Panel:
    found = {p.key: p for p in panels}
    assert key in found, f"no {key} panel among {list(found)}"
    return found[key]


def test_plotted_percentiles_equal_numpy_on_the_same_rows() -> None:
    run = synthetic_run(30_000, duration_s=120.0, error_share=0.02, latency_trend=0.01, seed=5)
    panels = build_panels(run, window_s=4.0)
    rows = with_request_metrics(run.requests)
    rows = rows[rows["ok"]]
    t = rows["start"].to_numpy() - T0
    for key, metric in (("latency_over_time", "latency_ms"), ("ttft_over_time", "ttft_ms")):
        fig = _panel(panels, key).figure
        x = np.asarray(trace(fig, "p50").x)
        assert x.tolist() == pytest.approx(np.arange(2.0, 120.0, 4.0).tolist())
        for p in (50, 90, 99):
            y = np.asarray(trace(fig, f"p{p}").y)
            expected = [
                np.percentile(rows[metric].to_numpy()[(t >= a) & (t < a + 4.0)], p)
                for a in np.arange(0.0, 120.0, 4.0)
            ]
            assert y.tolist() == expected
    # The latency trend shows: the last window's p50 is well above the first's.
    p50 = np.asarray(trace(_panel(panels, "latency_over_time").figure, "p50").y)
    assert p50[-1] > 1.5 * p50[0]


def test_warmup_is_shaded_and_the_measured_window_marked_on_time_axes() -> None:
    run = synthetic_run(2_000, duration_s=60.0, warmup_s=12.5, error_share=0.05)
    panels = build_panels(run)
    time_panels = [p for p in panels if p.figure.layout.xaxis.title.text.startswith("time")]
    time_panels += [p for p in panels if p.key == "errors"]
    assert {p.key for p in time_panels} >= {
        "latency_over_time",
        "ttft_over_time",
        "throughput_over_time",
        "inflight_over_time",
        "errors",
    }
    for panel in time_panels:
        shapes = panel.figure.layout.shapes
        rects = [s for s in shapes if s.type == "rect"]
        assert [(r.x0, r.x1, r.fillcolor) for r in rects] == [(0.0, 12.5, WARMUP_FILL)], panel.key
        lines = sorted(s.x0 for s in shapes if s.type == "line")
        assert lines == [12.5, 60.0], panel.key
        assert "warm-up (0–12.5 s" in panel.note


def test_no_warmup_recorded_means_nothing_shaded() -> None:
    run = with_meta(synthetic_run(500, duration_s=20.0), measured_from=None)
    panel = _panel(build_panels(run), "latency_over_time")
    assert not [s for s in panel.figure.layout.shapes if s.type == "rect"]
    assert panel.note.startswith("Successful requests only. No warm-up")


def test_default_window_keeps_figures_small() -> None:
    run = synthetic_run(5_000, duration_s=3_600.0)
    fig = _panel(build_panels(run), "latency_over_time").figure
    assert len(trace(fig, "p99").x) == 3_600 / 50  # 50 s windows: at most 150 per run


def test_ttft_panel_is_skipped_for_a_run_without_streamed_tokens() -> None:
    run = synthetic_run(500)
    run = with_columns(run, first_token_at=np.nan)
    keys = {p.key for p in build_panels(run)}
    assert "latency_over_time" in keys
    assert "ttft_over_time" not in keys
    assert "distribution_ttft_ms" not in keys
    assert "ttft_vs_input_tokens" not in keys


def test_throughput_shows_the_rates_and_an_open_loop_target() -> None:
    run = synthetic_run(
        6_000,
        duration_s=60.0,
        open_loop=True,
        error_share=0.1,
        load_profile={"mode": "open", "arrival_rate_rps": 100.0},
    )
    fig = _panel(build_panels(run, window_s=10.0), "throughput_over_time").figure
    requests = np.asarray(trace(fig, "requests/s (successful)").y)
    errors = np.asarray(trace(fig, "errors/s").y)
    assert (requests + errors).sum() * 10.0 == pytest.approx(6_000)
    target = trace(fig, "target arrival rate (requests/s)")
    assert list(target.y) == [100.0, 100.0]
    assert trace(fig, "output tokens/s").yaxis == "y2"


def _intervals_run(starts: list[float], ends: list[float], **profile: object) -> Run:
    run = synthetic_run(len(starts), duration_s=5.0, warmup_s=0.0)
    run = with_columns(
        run,
        sent_at=T0 + np.array(starts),
        done_at=T0 + np.array(ends),
        first_token_at=T0 + np.array(starts),
    )
    return with_meta(run, load_profile=as_written({"mode": "closed", **profile}))


def test_inflight_counts_of_a_hand_made_run() -> None:
    run = _intervals_run([0.0, 1.0, 1.0, 2.0], [2.0, 3.0, 1.5, 4.0], users=3)
    fig = _panel(build_panels(run, window_s=1.0), "inflight_over_time").figure
    assert list(trace(fig, "in flight (mean)").y) == [1.0, 2.5, 2.0, 1.0, 0.0]
    assert list(trace(fig, "in flight (max)").y) == [1.0, 3.0, 2.0, 1.0, 0.0]
    users = trace(fig, "users (load profile)")
    assert (list(users.x), list(users.y)) == ([0.0, 5.0], [3, 3])


def test_inflight_draws_the_users_of_a_shape() -> None:
    run = _intervals_run([0.0, 1.0], [2.0, 3.0], shape="steps:users=2,4,step=2s")
    fig = _panel(build_panels(run, window_s=1.0), "inflight_over_time").figure
    users = trace(fig, "users (load profile)")
    assert list(users.x) == [0.0, 2.0, 2.0, 4.0]
    assert list(users.y) == [2, 2, 4, 4]
