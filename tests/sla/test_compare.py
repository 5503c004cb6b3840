from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from sla.compare import (
    DEFAULT_METRICS,
    Change,
    MetricChange,
    compare,
    format_comparison,
    parse_max_regression,
)
from sla.files.run import Run, load_run
from sla.metrics import throughput
from sla.reading import read_run
from sla.stats import z_value
from tests.sla.test_verdict import req, write_run


def chat_run(
    path: Path,
    seed: int,
    *,
    n: int = 2000,
    ttft_scale: float = 1.0,
    duration_s: float = 100.0,
) -> Run:
    """Streamed chat requests: TTFT ~ lognormal(200 ms), 20 tokens ~ 25 ms apart."""
    rng = np.random.default_rng(seed)
    ttft = rng.lognormal(math.log(200.0), 0.4, size=n) * ttft_scale
    gaps = rng.gamma(25.0, 1.0, size=(n, 19))
    step = duration_s / (n + 1)
    records = [
        req(
            (i + 1) * step,
            ttft[i] + gaps[i].sum(),
            ttft_ms=ttft[i],
            tokens=20,
            gaps_ms=gaps[i].tolist(),
        )
        for i in range(n)
    ]
    return load_run(write_run(path, records, duration_s=duration_s))


def by_label(changes: tuple[MetricChange, ...]) -> dict[str, Change]:
    return {c.label: c.verdict for c in changes}


def test_two_samples_of_the_same_distribution_show_no_change(tmp_path: Path) -> None:
    base = chat_run(tmp_path / "a", seed=1)
    cand = chat_run(tmp_path / "b", seed=2)
    comparison = compare(base, cand, max_regression=0.10)

    assert len(comparison.changes) == len(DEFAULT_METRICS)
    assert set(by_label(comparison.changes).values()) == {Change.NO_CHANGE}
    assert comparison.exit_code == 0
    for change in comparison.changes:
        assert change.ci_low is not None and change.ci_high is not None
        assert change.ci_low <= 0 <= change.ci_high or abs(change.change_rel) < 0.10


def test_a_30_percent_ttft_regression_is_detected(tmp_path: Path) -> None:
    base = chat_run(tmp_path / "a", seed=1)
    cand = chat_run(tmp_path / "b", seed=2, ttft_scale=1.3)
    comparison = compare(base, cand, max_regression=0.10)
    verdicts = by_label(comparison.changes)

    for stat in ("p50", "p90", "p99"):
        assert verdicts[f"{stat} ttft_ms"] is Change.REGRESSED
        assert verdicts[f"{stat} tpot_ms"] is Change.NO_CHANGE
        assert verdicts[f"{stat} itl_ms"] is Change.NO_CHANGE
    p50 = next(c for c in comparison.changes if c.label == "p50 ttft_ms")
    assert p50.change_rel == pytest.approx(0.3, abs=0.06)
    assert p50.ci_low is not None and p50.ci_low > 0.10
    assert p50.baseline == np.percentile(
        load_run(base.path).requests.eval("(first_token_at - sent_at) * 1000"), 50
    )
    assert comparison.exit_code == 1
    assert "[p50 ttft_ms]" in format_comparison(comparison)


def test_faster_ttft_is_an_improvement(tmp_path: Path) -> None:
    base = chat_run(tmp_path / "a", seed=1)
    cand = chat_run(tmp_path / "b", seed=2, ttft_scale=0.7)
    comparison = compare(base, cand, max_regression=0.10)
    assert by_label(comparison.changes)["p50 ttft_ms"] is Change.IMPROVED
    assert comparison.exit_code == 0


def test_throughput_drop_is_a_regression(tmp_path: Path) -> None:
    base = chat_run(tmp_path / "a", seed=1, duration_s=100.0)
    cand = chat_run(tmp_path / "b", seed=2, duration_s=150.0)  # same requests, 1.5x the time
    comparison = compare(base, cand, max_regression=0.10)
    rps = next(c for c in comparison.changes if c.label == "throughput_rps")

    # As `sla check` counts a rate: the successful requests that *ended* in the window.
    done_b, done_c = (len(read_run(r).completed) for r in (base, cand))
    assert done_b < 2000 and done_c < 2000  # the last requests end after the window
    assert rps.baseline == pytest.approx(done_b / 100.0)
    assert rps.candidate == pytest.approx(done_c / 150.0)
    for run, value in ((base, rps.baseline), (cand, rps.candidate)):
        reading = read_run(run)
        assert reading.window_s is not None
        assert value == pytest.approx(
            throughput(reading.completed, reading.window_s)["requests_per_s"]
        )
    ratio = (done_c / 150.0) / (done_b / 100.0)
    assert rps.change_rel == pytest.approx(ratio - 1)
    se = math.sqrt(1 / done_b + 1 / done_c)
    z = z_value(0.975)
    assert rps.ci_low == pytest.approx(math.expm1(math.log(ratio) - z * se))
    assert rps.verdict is Change.REGRESSED
    assert by_label(comparison.changes)["output_tokens_per_s"] is Change.REGRESSED


