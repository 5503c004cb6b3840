from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboards import WindowStats, window_stats
from dashboards.windows import (
    WINDOW_COLUMNS,
    grouped_percentiles,
    inflight_per_window,
    inflight_steps,
)
from sla.files.run import CANCELLED_ERROR
from sla.metrics import throughput, with_request_metrics
from sla.stats import percentile_interval
from tests.dashboards import T0, synthetic_run


def _sla_window(rows: pd.DataFrame, a: float, b: float) -> pd.DataFrame:
    t = rows["start"].to_numpy() - T0
    keep = (t >= a) & (t < b) & (rows["error"] != CANCELLED_ERROR).to_numpy(bool, na_value=True)
    return rows[keep]


def test_window_points_are_the_sla_numbers_of_each_window() -> None:
    run = synthetic_run(20_000, duration_s=60.0, error_share=0.05, cancelled=7, seed=3)
    rows = with_request_metrics(run.requests)
    stats = window_stats(run.requests, start=T0, window_s=2.0)
    assert list(stats.columns) == list(WINDOW_COLUMNS)
    assert len(stats) == 30
    for w in (0, 7, 29):
        a, b = stats["start_s"][w], stats["end_s"][w]
        window = _sla_window(rows, a, b)
        ok = window[window["ok"]]
        for metric, prefix in (("latency_ms", "latency"), ("ttft_ms", "ttft")):
            for p in (50, 90, 99):
                expected = percentile_interval(ok[metric].to_numpy(), p, 0.95).estimate
                assert stats[f"{prefix}_p{p}_ms"][w] == expected
        rates = throughput(window, 2.0)
        for column in ("requests_per_s", "output_tokens_per_s", "errors_per_s"):
            assert stats[column][w] == pytest.approx(rates[column], rel=1e-12)
        assert stats["n"][w] == len(window)
        assert stats["n_ok"][w] == len(ok)
    assert stats["n"].sum() == 20_000 - 7  # the cancelled requests are left out


def test_empty_windows_have_no_percentiles_and_zero_rates() -> None:
    run = synthetic_run(50, duration_s=10.0)
    df = run.requests
    moved = df.assign(sent_at=np.where(df["sent_at"] - T0 < 5.0, df["sent_at"], df["sent_at"] + 10))
    stats = window_stats(moved, start=T0, window_s=5.0)
    assert stats["n"].tolist()[1:3] == [0, 0]
    assert np.isnan(stats["latency_p50_ms"][1])
    assert stats["requests_per_s"][1] == 0.0
    assert stats["n"].sum() == 50


def test_requests_before_the_start_get_windows_of_their_own() -> None:
    run = synthetic_run(100, duration_s=10.0)
    stats = window_stats(run.requests, start=T0 + 3.0, window_s=1.0)
    assert stats["start_s"][0] == -3.0
    assert stats["n"].sum() == 100


def test_no_rows_give_an_empty_frame_with_the_columns() -> None:
    run = synthetic_run(10)
    stats = window_stats(run.requests.iloc[:0], start=T0, window_s=1.0)
    assert stats.empty
    assert list(stats.columns) == [f for f in WindowStats.__slots__]


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window_s"):
        window_stats(synthetic_run(5).requests, start=T0, window_s=0.0)


def test_grouped_percentiles_match_numpy_and_skip_nan() -> None:
    rng = np.random.default_rng(1)
    group = rng.integers(0, 4, 1000)
    values = rng.exponential(1.0, 1000)
    values[::7] = np.nan
    out = grouped_percentiles(group, values, 5, (50.0, 99.0))
    for g in range(4):
        chosen = values[(group == g) & ~np.isnan(values)]
        assert out[g].tolist() == np.percentile(chosen, [50.0, 99.0]).tolist()
    assert np.isnan(out[4]).all()


def test_inflight_steps_of_a_hand_made_run() -> None:
    # (0, 2), (1, 3), (1, 1.5), (2, 4): one ends at 2 as another starts, never counted twice.
    steps = inflight_steps(np.array([0.0, 1.0, 1.0, 2.0]), np.array([2.0, 3.0, 1.5, 4.0]))
    assert steps.times.tolist() == [0.0, 1.0, 1.5, 2.0, 3.0, 4.0]
    assert steps.counts.tolist() == [1, 3, 2, 2, 1, 0]
    mean, largest = inflight_per_window(steps, np.arange(0.0, 6.0))
    assert mean.tolist() == [1.0, 2.5, 2.0, 1.0, 0.0]
    assert largest.tolist() == [1.0, 3.0, 2.0, 1.0, 0.0]


def test_inflight_windows_not_aligned_with_events() -> None:
    steps = inflight_steps(np.array([0.0, 1.0, 1.0, 2.0]), np.array([2.0, 3.0, 1.5, 4.0]))
    mean, largest = inflight_per_window(steps, np.array([-2.0, -1.0, 0.5, 2.5, 10.0]))
    # [-1, 0.5): 0.5 s of one request; [0.5, 2.5): 0.5*1 + 0.5*3 + 0.5*2 + 0.5*2 = 4.
    assert mean.tolist() == pytest.approx([0.0, 0.5 / 1.5, 2.0, 2.0 / 7.5])
    assert largest.tolist() == [0.0, 1.0, 3.0, 2.0]


def test_inflight_ignores_intervals_without_an_end() -> None:
    steps = inflight_steps(np.array([0.0, 1.0, np.nan]), np.array([np.nan, 2.0, 3.0]))
    assert steps.counts.tolist() == [1, 0]
    mean, _ = inflight_per_window(inflight_steps(np.zeros(0), np.zeros(0)), np.array([0.0, 1.0]))
    assert mean.tolist() == [0.0]
