from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loadtests.recording.recorder import RequestRecorder, finish_run_json, start_run_json
from sla.files.run import CANCELLED_ERROR, RequestRecord, Run, load_run
from sla.files.verdict import load_verdict, write_verdict
from sla.metrics import with_request_metrics
from sla.objectives import ObjectiveResult, Status
from sla.spec import Spec, parse_spec
from sla.stats import order_statistic_ranks, z_value
from sla.table import format_table
from sla.verdict import (
    EXIT_FAIL,
    EXIT_INCONCLUSIVE,
    EXIT_PASS,
    EXIT_SATURATED,
    Verdict,
    evaluate,
    exit_code,
)

NAN = float("nan")
T0 = 1_764_400_000.0


def req(
    sent_s: float,
    latency_ms: float,
    *,
    ttft_ms: float | None = None,
    tokens: int | None = 10,
    gaps_ms: Sequence[float] = (),
    endpoint: str = "chat",
    status: int = 200,
    error: str | None = None,
) -> RequestRecord:
    """A request sent ``sent_s`` seconds after T0 (closed loop)."""
    sent = T0 + sent_s
    first = NAN if ttft_ms is None else sent + ttft_ms / 1000.0
    return RequestRecord(
        request_id=f"r{sent_s}",
        worker="w0",
        endpoint=endpoint,
        scheduled_at=NAN,
        sent_at=sent,
        first_token_at=first,
        done_at=sent + latency_ms / 1000.0,
        status=status,
        error=error,
        input_tokens=8,
        output_tokens=tokens,
        output_tokens_source="usage",
        chunk_count=len(gaps_ms) + 1,
        chunk_gaps_ms=list(gaps_ms),
    )


def write_run(
    path: Path,
    records: Sequence[RequestRecord],
    *,
    duration_s: float = 100.0,
    warmup_s: float = 0.0,
    scenario: str = "chat",
    saturated: bool = False,
) -> Path:
    """A run directory written by the real recorder: started at T0, ended at T0 + duration."""
    meta = {"scenario": scenario, "started_at": T0, "measured_from": T0 + warmup_s}
    start_run_json(path, meta)
    recorder = RequestRecorder(path)
    for record in records:
        recorder.add(record)
    recorder.close()
    finish_run_json(
        path,
        {"status": "complete", "ended_at": T0 + duration_s, "generator": {"saturated": saturated}},
    )
    return path


def latency_run(path: Path, latencies_ms: Iterable[float], **kwargs: Any) -> Run:
    """One request per latency, spread evenly over the run."""
    values = list(latencies_ms)
    duration = float(kwargs.pop("duration_s", 100.0))
    step = duration / (len(values) + 1)
    records = [req((i + 1) * step, float(x)) for i, x in enumerate(values)]
    return load_run(write_run(path, records, duration_s=duration, **kwargs))


def spec_of(*objectives: dict[str, Any], **top: Any) -> Spec:
    return parse_spec({"name": "t", "objectives": list(objectives), **top}, source="t.yaml")


def only(verdict: Verdict) -> ObjectiveResult:
    assert len(verdict.objectives) == 1
    return verdict.objectives[0]


def judged_latencies(run: Run) -> np.ndarray[Any, np.dtype[np.float64]]:
    return with_request_metrics(run.requests)["latency_ms"].to_numpy()


# --- percentiles --------------------------------------------------------------------------


@pytest.mark.parametrize("stat", ["p50", "p90", "p99", "p99.9", "p37.5"])
def test_percentile_equals_numpy_and_bounds_are_order_statistics(tmp_path: Path, stat: str) -> None:
    rng = np.random.default_rng(7)
    run = latency_run(tmp_path, rng.lognormal(5.0, 0.6, size=4000))
    result = only(evaluate(spec_of({"metric": "latency_ms", "stat": stat, "max": 1e6}), run))

    values = judged_latencies(run)
    percent = float(stat[1:])
    assert result.observed == np.percentile(values, percent)
    k_low, k_high = order_statistic_ranks(len(values), percent / 100.0, 0.95)
    ordered = np.sort(values)
    assert k_low is not None and k_high is not None
    assert result.ci_low == ordered[k_low - 1]
    assert result.ci_high == ordered[k_high - 1]
    assert result.n == 4000
    assert result.status is Status.PASS


