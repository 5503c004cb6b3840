from __future__ import annotations

import numpy as np
import pytest

from dashboards import comparison_panels
from dashboards.compare import CHANGE_COLOURS
from dashboards.distributions import CDF_GRID
from sla.compare import Change, compare
from sla.files.run import Run
from sla.reading import read_run
from tests.dashboards import synthetic_run, with_columns


def _runs() -> tuple[Run, Run]:
    baseline = synthetic_run(4_000, seed=1)
    candidate = synthetic_run(4_000, seed=2)
    slower = candidate.requests["sent_at"] + 1.3 * (
        candidate.requests["done_at"] - candidate.requests["sent_at"]
    )
    return baseline, with_columns(candidate, done_at=slower)


def test_the_delta_chart_draws_each_change_with_its_interval() -> None:
    baseline, candidate = _runs()
    comparison = compare(baseline, candidate, n_boot=300)
    panels = {p.key: p for p in comparison_panels(baseline, candidate, comparison)}
    bars = panels["compare_changes"].figure.data[0]
    changes = [c for c in comparison.changes if c.label != "error_rate"]  # points: the table's
    assert [c.ci_kind for c in changes] == ["relative"] * len(changes)
    assert list(bars.y) == [c.label for c in changes]
    assert list(bars.x) == pytest.approx([c.change_rel * 100.0 for c in changes])
    p50 = next(i for i, c in enumerate(changes) if c.label == "p50 latency_ms")
    assert changes[p50].verdict is Change.REGRESSED
    assert bars.marker.color[p50] == CHANGE_COLOURS[Change.REGRESSED]
    c = changes[p50]
    assert c.ci_low is not None and c.ci_high is not None
    assert bars.error_x.array[p50] == pytest.approx((c.ci_high - c.change_rel) * 100.0)
    assert bars.error_x.arrayminus[p50] == pytest.approx((c.change_rel - c.ci_low) * 100.0)
    tolerance = sorted(s.x0 for s in panels["compare_changes"].figure.layout.shapes)
    assert tolerance == [-10.0, 0.0, 10.0]


def test_cdf_overlays_hold_both_runs() -> None:
    baseline, candidate = _runs()
    comparison = compare(baseline, candidate, n_boot=100)
    panels = {p.key: p for p in comparison_panels(baseline, candidate, comparison)}
    assert {"compare_cdf_ttft_ms", "compare_cdf_itl_ms", "compare_cdf_tpot_ms"} < set(panels)
    fig = panels["compare_cdf_latency_ms"].figure
    for run, trace in zip((baseline, candidate), fig.data, strict=True):
        values = read_run(run).measured_ok["latency_ms"].to_numpy()
        assert list(trace.x) == np.quantile(values, CDF_GRID).tolist()
        assert trace.name.endswith(f"(n={len(values):,})")
    assert fig.layout.xaxis.type == "log"


def test_a_metric_neither_run_has_gets_no_overlay() -> None:
    baseline, candidate = _runs()
    baseline = with_columns(baseline, first_token_at=np.nan)
    candidate = with_columns(candidate, first_token_at=np.nan)
    comparison = compare(baseline, candidate, n_boot=50)
    keys = [p.key for p in comparison_panels(baseline, candidate, comparison)]
    assert keys[0] == "compare_changes"
    assert "compare_cdf_ttft_ms" not in keys and "compare_cdf_latency_ms" in keys
