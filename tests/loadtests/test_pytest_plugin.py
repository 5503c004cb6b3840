"""The pytest plugin (loadtests.gate.plugin), exercised the way CI uses it: pytester runs
pytest in a subprocess on a test file that gates a recorded run against an SLA spec."""

from __future__ import annotations

import math
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from loadtests.recording.recorder import RequestRecorder, finish_run_json, start_run_json
from sla.files.run import RequestRecord, load_run
from tests.loadtests.conftest import GATE_PLUGINS

T0 = 1_790_000_000.0
N = 400


def write_run(run_dir: Path, ttft_ms: np.ndarray, *, errors: int = 0) -> Path:
    """A closed-loop streamed run: one request every 10 ms with the given TTFTs."""
    recorder = RequestRecorder(run_dir)
    start_run_json(run_dir, {"scenario": "chat", "started_at": T0, "measured_from": T0})
    for i, ttft in enumerate(ttft_ms):
        sent = T0 + i * 0.01
        first = sent + ttft / 1000.0
        failed = i < errors
        recorder.add(
            RequestRecord(
                f"local-{i}", "local", "chat", math.nan, sent, first, first + 0.08,
                500 if failed else 200, "HTTP 500: boom" if failed else None, 16, 9, "usage",
                9, tuple([10.0] * 8),
            )
        )  # fmt: skip
    recorder.close()
    finish_run_json(run_dir, {"ended_at": T0 + len(ttft_ms) * 0.01 + 0.1, "status": "complete"})
    return run_dir


SPEC = """
name: gate
confidence: 0.95
objectives:
  - {metric: ttft_ms, stat: p99, max: 450}
  - {metric: error_rate, max: 0.05}
"""

GATE = """
import pytest
from sla.files.run import load_run

@pytest.fixture
def run():
    return load_run({run_dir!r})

@pytest.mark.sla_spec({spec!r})
def test_gate(run, sla_objective):
    sla_objective.check(run)
"""


def gate(pytester: pytest.Pytester, run_dir: Path, spec_text: str = SPEC) -> None:
    spec = pytester.path / "spec.yaml"
    spec.write_text(spec_text)
    pytester.makepyfile(test_gate=GATE.format(run_dir=str(run_dir), spec=str(spec)))


def test_a_passing_spec_gives_one_passed_test_per_objective(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    run = write_run(tmp_path / "run", np.linspace(100, 300, N))
    gate(pytester, run)
    result = pytester.runpytest_subprocess(*GATE_PLUGINS, "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*test_gate?p99 ttft_ms? PASSED*", "*test_gate?error_rate? PASSED*"]
    )
    assert (run / "verdict.json").exists()


