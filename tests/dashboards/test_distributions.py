from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboards import build_panels
from dashboards.distributions import CDF_GRID, N_BINS, cdf_points, log_histogram
from sla.files.run import Run
from sla.metrics import itl_ms
from sla.reading import read_run
from sla.spec import parse_spec
from sla.verdict import evaluate
from tests.dashboards import synthetic_run, trace, with_columns

SPEC = parse_spec(
    {
        "objectives": [
            {"metric": "ttft_ms", "stat": "p99", "max": 120},
            {"metric": "ttft_ms", "stat": "mean", "max": 60},
            {"metric": "itl_ms", "stat": "p90", "max": 45},
            {"metric": "latency_ms", "stat": "p50", "max": 150},
            {"metric": "error_rate", "max": 0.1},
        ]
    }
)


def _measured_ok(run: Run) -> pd.DataFrame:
    return read_run(run).measured_ok


def test_histogram_bins_are_log_spaced_and_count_every_sample() -> None:
    values = np.random.default_rng(0).lognormal(3.0, 1.0, 10_000)
    values[:5] = 0.0  # a zero gap lands in the first bin
    edges, counts = log_histogram(values)
    assert len(edges) == N_BINS + 1
    ratios = edges[1:] / edges[:-1]
    assert ratios == pytest.approx(np.full(N_BINS, ratios[0]))
    assert edges[0] == pytest.approx(values[values > 0].min(), rel=1e-12)
    assert edges[-1] == pytest.approx(values.max(), rel=1e-12)
    inside = values[(values > edges[20] * 1.000001) & (values < edges[21] * 0.999999)]
    assert counts[20] >= len(inside) and counts[20] <= len(inside) + 2
    assert counts.sum() == 10_000


def test_histogram_of_identical_values_still_has_width() -> None:
    edges, counts = log_histogram(np.full(10, 5.0))
    assert edges[0] < 5.0 < edges[-1]
    assert counts.sum() == 10


def test_cdf_is_a_quantile_grid_not_a_point_per_request() -> None:
    values = np.random.default_rng(1).exponential(10.0, 100_000)
    x, percent = cdf_points(values)
    assert len(x) == len(CDF_GRID) <= 300
    assert x.tolist() == np.quantile(values, CDF_GRID).tolist()
    assert percent[0] == 0.0 and percent[-1] == 100.0
    assert 99.999 in np.round(percent, 6)  # the tail is resolved to p99.999


def test_distribution_figures_hold_the_measured_samples() -> None:
    run = synthetic_run(5_000, error_share=0.05, cancelled=3)
    panels = {p.key: p for p in build_panels(run)}
    rows = _measured_ok(run)
    for metric in ("ttft_ms", "tpot_ms", "latency_ms"):
        fig = panels[f"distribution_{metric}"].figure
        values = rows[metric].dropna().to_numpy()
        assert trace(fig, "requests per bin").y.sum() == len(values)
        assert list(trace(fig, "CDF").x) == np.quantile(values, CDF_GRID).tolist()
        assert fig.layout.xaxis.type == "log" and fig.layout.xaxis2.type == "log"
    gaps = itl_ms(rows)
    assert trace(panels["distribution_itl_ms"].figure, "gaps per bin").y.sum() == len(gaps)


def test_sla_limits_are_vertical_lines_at_the_limit() -> None:
    run = synthetic_run(5_000, error_share=0.05)
    verdict = evaluate(SPEC, run)
    panels = {p.key: p for p in build_panels(run, verdict)}
    ttft = panels["distribution_ttft_ms"].figure
    statuses = {r.label: str(r.status) for r in verdict.objectives}
    p99 = [t for t in ttft.data if t.name == f"p99 ≤ 120 ms ({statuses['p99 ttft_ms']})"]
    assert [(list(t.x), t.xaxis) for t in p99] == [([120.0, 120.0], "x"), ([120.0, 120.0], "x2")]
    assert list(p99[1].y) == [0.0, 100.0]
    target = trace(ttft, f"p99 ≤ 120 ms ({statuses['p99 ttft_ms']}) target")
    assert (list(target.x), list(target.y)) == ([120.0], [99.0])
    assert any(t.name == f"mean ≤ 60 ms ({statuses['mean ttft_ms']})" for t in ttft.data)
    itl = panels["distribution_itl_ms"].figure
    lines = [t for t in itl.data if t.name.startswith("p90 ≤ 45 ms") and t.mode != "markers"]
    assert [list(t.x) for t in lines] == [[45.0, 45.0]] * 2
    latency = panels["distribution_latency_ms"].figure
    assert any(t.name.startswith("p50 ≤ 150 ms") for t in latency.data)
    tpot = panels["distribution_tpot_ms"].figure
    assert [t.name for t in tpot.data] == ["requests per bin", "CDF"]  # no objective on it
    assert "Vertical lines" in panels["distribution_ttft_ms"].note


def test_a_metric_without_samples_has_no_distribution() -> None:
    run = synthetic_run(1_000, gaps_per_request=0)
    run = with_columns(run, output_tokens=np.ones(1_000, dtype=np.int32))
    keys = {p.key for p in build_panels(run)}
    assert "distribution_itl_ms" not in keys
    assert "distribution_tpot_ms" not in keys  # tpot needs >= 2 output tokens
    assert {"distribution_ttft_ms", "distribution_latency_ms"} <= keys