def test_too_few_samples_are_inconclusive(tmp_path: Path) -> None:
    base = chat_run(tmp_path / "a", seed=1, n=100)
    cand = chat_run(tmp_path / "b", seed=2, n=100, ttft_scale=2.0)
    comparison = compare(base, cand, max_regression=0.10)
    p99 = next(c for c in comparison.changes if c.label == "p99 ttft_ms")

    assert p99.verdict is Change.INCONCLUSIVE
    assert p99.ci_low is None
    assert "p99 needs n ≥ 299 in each run" in p99.message
    # p50 needs only 5 samples: a doubling is clear from 100.
    assert by_label(comparison.changes)["p50 ttft_ms"] is Change.REGRESSED


def test_a_large_change_with_a_wide_interval_is_inconclusive(tmp_path: Path) -> None:
    base = chat_run(tmp_path / "a", seed=3, n=40)
    cand = chat_run(tmp_path / "b", seed=4, n=40, ttft_scale=1.15)
    change = compare(base, cand, max_regression=0.10, metrics=[("ttft_ms", "p50")]).changes[0]

    assert change.change_rel > 0.10
    assert change.ci_low is not None and change.ci_low < 0
    assert change.verdict is Change.INCONCLUSIVE
    assert "includes no change" in change.message


def test_compare_is_reproducible_with_a_seed(tmp_path: Path) -> None:
    base = chat_run(tmp_path / "a", seed=1, n=500)
    cand = chat_run(tmp_path / "b", seed=2, n=500)
    first = compare(base, cand, max_regression=0.1, seed=7)
    again = compare(base, cand, max_regression=0.1, seed=7)
    assert first == again


def test_unsupported_metrics_are_rejected(tmp_path: Path) -> None:
    run = chat_run(tmp_path / "a", seed=1, n=50)
    with pytest.raises(ValueError, match="cannot compare mean ttft_ms"):
        compare(run, run, max_regression=0.1, metrics=[("ttft_ms", "mean")])


@pytest.mark.parametrize(
    ("text", "value"), [("10%", 0.10), ("0.1", 0.1), ("2.5%", 0.025), ("0", 0.0)]
)
def test_parse_max_regression(text: str, value: float) -> None:
    assert parse_max_regression(text) == pytest.approx(value)


@pytest.mark.parametrize(("text", "hint"), [("10", "did you mean 10%?"), ("ten", ""), ("-5%", "")])
def test_parse_max_regression_rejects(text: str, hint: str) -> None:
    with pytest.raises(ValueError, match=r"must be a percentage like 10% or 0\.1") as info:
        parse_max_regression(text)
    assert hint in str(info.value)


def clustered_chat_run(path: Path, seed: int, n: int = 300) -> Run:
    """Requests whose 20 gaps share one scale drawn per request (a slow decode step slows
    every gap of it): gaps far from independent, as a real server's are."""
    rng = np.random.default_rng(seed)
    scale = rng.lognormal(0.0, 0.5, size=n)
    gaps = rng.gamma(25.0, 1.0, size=(n, 20)) * scale[:, None]
    step = 100.0 / (n + 1)
    records = [
        req((i + 1) * step, 100.0 + gaps[i].sum(), ttft_ms=100.0, tokens=21,
            gaps_ms=gaps[i].tolist())
        for i in range(n)
    ]  # fmt: skip
    return load_run(write_run(path, records, duration_s=200.0))


def test_itl_of_two_runs_of_one_server_is_rarely_called_different(tmp_path: Path) -> None:
    # Resampling the gaps one by one (as if independent) called 8 of these 16 "improved"
    # or "regressed"; resampling whole requests, at most the few a 95% interval allows
    # (the rate itself: tests/sla/test_stats.py).
    itl = [("itl_ms", "p50"), ("itl_ms", "p90")]
    changed = []
    for seed in range(100, 108):
        base = clustered_chat_run(tmp_path / f"a{seed}", 2 * seed)
        cand = clustered_chat_run(tmp_path / f"b{seed}", 2 * seed + 1)
        comparison = compare(base, cand, max_regression=0.10, metrics=itl, n_boot=1000)
        changed += [c.label for c in comparison.changes if c.verdict is not Change.NO_CHANGE]
    assert len(changed) <= 2, changed


def test_itl_needs_enough_requests_not_just_gaps(tmp_path: Path) -> None:
    base = clustered_chat_run(tmp_path / "a", 1, n=20)  # 400 gaps, 20 requests
    cand = clustered_chat_run(tmp_path / "b", 2, n=20)
    comparison = compare(base, cand, max_regression=0.10, metrics=[("itl_ms", "p90")])
    (change,) = comparison.changes
    assert change.n_baseline == 400
    assert change.verdict is Change.INCONCLUSIVE
    assert "needs ≥ 29 requests in each run" in change.message