def test_a_failing_objective_fails_with_one_readable_line_and_no_traceback(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    run = write_run(tmp_path / "run", np.linspace(700, 900, N))
    gate(pytester, run)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess(*GATE_PLUGINS, f"--junitxml={junit}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_gate?p99 ttft_ms? _*",
            "?p99 ttft_ms? 898 ms > 450 ms (n=400, 95% CI 896*900)",
            "FAILED test_gate.py::test_gate?p99 ttft_ms? - Failed: ?p99 ttft_ms?*",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert "def test_gate" not in result.stdout.str()  # pytrace=False: no source listing
    failures = [f.get("message", "") for f in ET.parse(junit).iter("failure")]
    assert len(failures) == 1 and "> 450 ms (n=400" in failures[0]


def test_inconclusive_fails_by_default_and_skips_when_allowed(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    # A p99 from 50 requests says nothing, nor does a 0% error rate from 50 against 5%.
    run = write_run(tmp_path / "run", np.linspace(100, 300, 50))
    gate(pytester, run)
    strict = pytester.runpytest_subprocess(*GATE_PLUGINS)
    strict.assert_outcomes(failed=2)
    strict.stdout.fnmatch_lines(["INCONCLUSIVE ?p99 ttft_ms?*n=50*"])
    allowed = pytester.runpytest_subprocess(*GATE_PLUGINS, "--sla-allow-inconclusive")
    allowed.assert_outcomes(skipped=2)


def test_a_bad_spec_is_a_usage_error(pytester: pytest.Pytester, tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", np.linspace(100, 300, N))
    gate(pytester, run, "objectives:\n  - {metric: ttft_msec, stat: p99, max: 450}\n")
    result = pytester.runpytest_subprocess(*GATE_PLUGINS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*spec.yaml*ttft_msec*ttft_ms*"])
    assert "Traceback" not in result.stderr.str()


def test_coexists_with_locusts_own_pytest_plugin(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """Locust's plugin (fixture ``session``, option ``--host``) loads too: nothing clashes."""
    run = write_run(tmp_path / "run", np.linspace(100, 300, N))
    gate(pytester, run)
    result = pytester.runpytest_subprocess(
        "-p", "locust", "-p", "no:hypothesispytest", "--host", "http://127.0.0.1:9"
    )
    result.assert_outcomes(passed=2)


def test_regression_against_a_baseline(pytester: pytest.Pytester, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    base = write_run(tmp_path / "base", rng.normal(200, 10, N))
    cand = write_run(tmp_path / "cand", rng.normal(300, 10, N))  # TTFT 50% worse
    pytester.makepyfile(
        test_regress=f"""
import pytest
from sla.files.run import load_run

def test_no_regression(sla_metric_change):
    sla_metric_change.check(load_run({str(cand)!r}))
"""
    )
    result = pytester.runpytest_subprocess(*GATE_PLUGINS, f"--sla-baseline={base}",
                                           "--sla-max-regression=10%")  # fmt: skip
    result.stdout.fnmatch_lines(["FAILED *p50 ttft_ms*"])
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 3  # p50/p90/p99 ttft_ms at least
    assert "p50 tpot_ms" not in "".join(result.stdout.lines).split("short test summary")[-1]


@pytest.mark.e2e
def test_gate_end_to_end_with_real_locust_on_the_bundled_server(pytester: pytest.Pytester) -> None:
    """sla_server starts the reference server, sla_locust runs the chat scenario through
    real Locust, and the smoke spec's objectives become passing tests."""
    smoke = Path(__file__).resolve().parents[2] / "sla" / "examples" / "smoke.yaml"
    pytester.makepyfile(
        test_ci_gate=f"""
import pytest

@pytest.fixture(scope="module")
def chat_run(sla_locust):
    return sla_locust("chat", users=4, run_time="5s", extra=(
        "--input-len", "fixed:16", "--output-len", "fixed:8", "--scrape-interval", "0",
        "--no-report"))

@pytest.mark.sla_spec({str(smoke)!r})
def test_chat_meets_the_smoke_sla(chat_run, sla_objective):
    assert chat_run.meta["embedded_server"] is False  # the session's server, via --host
    assert len(chat_run.requests) > 0
    sla_objective.check(chat_run)
"""
    )
    small = (
        "--lm-layers 2 --lm-dim 64 --lm-heads 4 --max-model-len 512 --embed-layers 1 "
        "--embed-dim 64 --mlp-hidden 128 --mlp-in-features 16 --torch-threads 1"
    )
    result = pytester.runpytest_subprocess(*GATE_PLUGINS, "-v", f"--sla-server-args={small}")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*test_chat_meets_the_smoke_sla?p50 latency_ms? PASSED*"])


@pytest.mark.e2e
def test_a_second_gate_session_into_the_same_run_dir_judges_its_own_run(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """An earlier session's ``000-chat`` under ``sla_run_dir`` is never read back as this
    session's run: sla_locust takes a directory no one has written."""
    root = tmp_path / "runs"
    write_run(root / "000-chat", np.linspace(100, 300, N))  # a stale run, long ago
    started = time.time()
    pytester.makepyfile(
        test_again=f"""
def test_the_run_is_new(sla_locust):
    run = sla_locust("chat", users=2, run_time="2s", extra=(
        "--input-len", "fixed:16", "--output-len", "fixed:8", "--scrape-interval", "0",
        "--no-report"))
    assert run.meta["started_at"] > {started!r}, run.path
    assert run.path.name == "001-chat"
"""
    )
    small = (
        "--lm-layers 2 --lm-dim 64 --lm-heads 4 --max-model-len 512 --embed-layers 1 "
        "--embed-dim 64 --mlp-hidden 128 --mlp-in-features 16 --torch-threads 1"
    )
    result = pytester.runpytest_subprocess(
        *GATE_PLUGINS, f"--sla-server-args={small}", "-o", f"sla_run_dir={root}"
    )
    result.assert_outcomes(passed=1)
    assert load_run(root / "000-chat").meta["started_at"] == T0  # left as it was


REGRESS = """
import pytest
from sla.files.run import load_run

def test_no_regression(sla_metric_change):
    sla_metric_change.check(load_run({cand!r}))
"""


def test_a_zero_tolerance_is_zero_and_a_failed_candidate_never_passes(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    base = write_run(tmp_path / "base", rng.normal(200, 10, N))
    cand = write_run(tmp_path / "cand", rng.normal(208, 10, N))  # TTFT 4% worse
    pytester.makepyfile(test_regress=REGRESS.format(cand=str(cand)))
    zero = pytester.runpytest_subprocess(*GATE_PLUGINS, f"--sla-baseline={base}",
                                         "--sla-max-regression=0%", "-k", "ttft")  # fmt: skip
    zero.assert_outcomes(failed=3)  # 0% is no tolerance, not the 10% default
    assert "[p50 ttft_ms] " in zero.stdout.str() and "), regressed" in zero.stdout.str()
    tolerant = pytester.runpytest_subprocess(*GATE_PLUGINS, f"--sla-baseline={base}",
                                             "-k", "p50 and ttft")  # fmt: skip
    tolerant.assert_outcomes(passed=1)

    failed = write_run(tmp_path / "failed", rng.normal(200, 10, N), errors=N)
    pytester.makepyfile(test_regress=REGRESS.format(cand=str(failed)))
    result = pytester.runpytest_subprocess(*GATE_PLUGINS, f"--sla-baseline={base}",
                                           "--sla-allow-inconclusive")  # fmt: skip
    assert "[error_rate] 0% → 100%: +100.00 pts" in result.stdout.str()
    assert result.parseoutcomes().get("passed", 0) == 0  # no latency to compare: skipped


def test_inconclusive_changes_fail_unless_allowed_and_a_bad_baseline_is_one_usage_error(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    rng = np.random.default_rng(1)
    base = write_run(tmp_path / "base", rng.normal(200, 10, 100))  # too few for a p99
    cand = write_run(tmp_path / "cand", rng.normal(200, 10, 100))
    pytester.makepyfile(test_regress=REGRESS.format(cand=str(cand)))
    args = (*GATE_PLUGINS, f"--sla-baseline={base}", "-k", "p99 and ttft")
    strict = pytester.runpytest_subprocess(*args)
    strict.assert_outcomes(failed=1)
    assert "[p99 ttft_ms] " in strict.stdout.str() and "inconclusive (p99" in strict.stdout.str()
    pytester.runpytest_subprocess(*args, "--sla-allow-inconclusive").assert_outcomes(skipped=1)

    missing = pytester.runpytest_subprocess(*GATE_PLUGINS, f"--sla-baseline={tmp_path}/nosuch")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    assert "--sla-baseline: " in missing.stderr.str() and "Traceback" not in missing.stderr.str()