def test_pass_and_fail_on_hand_computed_values(tmp_path: Path) -> None:
    # 1000 latencies 1, 2, ..., 1000 ms: p90 = 900.1 ms (numpy linear: h = 999 * 0.9 = 899.1).
    run = latency_run(tmp_path, np.arange(1, 1001))
    verdict = evaluate(
        spec_of(
            {"metric": "latency_ms", "stat": "p90", "max": 950},
            {"metric": "latency_ms", "stat": "p90", "max": 850},
            {"metric": "latency_ms", "stat": "p90", "max": 905},
        ),
        run,
    )
    passed, failed, straddled = verdict.objectives
    assert passed.observed == pytest.approx(900.1, abs=1e-3)
    assert passed.status is Status.PASS
    assert passed.margin == pytest.approx(49.9, abs=1e-3)
    assert passed.margin_rel == pytest.approx(49.9 / 950, abs=1e-6)
    assert failed.status is Status.FAIL
    assert failed.margin == pytest.approx(-50.1, abs=1e-3)
    # p90 of n=1000 at 95%: the bounds are the 884th and 916th smallest values (binomial
    # ranks, checked by exact summation with math.comb in test_stats).
    assert order_statistic_ranks(1000, 0.9, 0.95) == (884, 916)
    assert failed.ci_low == pytest.approx(884.0, abs=1e-3)
    assert failed.ci_high == pytest.approx(916.0, abs=1e-3)
    assert straddled.status is Status.INCONCLUSIVE
    assert "includes the limit" in straddled.message
    assert verdict.status is Status.FAIL


def test_failure_message_reads_like_the_issue(tmp_path: Path) -> None:
    run = latency_run(tmp_path, np.arange(1, 1001))
    result = only(evaluate(spec_of({"metric": "latency_ms", "stat": "p90", "max": 850}), run))
    pattern = r"\[p90 latency_ms\] 900\.1 ms > 850 ms \(n=1000, 95% CI 884–916\)"
    assert re.fullmatch(pattern, result.message), result.message


def test_p99_from_50_requests_is_inconclusive_and_says_how_many_are_needed(tmp_path: Path) -> None:
    run = latency_run(tmp_path, np.linspace(10, 20, 50))
    result = only(evaluate(spec_of({"metric": "latency_ms", "stat": "p99", "max": 450}), run))

    assert result.status is Status.INCONCLUSIVE
    assert result.ci_high is None
    assert result.observed == np.percentile(judged_latencies(run), 99)
    assert "n=50 is too few to bound p99 at 95% confidence; needs n ≥ 299" in result.message


def test_p99_from_50_requests_can_still_fail(tmp_path: Path) -> None:
    # Every one of 50 requests above the limit: P(that | p99 <= limit) <= 0.01 ** 50.
    run = latency_run(tmp_path, np.linspace(500, 600, 50))
    result = only(evaluate(spec_of({"metric": "latency_ms", "stat": "p99", "max": 450}), run))
    assert result.status is Status.FAIL


def test_p99_passes_from_299_requests_but_not_298(tmp_path: Path) -> None:
    spec = spec_of({"metric": "latency_ms", "stat": "p99", "max": 450})
    enough = latency_run(tmp_path / "a", np.full(299, 100.0))
    too_few = latency_run(tmp_path / "b", np.full(298, 100.0))
    assert only(evaluate(spec, enough)).status is Status.PASS
    assert only(evaluate(spec, too_few)).status is Status.INCONCLUSIVE


def test_min_limit_mirrors_max(tmp_path: Path) -> None:
    run = latency_run(tmp_path, np.arange(1, 1001))
    verdict = evaluate(
        spec_of(
            {"metric": "latency_ms", "stat": "p10", "min": 50},
            {"metric": "latency_ms", "stat": "p10", "min": 150},
            {"metric": "latency_ms", "stat": "p10", "min": 100},
        ),
        run,
    )
    assert [r.status for r in verdict.objectives] == [
        Status.PASS,
        Status.FAIL,
        Status.INCONCLUSIVE,
    ]
    assert verdict.objectives[0].margin == pytest.approx(100.9 - 50, abs=1e-3)


