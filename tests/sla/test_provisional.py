"""The SLA judged on live figures: provisional standing with sketch-widened bounds, and the
early stop that settles a FAIL under repeated looks and never stops a passing run."""

from __future__ import annotations

import math

import numpy as np

from loadtests.live.state import LiveState
from sla.files.run import RequestRecord
from sla.live import LiveSamples
from sla.objectives import Status
from sla.provisional import early_confidence, judge_live, settled_failures, stops_early
from sla.spec import parse_spec
from sla.stats import percentile_interval

SPEC = parse_spec(
    {
        "name": "live",
        "objectives": [
            {"metric": "ttft_ms", "stat": "p99", "max": 500},
            {"metric": "error_rate", "max": 0.05},
            {"metric": "throughput_rps", "min": 1000},
        ],
    }
)


def samples(ttft_ms: np.ndarray, failed: int = 0) -> LiveSamples:
    s = LiveSamples()
    s.latency["ttft_ms"].add_all(ttft_ms.tolist())
    s.n = len(ttft_ms) + failed
    s.failed = failed
    s.done_ok = len(ttft_ms)
    return s


def test_percentile_bounds_contain_the_exact_ones_and_the_status_matches() -> None:
    values = np.random.default_rng(1).lognormal(5.0, 0.3, size=4000)  # p99 ~ 300 ms
    results = judge_live(SPEC, {"chat": samples(values)}, scenario="chat", window_s=100.0)
    p99 = results[0]
    exact = percentile_interval(values, 99.0, 0.95)
    assert p99.status is Status.PASS and p99.message.startswith("provisional ")
    assert p99.ci_low is not None and exact.low is not None and p99.ci_low <= exact.low
    assert p99.ci_high is not None and exact.high is not None and p99.ci_high >= exact.high
    assert p99.ci_high <= exact.high * 1.03  # widened by the sketch's 1% (both ways), no more
    assert abs(p99.observed - exact.estimate) <= 0.01 * exact.estimate
    assert results[1].status is Status.PASS and results[1].n == 4000
    assert results[2].status is Status.FAIL  # 40 req/s < 1000: provisional, never a stop


def test_a_clearly_failing_stream_is_settled_and_a_rate_never_stops_a_run() -> None:
    values = np.random.default_rng(2).lognormal(6.7, 0.3, size=600)  # median ~ 800 ms
    failed = settled_failures(
        SPEC, {"chat": samples(values)}, scenario="chat", window_s=30.0, looks=30
    )
    assert len(failed) == 1 and failed[0].startswith("p99 ttft_ms FAIL settled at 99.8333%")


def test_a_passing_stream_never_stops_early_over_all_its_looks() -> None:
    # 30 runs of 60 looks each, its median 5% under the limit: no look settles a FAIL.
    spec = parse_spec({"objectives": [{"metric": "ttft_ms", "stat": "p50", "max": 100}]})
    for seed in range(30):
        stream = np.random.default_rng(seed).normal(95.0, 10.0, size=60 * 20)
        live = LiveSamples()
        for look in range(60):
            live.latency["ttft_ms"].add_all(stream[look * 20 : (look + 1) * 20].tolist())
            live.n = live.latency["ttft_ms"].n
            assert not settled_failures(spec, {"e": live}, scenario="s", window_s=None, looks=60)


def test_repeated_looks_keep_the_wrong_fail_rate_under_the_specs_error() -> None:
    # An error rate exactly at its limit (not a FAIL): one look at 95% each time would stop
    # ~27% of these runs (54 of 200 seeds); split across the 60 looks, at most 1 - c = 5%.
    spec = parse_spec({"objectives": [{"metric": "error_rate", "max": 0.05}]})
    stopped = 0
    for seed in range(100):
        fails = np.cumsum(np.random.default_rng(seed).random(60 * 50) < 0.05)
        live = LiveSamples()
        for look in range(60):
            live.n = (look + 1) * 50
            live.failed = int(fails[live.n - 1])
            if settled_failures(spec, {"e": live}, scenario="s", window_s=None, looks=60):
                stopped += 1
                break
    assert stopped <= 5


