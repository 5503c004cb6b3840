"""The capacity search end to end: real Locust steps against real servers, finding a known
answer.

The reference server's ``--fault-capacity-rps R`` makes its service capacity exactly R
requests/s (a single FIFO server with a deterministic 1/R service time), so the answer
the search must find is known. Steps are short (1 s warm-up, 3 s measured): each test
runs 4-7 steps of about 6 s. How a search survives faults is in
``test_e2e_capacity_faults.py`` (a file of its own, so that xdist runs the two at once).
"""

from __future__ import annotations

import math
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reports.__main__ import main as reports_main
from sla.files.capacity import load_capacity
from sla.files.run import load_run
from tests.loadtests.capacity_support import (
    KSERVE,
    QUICK_STEPS,
    STATUSES,
    TOLERANT_STEPS,
    write_spec,
)
from tests.loadtests.conftest import RunLocust, clean_env
from tests.server_process import ServerProcess

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
StartServer = Callable[..., ServerProcess]


def test_search_finds_a_fixed_capacity_in_fewer_steps_than_a_grid(
    run_locust: RunLocust, start_server: StartServer, tmp_path: Path
) -> None:
    capacity_rps = 40.0
    server = start_server("--fault-capacity-rps", str(capacity_rps))
    # Constant arrivals: below R nothing queues (D/D/1); above it the queue grows by
    # (rate - R) requests a second, so p90 latency passes 100 ms a few percent over R.
    spec = write_spec(
        tmp_path / "fixed.yaml",
        "{metric: latency_ms, stat: p90, max: 100}",
        "{metric: error_rate, max: 5%}",
    )
    sweep = tmp_path / "sweep"
    result = run_locust(
        "kserve",
        *("--host", server.url, *KSERVE, "--arrival", "constant", "--sla", str(spec)),
        *("--capacity-search", "--search-start", "20", "--search-precision", "5%"),
        # Tolerant of a busy machine's late sends (another test may run beside this one):
        # the answer is within 10%, wherever a few milliseconds of jitter put the edge.
        *(*TOLERANT_STEPS, "--cost-per-hour", "3.6", "--run-dir", str(sweep)),
        "--live-interval", "1",
        timeout_s=240,
    )  # fmt: skip
    assert result.code == 0, result.output[-3000:]
    cap = load_capacity(sweep)
    assert cap.outcome == "found"
    # The step in flight shows live: its own live lines, named by step, and the search's
    # progress line beside them and after each step.
    out = result.output
    for step in cap.steps:
        assert f"slabench: step {step.step} live " in out, out[-3000:]
    assert "slabench: search [" in out and f"{len(cap.steps)} steps done, PASS " in out
    found = cap.capacity.load
    assert abs(found - capacity_rps) / capacity_rps <= 0.10, cap.message
    assert cap.lowest_fail.load > found
    assert cap.precision <= 0.05
    # A linear grid locating the capacity to the same precision steps by 5% of it: 20
    # steps to reach it, one more to fail.
    linear_steps = math.ceil(1 / 0.05) + 1
    assert len(cap.steps) < linear_steps
    # Every step is an ordinary run directory, judged as recorded.
    for step in cap.steps:
        # Quick widening steps may be INCONCLUSIVE (too few samples); bisection steps are
        # extended until they are not.
        assert step.status in (("PASS", "FAIL") if step.thorough else STATUSES)
        run = load_run(sweep / step.runs[0])
        assert run.meta["load_profile"]["arrival_rate_rps"] == step.load
        assert run.meta["load_profile"]["seed"] == 1000 * (step.step - 1)  # own schedule
        # Constant arrivals: the schedule made the rate asked for over the step's 3 s a
        # segment. The window itself ends at the stop, and the stop's last moments send
        # nothing: ~50 ms on a quiet machine, 0.27 s seen on a busy one, where the rate
        # over the window was 10% low with every arrival of the 3 s made. A busy machine
        # has also stamped a window's start late (2.64 s of the 3, every arrival in it
        # made): the arrivals are counted against the window's own length, up to 3 s a run.
        arrivals = step.arrival_rps * step.window_s
        expected = step.load * min(3.0 * len(step.runs), step.window_s)
        assert expected * 0.92 <= arrivals, (step.load, step)
        assert step.arrival_rps <= step.load * 1.01
    passing = [s for s in cap.steps if s.status == "PASS"]
    assert all(s.load <= found for s in passing)
    assert max(s.throughput_rps for s in cap.steps) <= capacity_rps * 1.05
    # Cost: $3.60/hour = $0.001/s, over the measured throughput at capacity.
    cap_step = next(s for s in cap.steps if s.step == cap.capacity.step)
    assert cap.cost.per_1k_requests == pytest.approx(1.0 / cap_step.throughput_rps)
    assert "capacity search FOUND" in result.output
    assert "cost at capacity" in result.output
    assert (sweep / "report.html").exists()
    # The same sweep twice: a comparison page renders from real results (the command line's
    # own entry point, in this process: `python -m reports` is tested in tests/reports).
    page = tmp_path / "compare.html"
    argv = ["capacity-compare", str(sweep), str(sweep), "--label", "a", "--label", "b"]
    assert reports_main([*argv, "-o", str(page)]) == 0
    assert f"{found:g} req/s" in page.read_text()