# --- mean, max, min -----------------------------------------------------------------------


def test_mean_uses_the_clt_bound_and_needs_30_samples(tmp_path: Path) -> None:
    values = np.arange(1, 41, dtype=float)  # mean 20.5, sd 11.69
    run = latency_run(tmp_path / "a", values)
    result = only(evaluate(spec_of({"metric": "latency_ms", "stat": "mean", "max": 25}), run))
    half = z_value(0.95) * np.std(values, ddof=1) / math.sqrt(40)
    assert result.observed == pytest.approx(20.5, abs=1e-3)
    assert result.ci_high == pytest.approx(20.5 + half, abs=1e-3)
    assert result.status is Status.PASS  # 20.5 + 3.04 <= 25

    small = latency_run(tmp_path / "b", values[:29])
    result = only(evaluate(spec_of({"metric": "latency_ms", "stat": "mean", "max": 1e6}), small))
    assert result.status is Status.INCONCLUSIVE
    assert "a mean needs n ≥ 30 (n=29)" in result.message


def test_max_and_min_stats_compare_the_extreme_directly(tmp_path: Path) -> None:
    run = latency_run(tmp_path, [5.0, 7.0, 30.0])
    verdict = evaluate(
        spec_of(
            {"metric": "latency_ms", "stat": "max", "max": 31},
            {"metric": "latency_ms", "stat": "max", "max": 29},
            {"metric": "latency_ms", "stat": "min", "min": 4},
        ),
        run,
    )
    assert [r.status for r in verdict.objectives] == [Status.PASS, Status.FAIL, Status.PASS]
    assert verdict.objectives[1].observed == pytest.approx(30.0, abs=1e-3)
    assert verdict.objectives[1].ci_low is None
    assert verdict.objectives[1].message.endswith("(n=3)")


# --- rates and proportions ----------------------------------------------------------------


def _mixed_run(path: Path) -> Run:
    """300 requests, 3 failed, over a 100 s window; 10 output tokens each."""
    records = [
        req(i * 0.3, 100.0, status=500 if i < 3 else 200, error="HTTP 500" if i < 3 else None)
        for i in range(300)
    ]
    return load_run(write_run(path, records))


def test_error_rate_counts_every_request_with_a_wilson_bound(tmp_path: Path) -> None:
    run = _mixed_run(tmp_path)
    result = only(evaluate(spec_of({"metric": "error_rate", "max": 0.05}), run))

    p, n, z = 3 / 300, 300, z_value(0.95)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert result.observed == pytest.approx(0.01)
    assert result.n == 300
    assert result.ci_low == pytest.approx(centre - half)
    assert result.ci_high == pytest.approx(centre + half)
    assert result.status is Status.PASS
    assert "[error_rate] 1% ≤ 5%" in result.message


def test_error_rate_with_few_requests_says_how_many_would_settle_it(tmp_path: Path) -> None:
    run = latency_run(tmp_path, np.full(100, 10.0))
    result = only(evaluate(spec_of({"metric": "error_rate", "max": 0.01}), run))
    # No errors: the upper bound z^2 / (n + z^2) is 2.6% at n = 100; <= 1% needs n >= 268.
    assert result.status is Status.INCONCLUSIVE
    assert "about 268 requests would settle it" in result.message


def test_throughput_over_the_measured_window(tmp_path: Path) -> None:
    run = _mixed_run(tmp_path)
    verdict = evaluate(
        spec_of(
            {"metric": "throughput_rps", "min": 2.5},
            {"metric": "output_tokens_per_s", "min": 40},
        ),
        run,
    )
    rps, tokens = verdict.objectives
    z = z_value(0.95)
    assert rps.observed == pytest.approx(297 / 100)
    assert rps.ci_low == pytest.approx((297 - z * math.sqrt(297)) / 100)
    assert rps.status is Status.PASS  # 2.97 - 0.28 >= 2.5
    assert tokens.observed == pytest.approx(2970 / 100)
    assert tokens.ci_high == pytest.approx((2970 + z * math.sqrt(297 * 100)) / 100)
    assert tokens.status is Status.FAIL
    assert verdict.window_s == pytest.approx(100.0)