def test_early_confidence_splits_the_error_across_the_looks() -> None:
    assert early_confidence(0.95, 10) == 0.995
    assert early_confidence(0.95, 0) == 0.95


def test_filters_pool_endpoints_and_a_turn_filter_waits_for_the_end() -> None:
    spec = parse_spec(
        {
            "filters": {"endpoint": "chat"},
            "objectives": [
                {"metric": "ttft_ms", "stat": "max", "max": 50},
                {"metric": "ttft_ms", "stat": "max", "max": 50, "where": {"turn": ">1"}},
            ],
        }
    )
    live = {"chat": samples(np.array([10.0, 20.0])), "embed": samples(np.array([900.0]))}
    by_endpoint, by_turn = judge_live(spec, live, scenario="chat", window_s=1.0)
    assert by_endpoint.status is Status.PASS and by_endpoint.observed == 20.0
    assert by_turn.status is Status.INCONCLUSIVE and "judged at the end" in by_turn.message


def embeddings_state(n: int = 100) -> LiveState:
    """The live state of ``n`` embedding requests, one every 0.1 s: no output tokens."""
    state = LiveState(measured_from=0.0)
    for i in range(n):
        sent = i * 0.1
        record = RequestRecord(
            request_id=f"r{i}",
            worker="local",
            endpoint="embeddings",
            scheduled_at=math.nan,
            sent_at=sent,
            first_token_at=math.nan,
            done_at=sent + 0.01,
            status=200,
            error=None,
            input_tokens=16,
            output_tokens=None,
            output_tokens_source=None,
            chunk_count=1,
            chunk_gaps_ms=[],
        )
        state.add_record(record)
    return state


def test_live_rates_over_no_request_or_no_token_counts_are_inconclusive() -> None:
    # As at the end: a rate of nothing is no rate, and an embedding tells no tokens.
    objectives = [
        {"metric": "throughput_rps", "min": 0.5},
        {"metric": "output_tokens_per_s", "max": 5000},
    ]
    state = embeddings_state()
    for filters in ({"endpoint": "chat"}, {"scenario": "chat"}):
        spec = parse_spec({"filters": filters, "objectives": objectives})
        for result in judge_live(spec, state.window, scenario="embeddings", window_s=10.0):
            assert result.status is Status.INCONCLUSIVE and result.n == 0
            assert "no samples: no request in the judged window matches" in result.message
    spec = parse_spec({"objectives": objectives})
    requests, tokens = judge_live(spec, state.window, scenario="embeddings", window_s=10.0)
    assert requests.status is Status.PASS and requests.observed == 10.0
    assert tokens.status is Status.INCONCLUSIVE and "no token counts" in tokens.message


def test_no_error_at_all_bounds_the_live_error_rate_at_exactly_0() -> None:
    spec = parse_spec({"objectives": [{"metric": "error_rate", "max": 0.05}]})
    for n in (3, 100, 170):
        live = samples(np.full(n, 10.0))
        (result,) = judge_live(spec, {"e": live}, scenario="s", window_s=10.0)
        assert result.ci_low == 0.0


def test_an_itl_percentile_never_stops_a_run_early() -> None:
    # Its live bounds treat a request's gaps as independent: too narrow to stop a run on.
    spec = parse_spec(
        {"name": "t", "objectives": [
            {"metric": "itl_ms", "stat": "p99", "max": 50},
            {"metric": "itl_ms", "stat": "mean", "max": 50},
            {"metric": "ttft_ms", "stat": "p99", "max": 50},
        ]},
        source="t.yaml",
    )  # fmt: skip
    assert [stops_early(o) for o in spec.objectives] == [False, True, True]
