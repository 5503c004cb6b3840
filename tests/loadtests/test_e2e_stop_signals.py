"""A stop signal at any moment: SIGINT or SIGTERM, from the first instant of a locust's
start-up to the middle of its run, local or with ``--processes``, ends it within 10 s, and
with it every process it forked. Once the test has started it leaves a complete run
directory whose rows are the requests the server saw; before, nothing was sent and there is
no run directory.

The short test runs in the default suite; ``test_stop_signals_under_cpu_load`` (marker
``stress``, deselected by default) sends 20 signals at seeded random moments while two busy
processes load the CPU: ``pytest -m stress -n 0 -s tests/loadtests/test_e2e_stop_signals.py``.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from sla.files.run import CANCELLED_ERROR, load_run
from tests.loadtests.conftest import (
    SMALL_LOAD,
    SMALL_SERVER_ARGS,
    StartLocust,
    idle_server_requests,
    server_requests,
)
from tests.server_process import ServerProcess, wait_until

pytestmark = pytest.mark.e2e

StartServer = Callable[..., ServerProcess]
CHAT_ROUTE = "/v1/chat/completions"
EXIT_WITHIN_S = 10.0
STOPPED_BEFORE_THE_TEST = "before the test started: stopped; nothing was sent"


@dataclass(frozen=True)
class Case:
    """One locust and its signal: ``delay_s`` after it starts, or, with ``after_requests``,
    after the server saw that many of its requests (then ``delay_s`` more)."""

    sig: signal.Signals
    delay_s: float
    processes: int = 0
    group: bool = False  # to every process of the locust, as Ctrl-C in a terminal
    after_requests: int = 0
    sigint_ignored: bool = False  # started as a background job of a non-interactive shell
    again: signal.Signals | None = None  # a second signal, ``again_s`` after the first
    again_s: float = 0.0

    def __str__(self) -> str:
        when = f"{self.after_requests} requests + " if self.after_requests else ""
        where = f"--processes {self.processes}" if self.processes else "local"
        where += " (group)" if self.group else ""
        again = f", {self.again.name} {self.again_s:.2f}s later" if self.again else ""
        return f"{self.sig.name} at {when}{self.delay_s:.2f}s{again}, {where}"


@dataclass(frozen=True)
class Stopped:
    exit_s: float  # from the signal until the locust and every process it forked had exited
    code: int
    rows: int | None  # the run directory's, None when there is none

    def __str__(self) -> str:
        left = f"{self.rows} rows" if self.rows is not None else "no run directory"
        return f"exited {self.code} in {self.exit_s:.2f}s, {left}"


def stop_once(start_locust: StartLocust, server: ServerProcess, case: Case) -> Stopped:
    """Start a chat locust against ``server``, signal it, check what it left."""
    before = idle_server_requests(server.url, CHAT_ROUTE)
    procs = ("--processes", str(case.processes)) if case.processes else ()
    locust = start_locust(
        "chat", "--host", server.url, *procs, "-u", "4", "-r", "4", "-t", "60s", *SMALL_LOAD,
        sigint_ignored=case.sigint_ignored,
    )  # fmt: skip
    if case.after_requests:
        sent = lambda: server_requests(server.url, CHAT_ROUTE) - before >= case.after_requests  # noqa: E731
        assert wait_until(sent, timeout_s=60), f"{case}: no load\n{locust.output()}"
    time.sleep(case.delay_s)
    signalled = time.monotonic()
    locust.send_signal(case.sig, group=case.group)
    if case.again is not None:
        time.sleep(case.again_s)
        with contextlib.suppress(ProcessLookupError):
            locust.send_signal(case.again, group=case.group)
    result = locust.wait(timeout_s=30)
    # Its workers too (they are in its process group; the reference server is not).
    assert wait_until(lambda: not _group_alive(locust.pid), timeout_s=10), f"{case}: orphans"
    exit_s = time.monotonic() - signalled
    assert exit_s <= EXIT_WITHIN_S, f"{case}: exited {exit_s:.1f}s after the signal"
    assert "Traceback" not in result.output or result.code == -case.sig, result.output
    if not result.run_dir.exists():
        # Stopped before the test: by slabench (one line, 128 + the signal), or by Python's
        # own handling while it still imported Locust (before slabench was loaded).
        assert result.code in (128 + case.sig, -case.sig), f"{case}: {result.output}"
        if result.code > 0:
            assert STOPPED_BEFORE_THE_TEST in result.output, result.output
        assert _settled(server, before, before) == before, f"{case}: requests went out"
        return Stopped(exit_s, result.code, None)
    assert result.code == 0, f"{case}: {result.output}"
    run = load_run(result.run_dir)
    assert run.meta["status"] == "complete", f"{case}: {run.meta['status']}"
    assert not run.from_parts and not (result.run_dir / "requests.parts").exists()
    df = run.requests
    assert run.meta["requests"] == len(df)
    if case.processes:
        assert "missing_workers" not in run.meta["generator"], run.meta["generator"]
    # A request cut off by the stop is recorded (cancelled) and may not have reached the
    # server's count: aiohttp drops one whose client left before its handler started.
    cancelled = int((df["error"] == CANCELLED_ERROR).sum())
    seen = _settled(server, before + len(df) - cancelled, before + len(df)) - before
    assert len(df) - cancelled <= seen <= len(df), f"{case}: server saw {seen}, rows {len(df)}"
    return Stopped(exit_s, result.code, len(df))


def _settled(server: ServerProcess, low: int, high: int) -> int:
    """The server's count once it reached ``high``, or held still in [low, high] for 1 s (a
    request still being answered is counted when its handler returns)."""
    seen = [server_requests(server.url, CHAT_ROUTE)]

    def settled() -> bool:
        seen.append(server_requests(server.url, CHAT_ROUTE))
        still = len(seen) > 5 and len(set(seen[-6:])) == 1 and low <= seen[-1]
        return seen[-1] == high or still

    wait_until(settled, timeout_s=10, interval_s=0.2)
    return seen[-1]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_stop_signals_at_random_moments(
    start_locust: StartLocust, reference_server: ServerProcess
) -> None:
    """Three signals at seeded moments: while the bundled server starts, in a --processes run
    started with SIGINT ignored (as CI runners start their commands: the Ctrl-C test that
    failed in CI), and a second Ctrl-C while a local run closes its run directory."""
    rng = random.Random(11)
    locust = start_locust("chat", "--server-args", SMALL_SERVER_ARGS, *SMALL_LOAD, "-t", "60s")
    starting = lambda: "starting the bundled reference server" in locust.output()  # noqa: E731
    assert wait_until(starting, timeout_s=60), locust.output()
    time.sleep(rng.uniform(0.0, 0.3))  # the server takes seconds to load its models
    signalled = time.monotonic()
    locust.send_signal(signal.SIGINT, group=True)
    result = locust.wait(timeout_s=30)
    assert wait_until(lambda: not _group_alive(locust.pid), timeout_s=10), "the server is left"
    assert time.monotonic() - signalled <= EXIT_WITHIN_S
    assert result.code == 128 + signal.SIGINT, result.output
    assert f"slabench: SIGINT {STOPPED_BEFORE_THE_TEST}" in result.output, result.output
    assert "Traceback" not in result.output, result.output
    assert not result.run_dir.exists()

    server = reference_server  # shared: each stop counts from an idle baseline
    cases = [
        Case(signal.SIGINT, rng.uniform(0, 1), processes=2, group=True, after_requests=20,
             sigint_ignored=True),
        Case(signal.SIGINT, rng.uniform(0, 1), after_requests=10, again=signal.SIGINT,
             again_s=0.05),
    ]  # fmt: skip
    for case in cases:
        stop_once(start_locust, server, case)


@contextlib.contextmanager
def busy_cpu(processes: int = 2) -> Iterator[None]:
    """``processes`` Python loops that keep the CPU busy meanwhile."""
    loops = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(processes)]
    try:
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait(10)


def stress_cases(seed: int, count: int) -> list[Case]:
    """``count`` locusts, each signalled at a seeded moment: a third while it starts (0-3 s
    after it started), the rest while it runs (0-3 s after the server saw its first
    requests); every fourth gets a second signal 0-0.5 s after the first."""
    rng = random.Random(seed)
    sigs = (signal.SIGINT, signal.SIGTERM)
    cases = []
    for i in range(count):
        processes = rng.choice((0, 2))
        sig = rng.choice(sigs)
        group = processes > 0 and rng.random() < 0.5
        after = 0 if i % 3 == 0 else 5
        again = rng.choice(sigs) if i % 4 == 3 else None
        cases.append(
            Case(sig, rng.uniform(0, 3), processes, group, after, again=again,
                 again_s=rng.uniform(0, 0.5))
        )  # fmt: skip
    return cases


@pytest.mark.stress
@pytest.mark.timeout(900)
def test_stop_signals_under_cpu_load(start_locust: StartLocust, start_server: StartServer) -> None:
    """20 signals at seeded random moments while two busy processes load the CPU."""
    server = start_server()
    slowest = 0.0
    with busy_cpu():
        for case in stress_cases(seed=2026, count=20):
            stopped = stop_once(start_locust, server, case)
            slowest = max(slowest, stopped.exit_s)
            print(f"{case}: {stopped}", flush=True)
    print(f"stop signals: 20 runs, slowest exit {slowest:.2f}s", flush=True)