# --- goodput ------------------------------------------------------------------------------


def test_goodput_needs_every_per_request_limit_and_treats_missing_as_bad(tmp_path: Path) -> None:
    records = [
        req(1, 400, ttft_ms=100, tokens=11),  # tpot (400-100)/10 = 30: good
        req(2, 500, ttft_ms=100, tokens=5),  # tpot 100: bad
        req(3, 500, ttft_ms=300, tokens=11),  # ttft 300: bad
        req(4, 500, ttft_ms=None, tokens=11),  # not streamed: no ttft, bad
        req(5, 500, ttft_ms=100, tokens=11, status=500, error="HTTP 500"),  # error: bad
        req(6, 300, ttft_ms=50, tokens=6),  # tpot 50: bad
        req(7, 150, ttft_ms=50, tokens=11),  # tpot 10: good
        req(8, 100, ttft_ms=10, tokens=1),  # one token: no tpot, bad
    ]
    run = load_run(write_run(tmp_path, records, duration_s=10.0))
    spec = spec_of(
        {"metric": "goodput_ratio", "min": 0.5},
        {"metric": "goodput_rps", "min": 0.1},
        per_request={"ttft_ms": 200, "tpot_ms": 40},
    )
    verdict = evaluate(spec, run)
    ratio, rate = verdict.objectives
    assert verdict.counts.good == 2
    assert ratio.observed == pytest.approx(2 / 8)
    assert ratio.n == 8
    assert rate.observed == pytest.approx(2 / 10)


def test_per_request_itl_limits_the_largest_gap(tmp_path: Path) -> None:
    records = [
        req(1, 500, ttft_ms=100, gaps_ms=[20, 30, 20]),
        req(2, 500, ttft_ms=100, gaps_ms=[20, 90, 20]),
        req(3, 500, ttft_ms=100, gaps_ms=[]),
    ]
    run = load_run(write_run(tmp_path, records, duration_s=10.0))
    spec = spec_of({"metric": "goodput_ratio", "min": 0.1}, per_request={"itl_ms": 50})
    assert evaluate(spec, run).counts.good == 1


def test_itl_pools_every_gap_of_successful_requests(tmp_path: Path) -> None:
    records = [
        req(1, 500, ttft_ms=100, gaps_ms=[10, 20, 30]),
        req(2, 500, ttft_ms=100, gaps_ms=[40]),
        req(3, 500, ttft_ms=100, gaps_ms=[1000], status=500, error="HTTP 500"),
    ]
    run = load_run(write_run(tmp_path, records, duration_s=10.0))
    result = only(evaluate(spec_of({"metric": "itl_ms", "stat": "p50", "max": 100}), run))
    assert result.n == 4
    assert result.observed == np.percentile([10, 20, 30, 40], 50)


def test_a_metric_with_no_samples_is_inconclusive(tmp_path: Path) -> None:
    run = latency_run(tmp_path, np.full(400, 10.0))  # not streamed: no ttft at all
    result = only(evaluate(spec_of({"metric": "ttft_ms", "stat": "p50", "max": 100}), run))
    assert result.status is Status.INCONCLUSIVE
    assert result.n == 0
    assert "no samples" in result.message


# --- selection: warm-up, cancellations, filters -------------------------------------------


def test_warmup_of_run_and_spec_add_up_and_cancelled_requests_are_excluded(tmp_path: Path) -> None:
    records = [req(t, 1000.0 if t < 15 else 10.0) for t in range(100)]  # slow first 15 s
    records.append(req(99.5, 10.0, status=0, error=CANCELLED_ERROR))
    run = load_run(write_run(tmp_path, records, warmup_s=5.0))
    spec_no_warmup = spec_of({"metric": "latency_ms", "stat": "max", "max": 100})
    spec_warmup = spec_of({"metric": "latency_ms", "stat": "max", "max": 100}, warmup="10s")

    before = evaluate(spec_no_warmup, run)
    after = evaluate(spec_warmup, run)
    assert before.counts.recorded == 101
    assert before.counts.measured == 95  # sent at 5..99 s; the cancelled one is not measured
    assert only(before).status is Status.FAIL
    assert after.counts.measured == 85  # sent at 15..99 s
    assert after.counts.failed == 0
    assert only(after).status is Status.PASS
    assert after.window_s == pytest.approx(85.0)