def failing_run(path: Path, n: int = 2000) -> Run:
    records = [
        req(i * 0.05, 3.0, ttft_ms=None, tokens=None, status=503, error="HTTP 503: no")
        for i in range(n)
    ]
    return load_run(write_run(path, records, duration_s=100.0))


def test_a_candidate_whose_every_request_failed_regresses(tmp_path: Path) -> None:
    base = chat_run(tmp_path / "a", seed=1)
    cand = failing_run(tmp_path / "b")
    comparison = compare(base, cand, max_regression=0.10)
    verdicts = by_label(comparison.changes)

    assert verdicts["error_rate"] is Change.REGRESSED
    assert verdicts["throughput_rps"] is Change.REGRESSED
    assert verdicts["p50 ttft_ms"] is Change.INCONCLUSIVE  # no latency to compare
    assert comparison.exit_code == 1
    rate = next(c for c in comparison.changes if c.label == "error_rate")
    assert rate.ci_kind == "points" and rate.change_text == "+100.00 pts"
    assert rate.ci_low is not None and rate.ci_low > 0.99
    assert "[error_rate] 0% → 100%: +100.00 pts" in format_comparison(comparison)


def test_a_baseline_without_successes_is_no_baseline(tmp_path: Path) -> None:
    comparison = compare(failing_run(tmp_path / "a"), chat_run(tmp_path / "b", seed=1),
                         max_regression=0.10)  # fmt: skip
    assert not comparison.regressed
    assert comparison.untrusted == (
        "the baseline run has no successful request: it is no baseline",
    )
    assert comparison.exit_code == 3


@pytest.mark.parametrize(
    ("errors_base", "errors_cand", "expected"),
    [
        (0, 0, Change.NO_CHANGE),
        (0, 60, Change.REGRESSED),  # any rise from none, once it is significant
        (0, 2, Change.INCONCLUSIVE),  # 0.1%: a rise, but the interval includes no change
        (40, 44, Change.NO_CHANGE),  # +10% relative, within the tolerance
        (40, 120, Change.REGRESSED),
        (120, 40, Change.IMPROVED),
    ],
)
def test_error_rate_is_a_difference_of_shares(
    tmp_path: Path, errors_base: int, errors_cand: int, expected: Change
) -> None:
    def run(path: Path, errors: int) -> Run:
        records = [
            req(i * 0.05, 300.0, ttft_ms=100.0, tokens=10, gaps_ms=[20.0] * 9)
            if i >= errors
            else req(i * 0.05, 3.0, ttft_ms=None, tokens=None, status=500, error="HTTP 500: x")
            for i in range(2000)
        ]
        return load_run(write_run(path, records, duration_s=100.0))

    comparison = compare(run(tmp_path / "a", errors_base), run(tmp_path / "b", errors_cand),
                         max_regression=0.10, metrics=[("error_rate", None)])  # fmt: skip
    (change,) = comparison.changes
    assert change.baseline == errors_base / 2000 and change.candidate == errors_cand / 2000
    assert change.ci_low is not None and change.ci_high is not None
    assert change.ci_low <= change.candidate - change.baseline <= change.ci_high
    assert change.verdict is expected, change.message


def test_an_incomplete_run_is_never_a_clean_comparison(tmp_path: Path) -> None:
    base = chat_run(tmp_path / "a", seed=1)
    cand_dir = tmp_path / "b"
    chat_run(cand_dir, seed=2)
    meta = json.loads((cand_dir / "run.json").read_text())
    (cand_dir / "run.json").write_text(json.dumps({**meta, "status": "interrupted"}))
    comparison = compare(base, load_run(cand_dir), max_regression=0.10)

    assert not comparison.regressed
    assert comparison.exit_code == 3
    assert comparison.untrusted == (
        'the candidate run is incomplete: run.json status is "interrupted", not "complete"',
    )
    assert "WARNING: the candidate run is incomplete" in format_comparison(comparison)


def test_runs_that_measured_different_things_are_said_so(tmp_path: Path) -> None:
    base = chat_run(tmp_path / "a", seed=1)
    embed = [req(i * 0.05, 30.0, tokens=None, endpoint="embeddings") for i in range(2000)]
    cand = load_run(write_run(tmp_path / "b", embed, scenario="embeddings"))
    comparison = compare(base, cand, max_regression=0.10)

    assert comparison.warnings[0].startswith("the runs are of different scenarios (chat and")
    assert comparison.untrusted == ("the runs have no endpoint in common",)
    assert comparison.exit_code == 3
    tokens = next(c for c in comparison.changes if c.label == "output_tokens_per_s")
    assert tokens.verdict is Change.INCONCLUSIVE
    assert "no output token counts" in tokens.message  # not 0 tok/s
