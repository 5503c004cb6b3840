from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sla.files.run import CANCELLED_ERROR
from tests.sla.test_verdict import req, write_run

REPO = Path(__file__).resolve().parents[2]
SPEC = """
name: cli
objectives:
  - {metric: latency_ms, stat: p50, max: 100}
  - {metric: error_rate, max: 0.05}
"""


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sla", *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=REPO,
        timeout=60,
        check=False,
    )


def make_run(path: Path, latency_ms: float, *, n: int = 400, saturated: bool = False) -> Path:
    jitter = np.linspace(-5.0, 5.0, n)
    records = [req(i * 0.2 + 0.1, latency_ms + jitter[i]) for i in range(n)]
    records.append(req(n * 0.2, 5.0, status=0, error=CANCELLED_ERROR))
    return write_run(path, records, duration_s=n * 0.2, saturated=saturated)


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "cli.yaml"
    path.write_text(SPEC, encoding="utf-8")
    return path


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("python -m sla: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_check_pass_prints_the_table_and_writes_the_verdict(tmp_path: Path, spec: Path) -> None:
    run_dir = make_run(tmp_path / "run", 50.0)
    result = run_cli("check", run_dir, spec)

    assert result.returncode == 0, result.stderr
    assert "SLA cli" in result.stdout and ": PASS" in result.stdout
    assert "p50 latency_ms" in result.stdout
    verdict = json.loads((run_dir / "verdict.json").read_text(encoding="utf-8"))
    assert verdict["status"] == "PASS"
    assert verdict["counts"] == {
        "recorded": 401,
        "measured": 400,
        "ok": 400,
        "failed": 0,
        "good": None,
    }


def test_check_fail_exits_1_with_the_objective_message(tmp_path: Path, spec: Path) -> None:
    run_dir = make_run(tmp_path / "run", 500.0)
    result = run_cli("check", run_dir, spec, "--no-write")

    assert result.returncode == 1
    assert "[p50 latency_ms] 500 ms > 100 ms (n=400, 95% CI" in result.stdout
    assert not (run_dir / "verdict.json").exists()


def test_check_inconclusive_exits_3_unless_allowed(tmp_path: Path, spec: Path) -> None:
    run_dir = make_run(tmp_path / "run", 100.0)  # p50 right at the limit
    assert run_cli("check", run_dir, spec, "--no-write").returncode == 3
    assert run_cli("check", run_dir, spec, "--no-write", "--allow-inconclusive").returncode == 0


def test_check_saturated_exits_4_but_a_failure_still_exits_1(tmp_path: Path, spec: Path) -> None:
    passing = make_run(tmp_path / "a", 50.0, saturated=True)
    failing = make_run(tmp_path / "b", 500.0, saturated=True)
    result = run_cli("check", passing, spec, "--no-write")
    assert result.returncode == 4
    assert result.stdout.splitlines()[0].endswith(": INCONCLUSIVE")  # never a PASS
    assert "load generator was saturated" in result.stdout
    assert run_cli("check", failing, spec, "--no-write").returncode == 1


def test_check_bad_spec_is_one_line_and_exit_2(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", 50.0, n=10)
    bad = tmp_path / "bad.yaml"
    bad.write_text("objectives:\n  - {metric: ttft, stat: p99, max: 450}\n", encoding="utf-8")
    result = run_cli("check", run_dir, bad)
    assert_one_line_error(result, str(bad), "objectives[0] (ttft)", "did you mean 'ttft_ms'?")
    assert "Traceback" not in result.stderr


def test_check_missing_run_dir_is_one_line_and_exit_2(tmp_path: Path, spec: Path) -> None:
    result = run_cli("check", tmp_path / "nowhere", spec)
    assert_one_line_error(result, "nowhere does not exist")


def test_a_run_json_with_a_malformed_time_is_one_line_and_exit_2(
    tmp_path: Path, spec: Path
) -> None:
    good = make_run(tmp_path / "good", 50.0, n=10)
    bad = make_run(tmp_path / "bad", 50.0, n=10)
    meta = json.loads((bad / "run.json").read_text(encoding="utf-8"))
    (bad / "run.json").write_text(json.dumps({**meta, "measured_from": "yesterday"}))
    expected = f"{bad / 'run.json'}: measured_from must be a number, got 'yesterday'"
    assert_one_line_error(run_cli("check", bad, spec), expected)
    assert_one_line_error(run_cli("compare", good, bad, "--max-regression", "10%"), expected)


def test_bad_arguments_are_one_line_and_exit_2(tmp_path: Path, spec: Path) -> None:
    assert_one_line_error(run_cli("check", tmp_path), "required: SPEC")
    assert_one_line_error(run_cli("frobnicate"), "invalid choice: 'frobnicate'")
    assert_one_line_error(run_cli(), "required: COMMAND")


def run_into_a_closed_pipe(
    *args: str | Path, buffered: bool = True
) -> subprocess.CompletedProcess[str]:
    """A ``python -m`` command whose standard output nobody reads any more (``| head``):
    buffered, the write fails at the last flush; unbuffered, at the first print."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", *map(str, args)],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env if buffered else {**env, "PYTHONUNBUFFERED": "1"},
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)


def test_a_closed_stdout_ends_quietly_with_141(tmp_path: Path, spec: Path) -> None:
    # `sla check ... | head -c 10` was a BrokenPipeError traceback and exit 1 (FAIL).
    run_dir = make_run(tmp_path / "run", 50.0)
    check = ["check", run_dir, spec]
    compare = ["compare", run_dir, run_dir, "--max-regression", "10%"]
    for args, buffered in ((check, True), (check, False), (compare, True)):
        result = run_into_a_closed_pipe("sla", *args, buffered=buffered)
        assert (result.returncode, result.stderr) == (141, ""), (args, buffered)


def test_compare_exit_codes(tmp_path: Path) -> None:
    base = make_run(tmp_path / "base", 100.0)
    same = make_run(tmp_path / "same", 100.0)
    slower = make_run(tmp_path / "slow", 130.0)

    result = run_cli("compare", base, same, "--max-regression", "10%")
    assert result.returncode == 0, result.stderr
    assert "p50 latency_ms" in result.stdout and "no significant change" in result.stdout

    result = run_cli("compare", base, slower, "--max-regression", "10%", "--confidence", "0.9")
    assert result.returncode == 1
    assert "[p50 latency_ms] 100 ms → 130 ms: +30.0%" in result.stdout
    assert "regressed" in result.stdout


def test_compare_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    base = make_run(tmp_path / "base", 100.0, n=10)
    assert_one_line_error(
        run_cli("compare", base, base, "--max-regression", "10"), "did you mean 10%?"
    )
    assert_one_line_error(run_cli("compare", base, base), "required: --max-regression")
    assert_one_line_error(
        run_cli("compare", base, tmp_path / "missing", "--max-regression", "5%"),
        "missing does not exist",
    )
    assert_one_line_error(
        run_cli("compare", base, base, "--max-regression", "5%", "--confidence", "95"),
        "confidence '95' must be in (0.5, 1)",
    )
