"""The pure parts of a capacity search's result: sample sizes, extended steps judged as one
run, step summaries, the knee, cost, and capacity.json."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from loadtests.capacity.judging import Judged, judge_segments
from sla.capacity import (
    backlog,
    cost_at,
    find_knee,
    latest_by_load,
    min_samples,
    summarize_step,
    unsustainable,
)
from sla.files.capacity import (
    CAPACITY_FILE,
    Backlog,
    CapacityError,
    CapacityResult,
    Knee,
    Percentiles,
    StepResult,
    load_capacity,
    write_capacity,
)
from sla.files.run import (
    CANCELLED_ERROR,
    REQUEST_COLUMNS,
    REQUESTS_SCHEMA,
    RequestRecord,
    Run,
    requests_frame,
)
from sla.metrics import with_request_metrics
from sla.objectives import Status
from sla.samples import judged_samples
from sla.spec import load_spec
from sla.verdict import evaluate, evaluate_segments
from tests.sla.test_verdict import T0, req, spec_of

EXAMPLES = Path(__file__).resolve().parents[2] / "sla" / "examples"
P_STATS = ("p50", "p90", "p99")


def run_of(
    records: Sequence[RequestRecord],
    *,
    name: str = "seg",
    started_s: float = 0.0,
    warmup_s: float = 0.0,
    ended_s: float = 100.0,
    saturated: bool = False,
) -> Run:
    """A run built in memory, its requests typed exactly as ``load_run`` types them."""
    columns = {column: [getattr(r, column) for r in records] for column in REQUEST_COLUMNS}
    meta = {
        "schema_version": 1,
        "status": "complete",
        "scenario": "chat",
        "started_at": T0 + started_s,
        "measured_from": T0 + started_s + warmup_s,
        "ended_at": T0 + ended_s,
        "generator": {"saturated": saturated},
    }
    table = pa.table(columns, schema=REQUESTS_SCHEMA)
    return Run(Path(name), meta, requests_frame(table), None)


def floats(run: Run, metric: str) -> np.ndarray[Any, np.dtype[np.float64]]:
    return with_request_metrics(run.requests)[metric].to_numpy(dtype=np.float64)


# --- min_samples --------------------------------------------------------------------------


def test_min_samples_of_chat_interactive_is_what_a_p99_needs() -> None:
    # 0.99**298 > 5% >= 0.99**299: the largest of 299 samples bounds p99 at 95% confidence.
    assert min_samples(load_spec(EXAMPLES / "chat-interactive.yaml")) == 299


@pytest.mark.parametrize(
    ("objectives", "needed"),
    [
        ([{"metric": "latency_ms", "stat": "p50", "max": 500}], 5),  # 0.5**5 <= 5%
        (
            [
                {"metric": "latency_ms", "stat": "p50", "max": 500},
                {"metric": "ttft_ms", "stat": "p90", "max": 200},
            ],
            29,  # 0.9**29 <= 5% < 0.9**28
        ),
        ([{"metric": "ttft_ms", "stat": "p90", "min": 10}], 2),  # 0.1**2 <= 5%
        ([{"metric": "tpot_ms", "stat": "mean", "max": 40}], 30),
        ([{"metric": "throughput_rps", "min": 5}], 1),
        ([{"metric": "latency_ms", "stat": "max", "max": 900}], 1),
    ],
)
def test_min_samples_by_objective(objectives: list[dict[str, Any]], needed: int) -> None:
    assert min_samples(spec_of(*objectives)) == needed


def test_min_samples_of_an_error_rate_is_about_300_clean_requests() -> None:
    spec = spec_of({"metric": "error_rate", "max": 0.01})
    n = min_samples(spec)

    assert 250 <= n <= 300
    # n clean requests settle it, one fewer do not.
    assert evaluate(spec, clean_run(n)).status is Status.PASS
    assert evaluate(spec, clean_run(n - 1)).status is Status.INCONCLUSIVE


def clean_run(n: int) -> Run:
    return run_of([req(i * 0.01, 100.0) for i in range(n)], ended_s=n * 0.01)


# --- extended steps: segments judged as one ----------------------------------------------


def segment(
    started_s: float, warmup_s: float, window_s: float, *, saturated: bool = False, seed: int
) -> tuple[Run, list[RequestRecord]]:
    """A segment with warm-up rows, measured rows (one of them a 500; each ends inside the
    window) and a cancelled row; returns the run and its measured rows in order."""
    rng = np.random.default_rng(seed)
    begin = started_s + warmup_s
    warm = [req(started_s + warmup_s * f, 50.0) for f in (0.2, 0.7)]
    measured = [
        req(begin + i + 0.05, float(rng.uniform(100, 900)), ttft_ms=float(rng.uniform(20, 90)))
        for i in range(int(window_s))
    ]
    measured[3] = dataclasses.replace(measured[3], status=500, error="HTTP 500")
    cancelled = req(begin + window_s - 0.2, 5.0, status=0, error=CANCELLED_ERROR)
    run = run_of(
        [*warm, *measured, cancelled],
        name=f"seg-{seed}",
        started_s=started_s,
        warmup_s=warmup_s,
        ended_s=begin + window_s,
        saturated=saturated,
    )
    return run, measured


def originals(rows: list[RequestRecord], metric: str) -> np.ndarray[Any, np.dtype[np.float64]]:
    return floats(run_of(rows), metric)


def test_segments_pool_their_samples_with_exact_per_request_metrics() -> None:
    first, rows_a = segment(0.0, 2.0, 10.0, seed=1)
    second, rows_b = segment(100.0, 3.0, 20.0, seed=2)
    spec = spec_of({"metric": "throughput_rps", "min": 0.5})

    samples = judged_samples(spec, first, second)

    assert len(samples.rows) == 10 + 20  # no warm-up rows, no cancelled rows
    assert CANCELLED_ERROR not in set(samples.rows["error"].dropna())
    assert samples.window_s == 30.0
    for metric in ("latency_ms", "ttft_ms", "tpot_ms"):
        expected = np.concatenate([originals(rows_a, metric), originals(rows_b, metric)])
        np.testing.assert_array_equal(
            samples.rows[metric].to_numpy(dtype=np.float64, na_value=np.nan), expected
        )


def test_segments_judged_as_one_divide_rates_by_the_sum_of_the_windows() -> None:
    first, _ = segment(0.0, 2.0, 10.0, seed=3)
    second, _ = segment(100.0, 3.0, 20.0, seed=4)
    spec = spec_of({"metric": "throughput_rps", "min": 0.5}, {"metric": "error_rate", "max": 0.5})

    verdict = evaluate_segments(spec, [first, second])

    assert verdict.window_s == 30.0
    assert verdict.counts.measured == 30
    assert verdict.counts.recorded == 2 * (2 + 1) + 30
    assert verdict.counts.ok == 28  # one 500 in each segment
    assert verdict.objectives[0].observed == pytest.approx(28 / 30)
    assert verdict.objectives[1].observed == pytest.approx(2 / 30)
    assert not verdict.saturated
    # One segment alone is judged exactly as evaluate() judges it.
    assert evaluate_segments(spec, [first]) == evaluate(spec, first)


def test_the_spec_warm_up_is_dropped_from_every_segment() -> None:
    first, rows_a = segment(0.0, 2.0, 10.0, seed=5)
    second, rows_b = segment(100.0, 3.0, 20.0, seed=6)
    spec = spec_of({"metric": "throughput_rps", "min": 0.5}, warmup="1s")

    samples = judged_samples(spec, first, second)

    assert samples.window_s == 9.0 + 19.0
    assert len(samples.rows) == 9 + 19  # the row 0.05 s into each window is dropped
    assert len(samples.rate_rows) == 9 + 19  # ...and it also ended before the warm-up did
    kept = [*rows_a[1:], *rows_b[1:]]
    np.testing.assert_array_equal(
        samples.rows["latency_ms"].to_numpy(), originals(kept, "latency_ms")
    )


@pytest.mark.parametrize("which", [0, 1])
def test_one_saturated_segment_saturates_the_step(which: int) -> None:
    runs = [
        segment(0.0, 2.0, 10.0, seed=7, saturated=which == 0)[0],
        segment(100.0, 3.0, 20.0, seed=8, saturated=which == 1)[0],
    ]
    spec = spec_of({"metric": "throughput_rps", "min": 0.5})

    assert evaluate_segments(spec, runs).saturated


def test_a_step_whose_generator_saturated_is_never_a_pass() -> None:
    # Sends left 0-3 ms late (p90 3 ms): over a 1 ms --max-send-lag the generator saturated.
    spec = spec_of({"metric": "latency_ms", "stat": "p50", "max": 2000})

    def judged(max_send_lag_ms: float) -> Judged:
        options = SimpleNamespace(max_send_lag_ms=max_send_lag_ms, max_backlog_growth=math.inf)
        return judge_segments(spec, [open_loop_step()], options)  # type: ignore[arg-type]

    saturated = judged(1.0)
    assert saturated.saturation is not None and saturated.measurement.saturated
    assert saturated.measurement.objectives[0].status == "PASS"  # what its rows say
    assert saturated.measurement.status == "INCONCLUSIVE"
    assert judged(10.0).measurement.status == "PASS"


# --- summarize_step -----------------------------------------------------------------------

N_OK = 40


def open_loop_step() -> Run:
    """40 successful requests scheduled every 0.25 s over a 10 s window: request i has
    TTFT 100 + 10 i ms, latency 300 + 20 i ms, 11 output tokens (TPOT 20 + i ms) and leaves
    i % 4 ms late. Then two 500s, a cancelled request, and one in the warm-up."""
    records = []
    for i in range(N_OK):
        scheduled = T0 + 0.25 * i
        records.append(
            dataclasses.replace(
                req(0.0, 0.0),
                request_id=f"r{i}",
                scheduled_at=scheduled,
                sent_at=scheduled + (i % 4) / 1000.0,
                first_token_at=scheduled + (100 + 10 * i) / 1000.0,
                done_at=scheduled + (300 + 20 * i) / 1000.0,
                output_tokens=11,
            )
        )
    for at_s in (9.8, 9.9):
        failed = req(at_s, 30.0, tokens=5, status=500, error="HTTP 500")
        records.append(dataclasses.replace(failed, scheduled_at=failed.sent_at))
    records.append(req(9.95, 10.0, status=0, error=CANCELLED_ERROR))
    records.append(req(-1.0, 10.0))  # warm-up
    return run_of(records, started_s=-2.0, warmup_s=2.0, ended_s=10.0)


def test_summarize_step_matches_hand_computed_numbers() -> None:
    spec = spec_of(
        {"metric": "latency_ms", "stat": "p50", "max": 2000},
        {"metric": "error_rate", "max": 0.5},
        {"metric": "goodput_rps", "min": 1},
        per_request={"ttft_ms": 405},
    )

    verdict, summary = summarize_step(spec, [open_loop_step()])

    good = 31  # TTFT 100 + 10 i <= 405 for i <= 30
    assert summary.status == "PASS" == verdict.status.value
    assert summary.saturated is False
    assert summary.window_s == 10.0
    assert (summary.requests, summary.ok, summary.failed) == (42, 40, 2)
    assert summary.good == good
    # Rates count the requests that ended in the window: 0.25 i + 0.3 + 0.02 i <= 10 s
    # for i <= 35 (the later ones would have been cut off by the end of a real test).
    assert summary.throughput_rps == pytest.approx(36 / 10.0)
    assert summary.output_tokens_per_s == pytest.approx(36 * 11 / 10.0)  # 500s excluded
    assert summary.goodput_rps == pytest.approx(good / 10.0)  # all 31 good ones ended
    assert summary.goodput_ratio == pytest.approx(good / 42)
    assert summary.error_rate == pytest.approx(2 / 42)
    # Linear percentiles of an arithmetic sequence a + b i sit at a + b * q/100 * 39.
    expected = {"latency_ms": (300, 20), "ttft_ms": (100, 10), "tpot_ms": (20, 1)}
    for metric, (a, b) in expected.items():
        for stat in P_STATS:
            value = a + b * float(stat[1:]) / 100 * (N_OK - 1)
            assert getattr(getattr(summary, metric), stat) == pytest.approx(value, abs=1e-3), (
                metric,
                stat,
            )
    lags_ms = [i % 4 for i in range(N_OK)] + [0.0, 0.0]  # every row, failed ones too
    for stat in P_STATS:
        lag = float(np.percentile(lags_ms, float(stat[1:])))
        assert getattr(summary.schedule_lag_ms, stat) == pytest.approx(lag, abs=1e-3)
    labels = [o.label for o in summary.objectives]
    assert labels == ["p50 latency_ms", "error_rate", "goodput_rps"]
    assert summary.objectives[2].observed == summary.goodput_rps
    assert {o.status for o in summary.objectives} == {"PASS"}


def test_summarize_step_percentiles_equal_numpy() -> None:
    rng = np.random.default_rng(21)
    latencies = rng.lognormal(5.5, 0.5, size=500)
    run = run_of([req(0.1 * i, float(x)) for i, x in enumerate(latencies)], ended_s=50.0)

    _, summary = summarize_step(spec_of({"metric": "latency_ms", "stat": "p99", "max": 1e4}), [run])

    observed = floats(run, "latency_ms")
    for stat in P_STATS:
        assert getattr(summary.latency_ms, stat) == float(np.percentile(observed, float(stat[1:])))
        assert getattr(summary.latency_ms, stat) == pytest.approx(
            np.percentile(latencies, float(stat[1:])), abs=1e-3
        )


def test_summarize_step_without_per_request_limits_or_streaming() -> None:
    run = run_of([req(0.5 * i, 200.0, tokens=1) for i in range(20)], ended_s=10.0)
    spec = spec_of({"metric": "latency_ms", "stat": "p50", "max": 100})

    verdict, summary = summarize_step(spec, [run])

    assert summary.status == "FAIL" == verdict.status.value
    assert summary.good is None
    assert summary.goodput_rps is None and summary.goodput_ratio is None
    assert summary.ttft_ms is None  # no first token: not streamed
    assert summary.tpot_ms is None  # one output token
    assert summary.schedule_lag_ms is None  # closed loop
    assert summary.error_rate == 0.0
    assert summary.latency_ms.p50 == pytest.approx(200.0, abs=1e-3)


# --- knee ---------------------------------------------------------------------------------


def step_of(step: int = 1, load: float = 1.0, status: str = "PASS", **numbers: Any) -> StepResult:
    """A measured step (its other numbers None)."""
    values: dict[str, Any] = {"requests": 100, "ok": 100, "failed": 0, **numbers}
    return StepResult(step=step, load=load, phase="widen", status=status, saturated=False, **values)


def percentiles(p90: float) -> Percentiles:
    return Percentiles(1.0, p90, 2 * p90)


def steps_of(p90_by_load: dict[float, float | None], status: str = "PASS") -> list[StepResult]:
    return [
        step_of(
            i + 1,
            load,
            status,
            throughput_rps=load * 0.9,
            latency_ms=None if p90 is None else percentiles(p90),
        )
        for i, (load, p90) in enumerate(p90_by_load.items())
    ]


HOCKEY_STICK = {1.0: 100, 2.0: 100, 3.0: 101, 4.0: 102, 5.0: 103, 6.0: 400, 7.0: 700, 8.0: 1000}


def test_the_knee_of_a_hockey_stick_is_its_bend() -> None:
    steps = steps_of(dict(HOCKEY_STICK))
    steps.reverse()  # the order the steps ran in does not matter

    knee = find_knee(steps)

    assert knee == Knee(
        load=5.0,
        step=5,
        throughput_rps=4.5,
        latency_ms=103.0,
        metric="p90 latency_ms",
    )


def test_the_knee_uses_the_latest_step_at_each_load() -> None:
    steps = steps_of(dict(HOCKEY_STICK))
    # A quick step at 6 that read flat, then its confirmation (later) that did not; an
    # ERROR step and a step without latencies are left out.
    quick = replace(steps[5], step=9, status="INCONCLUSIVE", latency_ms=percentiles(100.0))
    error = step_of(10, 9.0, "ERROR", latency_ms=percentiles(5.0))
    blank = step_of(11, 10.0, "FAIL", latency_ms=None)
    confirm = replace(steps[5], step=12)
    ordered = [*steps, quick, error, blank, confirm]

    assert [s.step for s in latest_by_load(ordered)] == [1, 2, 3, 4, 5, 12, 7, 8, 11]
    assert (knee := find_knee(ordered)) is not None and knee.load == 5.0
    assert (knee := find_knee([*steps, quick])) is not None
    assert knee.load == 6.0  # had the quick step counted


@pytest.mark.parametrize(
    "curve",
    [
        {1.0: 100, 2.0: 150},  # fewer than three points
        {1.0: 100, 2.0: 150, 3.0: None},
        {1.0: 100, 2.0: 150, 3.0: 200, 4.0: 250, 5.0: 300},  # a straight line
        {1.0: 100, 2.0: 141, 3.0: 173, 4.0: 200, 5.0: 224},  # concave: no upward bend
        {1.0: 100, 2.0: 100, 3.0: 100},  # flat
    ],
)
def test_no_knee(curve: dict[float, float | None]) -> None:
    assert find_knee(steps_of(curve)) is None


def test_no_knee_on_straight_lines_through_awkward_numbers() -> None:
    # Rounding puts some points of these lines a hair below their chord: not a bend.
    rng = np.random.default_rng(5)
    for _ in range(200):
        loads = np.sort(rng.uniform(1.0, 1000.0, size=int(rng.integers(3, 12))))
        slope, base = rng.uniform(0.01, 10.0), rng.uniform(1.0, 500.0)
        curve = {float(x): float(slope * x + base) for x in loads}

        assert find_knee(steps_of(dict(curve))) is None, curve


# --- cost ---------------------------------------------------------------------------------


def test_cost_at_capacity() -> None:
    step = step_of(4, 12.0, throughput_rps=10.0, output_tokens_per_s=500.0)

    cost = cost_at(step, 3.6)

    assert cost is not None
    assert cost.per_1k_requests == pytest.approx(0.1)  # $0.001/s over 10 req/s, x 1000
    assert cost.per_1m_output_tokens == pytest.approx(2.0)  # $0.001/s over 500 tok/s, x 1e6
    assert (cost.per_hour, cost.at_load, cost.step) == (3.6, 12.0, 4)
    assert (cost.requests_per_s, cost.output_tokens_per_s) == (10.0, 500.0)


def test_cost_without_tokens_has_no_token_price() -> None:
    cost = cost_at(step_of(load=5, throughput_rps=2.0, output_tokens_per_s=0.0), 7.2)

    assert cost is not None
    assert cost.per_1k_requests == pytest.approx(1.0)
    assert cost.per_1m_output_tokens is None and cost.output_tokens_per_s is None


@pytest.mark.parametrize(
    ("step", "price"),
    [
        ({"throughput_rps": 10.0, "output_tokens_per_s": 500.0}, 0.0),
        ({"throughput_rps": 0.0, "output_tokens_per_s": 500.0}, 3.6),
        ({"throughput_rps": None, "output_tokens_per_s": 500.0}, 3.6),
        ({"output_tokens_per_s": 500.0}, 3.6),
    ],
)
def test_no_cost_without_a_price_or_a_throughput(step: dict[str, Any], price: float) -> None:
    assert cost_at(step_of(**step), price) is None


# --- capacity.json ------------------------------------------------------------------------


def result_of(**changes: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "kind": "capacity",
        "mode": "rate",
        "outcome": "found",
        "message": "capacity 40 req/s: PASS at 40 req/s, not at 42 req/s (5.0% apart)",
        "capacity": {"load": 40.0, "step": 6},
        "precision": 0.05,
        "knee": None,
        "steps": [{"step": 1, "load": 10.0, "phase": "widen", "status": "PASS"}],
    }
    result.update(changes)
    return result


def test_capacity_json_round_trip(tmp_path: Path) -> None:
    result = CapacityResult.from_dict(result_of())
    nan_step = replace(step_of(latency_ms=Percentiles(1.0, 2.0, 3.0)), throughput_rps=math.nan)
    path = write_capacity(tmp_path, replace(result, steps=(*result.steps, nan_step)))

    assert path == tmp_path / CAPACITY_FILE
    loaded = load_capacity(tmp_path)
    expected = replace(
        result, path=tmp_path, steps=(*result.steps, replace(nan_step, throughput_rps=None))
    )  # JSON has no NaN
    assert loaded == expected
    assert json.loads(path.read_text())["steps"][0] == {
        **result_of()["steps"][0],
        **{"thorough": False, "runs": [], "error": None, "saturated": False},
        **{"unsustainable": None, "saturation": None, "wall_s": None},
    }  # a step that measured nothing has no numbers
    assert load_capacity(path) == loaded  # the file itself works too
    assert not list(tmp_path.glob(".*.tmp"))


def write_raw(text: str | bytes) -> Callable[[Path], None]:
    def write(directory: Path) -> None:
        data = text.encode() if isinstance(text, str) else text
        (directory / CAPACITY_FILE).write_bytes(data)

    return write


def write_result(**changes: Any) -> Callable[[Path], None]:
    return write_raw(json.dumps({"schema_version": 1, **result_of(**changes)}))


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        (lambda d: None, "is missing; pass the directory of a capacity search"),
        (write_raw("{not json"), "is not valid JSON (Expecting property name"),
        (write_raw(b"\xff\xfe{}"), "is not valid JSON"),
        (write_raw("[1, 2]"), "must hold a JSON object, not list"),
        (write_result(kind="run"), "is not a slabench capacity result"),
        (write_result(schema_version=2), "uses capacity schema version 2 but this slabench"),
        (write_result(schema_version=None), "has no valid schema_version (got None)"),
        (write_result(schema_version=True), "has no valid schema_version (got True)"),
        (write_result(steps={"step": 1}), "'steps' must be a list of objects"),
        (write_result(steps=[1]), "'steps' must be a list of objects"),
        (write_result(outcome="great"), "unknown outcome 'great'"),
        (write_result(outcome=None), "unknown outcome None"),
        (write_result(mode="fast"), "mode must be one of rate, concurrency, got 'fast'"),
        (write_result(capacity={"load": "x"}), "capacity.load must be a number, got 'x'"),
        (write_result(capacity={"load": 4.0}), "capacity.step must be a whole number, got nothing"),
        (write_result(settings={"a": [1]}), "settings must be an object of numbers and text"),
        (write_result(borderline=[1, "2"]), "borderline[1] must be a number, got '2'"),
        (write_result(steps=[{"step": 1.5}]), "steps[0].step must be a whole number, got 1.5"),
        (
            write_result(
                steps=[
                    {
                        "step": 1,
                        "load": 1,
                        "phase": "widen",
                        "status": "PASS",
                        "requests": 3,
                        "ok": "3",
                    }
                ]
            ),
            "steps[0].ok must be a whole number",
        ),
    ],
)
def test_bad_capacity_files_are_one_line_errors(
    tmp_path: Path, setup: Callable[[Path], None], fragment: str
) -> None:
    setup(tmp_path)

    with pytest.raises(CapacityError) as info:
        load_capacity(tmp_path)

    message = str(info.value)
    assert fragment in message
    assert "\n" not in message
    assert str(tmp_path) in message


# --- backlog: is an open-loop step's load sustainable? ------------------------------------


def open_loop_run(service_s: float, rate_rps: float, window_s: float = 20.0) -> Run:
    """Constant arrivals served one at a time by a server taking ``service_s`` each (a
    D/D/1 queue); requests not done when the window ends are cut off (cancelled)."""
    records = []
    free_at = 0.0
    for i in range(int(rate_rps * window_s)):
        arrive = i / rate_rps
        free_at = max(free_at, arrive) + service_s
        done_ms = (free_at - arrive) * 1000.0
        cut_off = free_at > window_s
        rec = req(
            arrive,
            done_ms,
            status=0 if cut_off else 200,
            error=CANCELLED_ERROR if cut_off else None,
        )
        records.append(dataclasses.replace(rec, scheduled_at=rec.sent_at))
    return run_of(records, ended_s=window_s)


def test_a_server_that_keeps_up_has_no_backlog_growth() -> None:
    spec = spec_of({"metric": "latency_ms", "stat": "p50", "max": 1e6})
    run = open_loop_run(service_s=0.025, rate_rps=40.0)  # exactly at capacity

    growth = backlog(spec, [run])

    assert growth is not None
    assert growth.arrivals == 800
    assert abs(growth.growth) <= 1
    assert unsustainable(growth, 0.05) is None


def test_an_overloaded_step_is_not_sustainable_even_if_short() -> None:
    spec = spec_of({"metric": "latency_ms", "stat": "p50", "max": 1e6})
    run = open_loop_run(service_s=0.025, rate_rps=50.0)  # 25% over capacity

    growth = backlog(spec, [run])

    assert growth is not None
    assert growth.arrivals == 1000
    assert growth.completions == pytest.approx(800, abs=1)
    message = unsustainable(growth, 0.05)
    assert message is not None and "not sustainable" in message
    assert unsustainable(growth, 0.5) is None  # a tolerance above the 20% growth


def test_backlog_growth_within_poisson_noise_is_not_called_unsustainable() -> None:
    # 3 sqrt(100) = 30 > 5% of 100: a growth of 20 on 100 arrivals could be chance.
    assert unsustainable(Backlog(arrivals=100, completions=80, growth=20), 0.05) is None
    assert unsustainable(Backlog(arrivals=100, completions=69, growth=31), 0.05) is not None


def test_closed_loop_has_no_backlog() -> None:
    spec = spec_of({"metric": "latency_ms", "stat": "p50", "max": 1e6})
    assert backlog(spec, [clean_run(50)]) is None
