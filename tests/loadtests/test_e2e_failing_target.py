"""A target that turns requests away, end to end: closed-loop users honour Retry-After
instead of flooding a rate-limited API, failures are grouped by class in the terminal and in
verdict.json, and a dead target ends the run early with one line and its own exit code."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from benchmarks.scripted_runs import ScriptedServer, run_locust
from sla.files.run import load_run
from tests.loadtests.conftest import SMALL_LOAD, RunLocust, free_port

pytestmark = pytest.mark.e2e

ERROR_RATE_SPEC = "name: no-errors\nobjectives:\n  - {metric: error_rate, max: 0.01}\n"
LATENCY_SPEC = "name: fast\nobjectives:\n  - {metric: ttft_ms, stat: p50, max: 100000}\n"


def _spec(tmp_path: Path, text: str) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return str(path)


def test_closed_loop_users_wait_as_retry_after_says_and_errors_are_grouped_by_class(
    tmp_path: Path,
) -> None:
    users, run_s, retry_after_s = 2, 2.0, 1.0
    spec = _spec(tmp_path, ERROR_RATE_SPEC)
    with ScriptedServer("--mode", "rate-limit", "--retry-after", f"{retry_after_s:g}") as server:
        run = run_locust(
            server.url, tmp_path, "--sla", spec, "--no-report",
            users=users, run_time=f"{run_s:g}s",
        )  # fmt: skip
        served = server.served()
    rows = run.rows
    # Each user sends at 0 and 1 s (perhaps once more at the very end): a handful, where a
    # user that ignores Retry-After sends hundreds a second (the 429 comes back at once).
    assert users * run_s / retry_after_s <= len(rows) <= users * (run_s / retry_after_s + 1), (
        run.describe()
    )
    assert served == len(rows)
    assert (rows["status"] == 429).all() and (rows["error_class"] == "http_429").all()
    assert (rows["backoff_ms"] == retry_after_s * 1000.0).all()  # the wait, recorded
    # Every answer's text differs ("try again in 0.00Ns"); the class is one.
    assert rows["error"].nunique() == len(rows)
    n = len(rows)
    assert f"error http_429 x{n} (HTTP 429), e.g.: HTTP 429: Rate limit reached" in run.output
    assert f"closed-loop users backed off {n * retry_after_s:.1f} s in all" in run.output
    assert f"failed by class: http_429 {n}" in run.output  # the verdict's table
    verdict = json.loads((tmp_path / "run" / "verdict.json").read_text())
    assert verdict["errors_by_class"] == {"http_429": n}
    assert run.returncode == 1, run.describe()  # the error-rate objective fails


def test_a_dead_target_ends_the_run_early_with_one_line(
    run_locust: RunLocust, tmp_path: Path
) -> None:
    host = f"http://127.0.0.1:{free_port()}"  # nothing listens: every connect is refused
    spec = _spec(tmp_path, LATENCY_SPEC)
    started = time.monotonic()
    result = run_locust(
        "chat", "--host", host, "--model", "slabench-lm", "-u", "2", "-r", "2", "-t", "60s",
        "--abort-when-down", "2s", "--sla", spec, *SMALL_LOAD,
    )  # fmt: skip
    elapsed_s = time.monotonic() - started

    assert result.code == 5, result.output
    assert elapsed_s < 30, result.output  # not the 60 s of -t
    errors = [line for line in result.output.splitlines() if line.startswith("slabench: error:")]
    assert len(errors) == 1, result.output
    assert "the target is down: every request for 2s failed to connect" in errors[0]
    assert "--abort-when-down 2s" in errors[0] and str(result.run_dir) in errors[0]
    assert "Traceback" not in result.output
    run = load_run(result.run_dir)  # the rows are kept, and the run says why it ended
    assert run.meta["status"] == "target_down"
    assert run.meta["ended_at"] - run.meta["started_at"] < 10
    assert len(run.requests) == run.meta["requests"] >= 2
    assert set(run.requests["error_class"]) <= {"refused", "cancelled"}
    verdict = json.loads((result.run_dir / "verdict.json").read_text())
    assert verdict["status"] != "PASS"
    assert any("target_down" in reason for reason in verdict["incomplete"])
