"""Shared fixtures: the real reference server on a free loopback port.

The suite runs on pytest-xdist workers (see addopts in pyproject.toml), a test file at a
time on one worker: a module-scoped fixture is built once, a session-scoped one once per
worker. A test marked ``alone`` (its numbers depend on getting the CPU when it asks) runs
while no other worker runs a test.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from tests.server_process import SMALL_MODELS, ServerProcess

pytest_plugins = ["pytester"]

# What every Locust this suite starts is told, whoever starts it (``run_locust``, the pytest
# gate's ``sla_locust``, pytester, a capacity search's steps). The suite runs on a 2-core
# machine shared by two xdist workers, each with its reference servers and locusts: a
# locust's event loop there is held up for 150-300 ms at times (measured: 2 of 23 end-to-end
# runs over the default 50 ms bound for 1% of their few seconds). Those runs check what a run
# records and decides, not how fast the server is, so a stall counts only past a second;
# tests of the disturbance itself set the bound they mean (tests/loadtests/test_e2e_disturbed.py).
SUITE_ENV = {"SLABENCH_MAX_LOOP_LAG": "1000"}


def pytest_configure(config: pytest.Config) -> None:
    os.environ.update(SUITE_ENV)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker more than the cores (three on the 2-core CI machine). Most
    end-to-end tests wait on the clock (a Locust run of a few seconds, a server's start),
    leaving a third of the CPU idle with one worker a core; a third worker fills it. The
    tests whose figures need the CPU on time are marked ``alone``; ``--maxprocesses``
    (pyproject.toml) caps the count on larger machines."""
    return len(os.sched_getaffinity(0)) + 1


@contextlib.contextmanager
def _turn(run_dir: Path, alone: bool) -> Iterator[None]:
    """Hold the run's test lock, shared by the workers' tests, exclusive for an ``alone`` one.

    Taking the gate first gives the exclusive waiter priority: while it waits, no worker can
    start a new test, so the ones running finish and it gets its turn.
    """
    with (run_dir / "tests.gate").open("a") as gate, (run_dir / "tests.lock").open("a") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX)
        fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """On an xdist worker, run each test in its turn (see ``_turn``). Outside pytest-timeout's
    wrapper: waiting for the turn is not the test's own time."""
    basetemp = getattr(item.config, "workerinput", None) and item.config.option.basetemp
    if not basetemp:  # not on an xdist worker: nothing runs beside this test
        return (yield)
    with _turn(Path(basetemp).parent, item.get_closest_marker("alone") is not None):
        return (yield)


@pytest.fixture(scope="session")
def reference_server() -> Iterator[ServerProcess]:
    """One small reference server shared by the read-only tests of a session (of a worker)."""
    with ServerProcess(args=[*SMALL_MODELS, "--drain-timeout", "2"]) as server:
        yield server


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerProcess]]:
    """Start a dedicated server with extra options; every one started is stopped after."""
    started: list[ServerProcess] = []

    def start(*args: str, small: bool = True) -> ServerProcess:
        server = ServerProcess(args=[*(SMALL_MODELS if small else ()), *args]).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