def test_closed_loop_search_finds_the_users_that_meet_the_sla(
    run_locust: RunLocust, start_server: StartServer, tmp_path: Path
) -> None:
    # 20 req/s = one request every 50 ms: N closed-loop users each wait ~N x 50 ms, so a
    # 225 ms p90 holds for 4 users (~200 ms) and not for 5 (~250 ms). From 3 users: 3
    # passes, 6 fails, and bisection tries 4 and then 5.
    server = start_server("--fault-capacity-rps", "20")
    spec = write_spec(
        tmp_path / "users.yaml", "{metric: latency_ms, stat: p90, max: 225}", warmup="1s"
    )
    sweep = tmp_path / "sweep"
    result = run_locust(
        "kserve",
        *("--host", server.url, *KSERVE, "--sla", str(spec), *QUICK_STEPS),
        *("--capacity-search", "--search-mode", "concurrency", "--search-start", "3"),
        *("--run-dir", str(sweep)),
        timeout_s=240,
    )
    assert result.code == 0, result.output[-3000:]
    cap = load_capacity(sweep)
    assert (cap.mode, cap.load_unit) == ("concurrency", "users")
    assert cap.capacity.load == 4
    assert cap.lowest_fail.load == 5
    assert [s.load for s in cap.steps] == [3, 6, 4, 5]
    # The spec's own 1 s warm-up lengthens each step; it does not eat into the measured
    # window (of 3 s a segment: a bisection step too close to call runs another segment:
    # eaten, it would be 2 s), nor is it counted in it (4 s). A busy machine moves the
    # start and the stop by a few tenths.
    windows = [(s.load, len(s.runs), round(s.window_s, 3)) for s in cap.steps]
    assert all(2.5 * runs <= w <= 3.6 * runs for _, runs, w in windows), windows


@pytest.fixture
def canned_server() -> Iterator[str]:
    """benchmarks/canned_server.py: answers from pre-rendered bytes, far cheaper per request
    than any client, so the load generator saturates long before it does."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.canned_server"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=clean_env(None),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    try:
        assert "ready at" in line, line
        yield line.rsplit(" ", 1)[-1].strip()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        proc.stdout.close()


def test_generator_saturation_is_reported_instead_of_a_capacity(
    run_locust: RunLocust, canned_server: str, tmp_path: Path
) -> None:
    spec = write_spec(
        tmp_path / "easy.yaml",
        "{metric: latency_ms, stat: p50, max: 5s}",
        "{metric: error_rate, max: 50%}",
    )
    sweep = tmp_path / "sweep"
    result = run_locust(
        "chat",
        *("--host", canned_server, "--model", "m", "--no-stream", "--sla", str(spec)),
        *("--max-inflight", "5000", "--capacity-search", "--search-start", "1000"),
        *(*QUICK_STEPS, "--search-max", "64000", "--run-dir", str(sweep)),
        timeout_s=240,
    )
    assert result.code == 4, result.output[-3000:]
    cap = load_capacity(sweep)
    assert cap.outcome == "generator_saturated"
    last = cap.steps[-1]
    assert last.saturated and last.saturation
    assert "not the server's" in cap.message
    assert "LOAD GENERATOR SATURATED" in result.output
    assert "GENERATOR_SATURATED" in result.output
    assert all(s.status == "PASS" for s in cap.steps[:-1])
