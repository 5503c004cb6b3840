from __future__ import annotations

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

    assert rps.baseline == pytest.approx(20.0)
    assert rps.candidate == pytest.approx(2000 / 150)
    assert rps.change_rel == pytest.approx(-1 / 3)
    se = math.sqrt(1 / 2000 + 1 / 2000)
    z = z_value(0.975)
    assert rps.ci_low == pytest.approx(math.expm1(math.log(2 / 3) - z * se))
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