def test_endpoint_filter_keeps_only_that_endpoint(tmp_path: Path) -> None:
    records = [req(i, 10.0) for i in range(50)] + [
        req(i + 0.5, 900.0, endpoint="embeddings") for i in range(50)
    ]
    run = load_run(write_run(tmp_path, records))
    spec = spec_of({"metric": "latency_ms", "stat": "max", "max": 20}, filters={"endpoint": "chat"})
    verdict = evaluate(spec, run)
    assert verdict.counts.measured == 50
    assert only(verdict).status is Status.PASS


def test_scenario_filter_that_does_not_match_the_run_leaves_nothing(tmp_path: Path) -> None:
    run = latency_run(tmp_path, np.full(400, 10.0), scenario="chat")
    spec = spec_of(
        {"metric": "latency_ms", "stat": "p50", "max": 20}, filters={"scenario": "kserve"}
    )
    verdict = evaluate(spec, run)
    assert verdict.counts.measured == 0
    assert verdict.status is Status.INCONCLUSIVE
    matching = spec_of(
        {"metric": "latency_ms", "stat": "p50", "max": 20}, filters={"scenario": "chat"}
    )
    assert evaluate(matching, run).status is Status.PASS


RATES = (
    {"metric": "throughput_rps", "min": 0.5},
    {"metric": "throughput_rps", "max": 100},
    {"metric": "output_tokens_per_s", "max": 5000},
    {"metric": "goodput_rps", "min": 0.5},
)


@pytest.mark.parametrize(
    ("filters", "matches"),
    [({"scenario": "nosuch"}, "scenario nosuch"), ({"endpoint": "chat"}, "endpoint chat")],
)
def test_a_rate_over_no_matching_request_is_inconclusive(
    tmp_path: Path, filters: dict[str, str], matches: str
) -> None:
    # An embeddings run judged under a filter that keeps none of it: a rate of nothing is
    # 0/s, which once passed a max and failed a min, on n=0, as `where` never did.
    records = [req(i + 0.5, 10.0, tokens=None, endpoint="embeddings") for i in range(99)]
    run = load_run(write_run(tmp_path, records))
    verdict = evaluate(spec_of(*RATES, filters=filters, per_request={"latency_ms": 50}), run)
    assert verdict.status is Status.INCONCLUSIVE
    for result in verdict.objectives:
        assert result.status is Status.INCONCLUSIVE and result.n == 0
        assert f"no samples: no request in the judged window matches {matches}" in result.message


def test_a_rate_of_tokens_without_token_counts_is_inconclusive(tmp_path: Path) -> None:
    # Embeddings and KServe answers have no output tokens: their rate is unknown, not 0.
    uncounted = load_run(
        write_run(tmp_path / "a", [req(i + 0.5, 10.0, tokens=None) for i in range(99)])
    )
    spec = spec_of(
        {"metric": "output_tokens_per_s", "max": 5000}, {"metric": "throughput_rps", "min": 0.5}
    )
    tokens, requests = evaluate(spec, uncounted).objectives
    assert tokens.status is Status.INCONCLUSIVE and tokens.n == 0
    assert "no token counts" in tokens.message
    assert requests.status is Status.PASS and requests.n == 99
    # A run whose requests all failed delivered 0 tokens indeed: that is a value.
    failed = [req(i + 0.5, 10.0, tokens=None, status=503, error="HTTP 503") for i in range(99)]
    result = only(
        evaluate(
            spec_of({"metric": "output_tokens_per_s", "min": 1}),
            load_run(write_run(tmp_path / "b", failed)),
        )
    )
    assert result.status is Status.FAIL and result.observed == 0.0


def test_a_spec_warm_up_longer_than_the_run_says_so(tmp_path: Path) -> None:
    run = latency_run(tmp_path, np.full(100, 10.0), duration_s=10.0)
    spec = spec_of(
        {"metric": "latency_ms", "stat": "p50", "max": 450},
        {"metric": "throughput_rps", "min": 1},
        warmup="1h",
    )
    verdict = evaluate(spec, run)
    assert verdict.status is Status.INCONCLUSIVE
    assert verdict.window_s == 0.0  # once -3590 s
    for result in verdict.objectives:
        assert result.status is Status.INCONCLUSIVE
        assert "the spec's warm-up (3600 s) is longer than the run's measured window (10.0 s)" in (
            result.message
        )
    assert "0 requests judged (0 ok, 0 failed) over an empty window;" in format_table(verdict)


