from __future__ import annotations

import math

import numpy as np
import pytest

from dashboards import build_panels
from dashboards.sla_panel import bar_text, headroom_bounds_pct, headroom_pct, sla_panel
from sla.objectives import Status
from sla.spec import parse_spec
from sla.verdict import evaluate
from tests.dashboards import synthetic_run, with_meta

SPEC = parse_spec(
    {
        "name": "chat <i>x</i>",
        "objectives": [
            {"metric": "ttft_ms", "stat": "p99", "max": 1000},
            {"metric": "latency_ms", "stat": "p50", "max": 50},
            {"metric": "throughput_rps", "min": 10},
            {"metric": "error_rate", "max": 0},
        ],
    }
)


def test_each_objective_is_a_bar_of_its_headroom() -> None:
    run = synthetic_run(3_000, error_share=0.01)
    verdict = evaluate(SPEC, run)
    panel = sla_panel(verdict)
    assert panel is not None and panel.key == "sla"
    assert panel.title == "SLA chat <i>x</i>: FAIL"  # plain text: the report escapes it
    assert panel.figure.layout.title.text == "SLA chat &lt;i&gt;x&lt;/i&gt;: FAIL"
    bars = panel.figure.data[0]
    results = verdict.objectives
    assert list(bars.x) == [np.nan_to_num(r.margin_rel * 100.0) for r in results]
    assert bars.y[0].startswith("p99 ttft_ms: ") and bars.y[0].endswith("(limit ≤ 1000 ms)")
    assert [s for s in bars.marker.color] == ["#009E73", "#CC3311", "#009E73", "#CC3311"]
    assert bar_text(results[1]).startswith("FAIL, -")
    assert "FAIL at 95% confidence" in panel.note


def test_headroom_reads_the_same_way_for_max_and_min_limits() -> None:
    verdict = evaluate(SPEC, synthetic_run(3_000))
    ttft, latency, rate, errors = verdict.objectives
    assert headroom_pct(ttft) == pytest.approx((1000 - ttft.observed) / 10.0)
    assert headroom_pct(latency) < 0 and latency.status is Status.FAIL
    assert headroom_pct(rate) == pytest.approx((rate.observed - 10) * 10.0)
    assert rate.ci_low is not None and rate.ci_high is not None and ttft.ci_high is not None
    worst, best = headroom_bounds_pct(rate)  # a min limit: the low bound is the worst case
    assert worst == pytest.approx((rate.ci_low - 10) * 10.0)
    assert best == pytest.approx((rate.ci_high - 10) * 10.0)
    worst, best = headroom_bounds_pct(ttft)  # a max limit: the high bound is the worst case
    assert worst == pytest.approx((1000 - ttft.ci_high) / 10.0)
    assert math.isnan(headroom_pct(errors))  # a limit of 0 has no relative headroom
    assert bar_text(errors) == str(errors.status)


def test_no_verdict_no_sla_panel() -> None:
    run = synthetic_run(200)
    assert sla_panel(None) is None
    assert "sla" not in {p.key for p in build_panels(run)}
    assert build_panels(run, evaluate(SPEC, run))[0].key == "sla"


def test_a_saturated_generator_is_said_in_the_title() -> None:
    run = with_meta(synthetic_run(200), generator={"saturated": True})
    panel = sla_panel(evaluate(SPEC, run))
    assert panel is not None and "load generator saturated" in panel.title