def test_no_error_at_all_bounds_the_error_rate_at_exactly_0(tmp_path: Path) -> None:
    # Wilson's lower bound at 0 errors is 0; arithmetic left 3.5e-18 at some n, which
    # printed as "0.0000000000000003469%".
    for n in (3, 100, 170):
        run = latency_run(tmp_path / str(n), np.full(n, 10.0))
        result = only(evaluate(spec_of({"metric": "error_rate", "max": 0.05}), run))
        assert result.ci_low == 0.0
        assert "95% CI 0%–" in result.message


# --- overall status, exit codes, outputs --------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "saturated", "allow", "expected"),
    [
        ((100,), False, False, EXIT_PASS),
        ((100, 1), False, False, EXIT_FAIL),
        ((100, 1), True, False, EXIT_FAIL),  # FAIL wins over saturation
        ((100,), True, False, EXIT_SATURATED),  # saturation wins over PASS
        ((10,), False, False, EXIT_INCONCLUSIVE),
        ((10,), False, True, EXIT_PASS),
        ((10,), True, True, EXIT_SATURATED),
    ],
)
def test_exit_code_precedence(
    tmp_path: Path, limits: tuple[float, ...], saturated: bool, allow: bool, expected: int
) -> None:
    # Latencies 5..15 ms: p50 = 10 ms, its interval holds a limit of 10 (INCONCLUSIVE).
    run = latency_run(tmp_path, np.linspace(5, 15, 400), saturated=saturated)
    spec = spec_of(*({"metric": "latency_ms", "stat": "p50", "max": x} for x in limits))
    verdict = evaluate(spec, run)
    assert verdict.saturated is saturated
    assert exit_code(verdict, allow_inconclusive=allow) == expected


def test_a_saturated_run_is_never_a_pass(tmp_path: Path) -> None:
    # Its exit code was 4 while the table, verdict.json and reports said PASS.
    run = latency_run(tmp_path / "run", np.linspace(5, 15, 400), saturated=True)
    verdict = evaluate(spec_of({"metric": "latency_ms", "stat": "p50", "max": 100}), run)
    assert only(verdict).status is Status.PASS  # what its rows say
    assert verdict.status is Status.INCONCLUSIVE
    assert exit_code(verdict, allow_inconclusive=True) == EXIT_SATURATED
    table = format_table(verdict)
    assert table.splitlines()[0].endswith(": INCONCLUSIVE")
    assert "SATURATED LOAD GENERATOR, never a PASS: " in table
    path = write_verdict(tmp_path / "run", verdict)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert (data["status"], data["exit_code"]) == ("INCONCLUSIVE", EXIT_SATURATED)
    # A verdict.json written before said PASS: it reads back as what it was.
    path.write_text(json.dumps({**data, "status": "PASS"}), encoding="utf-8")
    loaded = load_verdict(tmp_path / "run")
    assert loaded is not None and loaded.status is Status.INCONCLUSIVE


def test_write_verdict_is_json_with_nulls_for_missing_values(tmp_path: Path) -> None:
    run = latency_run(tmp_path, np.linspace(10, 20, 50))
    spec = spec_of(
        {"metric": "latency_ms", "stat": "p99", "max": 450},
        {"metric": "latency_ms", "stat": "p50", "max": 450},
    )
    path = write_verdict(tmp_path, evaluate(spec, run))
    data = json.loads(path.read_text(encoding="utf-8"))
    assert path.name == "verdict.json"
    assert data["status"] == "INCONCLUSIVE"
    assert data["exit_code"] == EXIT_INCONCLUSIVE
    assert data["counts"]["measured"] == 50
    assert data["objectives"][0]["ci_high"] is None
    assert data["objectives"][1]["status"] == "PASS"
    assert data["spec_name"] == "t"


def test_format_table_lists_every_objective_and_the_reasons(tmp_path: Path) -> None:
    run = latency_run(tmp_path, np.arange(1, 1001), saturated=True)
    verdict = evaluate(
        spec_of(
            {"metric": "latency_ms", "stat": "p90", "max": 850},
            {"metric": "error_rate", "max": 0.01},
        ),
        run,
    )
    table = format_table(verdict)
    lines = table.splitlines()
    assert lines[0].endswith(": FAIL")
    assert any(
        re.match(r"p90 latency_ms +900\.1 ms +≤ 850 ms +-50\.1 ms \(-6%\) +1000 ", ln)
        for ln in lines
    )
    assert any(ln.startswith("error_rate ") and "+1 pp" in ln for ln in lines)
    assert "load generator was saturated" in table
    assert lines[-1] == verdict.objectives[0].message


def test_error_rate_max_zero_is_judged_on_the_run_itself(tmp_path: Path) -> None:
    clean = latency_run(tmp_path / "a", np.full(20, 10.0))
    dirty = _mixed_run(tmp_path / "b")
    spec = spec_of({"metric": "error_rate", "max": 0})
    passed, failed = only(evaluate(spec, clean)), only(evaluate(spec, dirty))
    assert passed.status is Status.PASS
    assert passed.message == "[error_rate] 0% ≤ 0% (n=20)"
    assert failed.status is Status.FAIL
    assert failed.ci_low is None


def test_a_killed_run_without_ended_at_uses_its_last_completion(tmp_path: Path) -> None:
    start_run_json(tmp_path, {"scenario": "chat", "started_at": T0, "measured_from": T0})
    recorder = RequestRecorder(tmp_path)
    for i in range(100):
        recorder.add(req(i * 0.5, 500.0))  # the last completes at T0 + 50 s
    recorder.flush()  # parts only, no close(): as after a hard kill
    run = load_run(tmp_path)
    assert run.from_parts
    verdict = evaluate(spec_of({"metric": "throughput_rps", "min": 1}), run)
    assert verdict.window_s == pytest.approx(50.0)
    assert only(verdict).observed == pytest.approx(100 / 50.0)


def test_rates_count_requests_that_ended_in_the_window(tmp_path: Path) -> None:
    # One 2 s request a second over a 10 s window after a 2 s warm-up, as a real open-loop
    # run records it: those still running at the end are cut off (cancelled).
    records = []
    for i in range(12):
        cut_off = i + 2.5 > 12.0
        records.append(
            req(
                i + 0.5,
                2000.0,
                status=0 if cut_off else 200,
                error=CANCELLED_ERROR if cut_off else None,
            )
        )
    run = load_run(write_run(tmp_path / "run", records, duration_s=12.0, warmup_s=2.0))
    spec = spec_of({"metric": "throughput_rps", "min": 0.1}, {"metric": "error_rate", "max": 0.5})

    verdict = evaluate(spec, run)

    # Ended in [2 s, 12 s]: the 10 requests sent at 0.5..9.5 s, two of them in the warm-up:
    # the true rate. By start only the 8 sent at 2.5..9.5 s would count: 20% low.
    assert verdict.window_s == 10.0
    assert verdict.objectives[0].observed == pytest.approx(1.0)
    # Proportions and latencies stay with the requests started in the window and not cut off.
    assert verdict.counts.measured == 8
    assert verdict.objectives[1].observed == 0.0


def test_an_itl_percentile_needs_enough_requests_not_just_gaps(tmp_path: Path) -> None:
    # 20 requests of 40 gaps: 800 gaps would bound a p90 if they were independent, but a
    # request's gaps move together, so the bound needs 29 requests.
    rng = np.random.default_rng(4)
    records = [
        req(i * 0.5, 500.0, ttft_ms=50.0, tokens=41,
            gaps_ms=(rng.gamma(25.0, 1.0, size=40) * rng.lognormal(0.0, 0.5)).tolist())
        for i in range(20)
    ]  # fmt: skip
    run = load_run(write_run(tmp_path / "run", records))
    result = evaluate(spec_of({"metric": "itl_ms", "stat": "p90", "max": 500}), run).objectives[0]
    assert result.n == 800
    assert result.status is Status.INCONCLUSIVE
    assert "needs ≥ 29 requests" in result.message
