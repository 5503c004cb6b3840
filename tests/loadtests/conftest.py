"""Run Locust the way a user does: as a subprocess, against a reference server we started.

Locust must never be imported into the pytest process (it monkey-patches everything with
gevent), so the end-to-end tests drive ``python -m locust -f <scenario>`` and read back the
run directory with ``sla.files.run.load_run``.

    def test_x(run_locust: RunLocust, reference_server: ServerProcess) -> None:
        result = run_locust("chat", "--host", reference_server.url, "-t", "2s", *SMALL_LOAD)
        assert result.code == 0
        run = load_run(result.run_dir)

Each locust starts in a session of its own, so that a timeout can stop it together with the
workers (``--processes``) or the embedded server it forked, and nothing else. It starts with
SIGINT at its default, as from a terminal, whatever this pytest was handed (a CI runner that
starts its commands as background jobs of a shell hands them SIGINT ignored), unless the test
asks for it ignored.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NamedTuple, Protocol

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sla.files.run import CANCELLED_ERRORS
from tests.conftest import SUITE_ENV
from tests.server_process import SMALL_MODELS, wait_until

SCENARIOS = Path(__file__).resolve().parents[2] / "loadtests" / "scenarios"

# Short prompts and exact 8-token answers, sized for the byte-level reference server
# (1 char = 1 token; its small model may end an answer early unless told to ignore EOS).
SMALL_LOAD = (
    *("--chars-per-token", "1", "--input-len", "fixed:16", "--output-len", "fixed:8"),
    *("--ignore-eos", "on"),
    "--no-report",  # report.html has tests of its own (tests/reports); it costs ~1 s a run
)
# What a pytester run of the gate loads besides slabench's plugin: not Locust's (it would
# import locust, gevent's monkey-patching and all, into that pytest), nor Hypothesis' (0.8 s
# of every pytest start; no gate uses it).
GATE_PLUGINS = ("-p", "no:locust", "-p", "no:hypothesispytest")
# --server-args for an embedded server with the test fixtures' small models.
SMALL_SERVER_ARGS = shlex.join(SMALL_MODELS)


class LocustRun(NamedTuple):
    """A finished locust: its exit code, its stdout+stderr, and the run directory it used."""

    code: int
    output: str
    run_dir: Path


class LocustProcess:
    """A locust subprocess still running: signal it by its PID, then ``wait`` for it."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path, run_dir: Path) -> None:
        self.proc = proc
        self.log = log
        self.run_dir = run_dir

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def send_signal(self, sig: signal.Signals, *, group: bool = False) -> None:
        """Signal the locust process, or with ``group`` every process it forked too (its
        workers, its embedded server), as Ctrl-C in a terminal does."""
        if group:
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)

    def wait(self, timeout_s: float, what: str = "") -> LocustRun:
        """The finished locust; fail saying ``what`` it should have done by ``timeout_s``."""
        try:
            code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            tail = "\n".join(self.output().splitlines()[-30:])
            doing = f"{what}: " if what else ""
            pytest.fail(f"{doing}locust did not exit within {timeout_s:g}s; output:\n{tail}")
        return LocustRun(code, self.output(), self.run_dir)

    def kill(self) -> None:
        """Stop this locust and the processes it forked (its own session), if still running."""
        if self.proc.poll() is not None:
            return
        for sig, grace_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace_s)
                return


class StartLocust(Protocol):
    def __call__(
        self,
        scenario: str,
        *args: str,
        env: Mapping[str, str] | None = None,
        sigint_ignored: bool = False,
    ) -> LocustProcess: ...


class RunLocust(Protocol):
    def __call__(
        self,
        scenario: str,
        *args: str,
        timeout_s: float = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> LocustRun: ...


def free_port() -> int:
    """A loopback port nothing listens on (just released by the OS)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.contextmanager
def child_sigint(ignored: bool) -> Iterator[None]:
    """Start children (in this block) with SIGINT ignored, or at its default: exec resets a
    handled signal to its default and keeps an ignored one ignored. Main thread only."""
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.SIG_IGN if ignored else signal.default_int_handler)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def clean_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    """The test's environment without options a developer's shell may have set, with the
    suite's own (``tests.conftest.SUITE_ENV``) and then the test's ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLABENCH_", "LOCUST_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(SUITE_ENV)
    env.update(extra or {})
    return env


@pytest.fixture
def start_locust(tmp_path: Path) -> Iterator[StartLocust]:
    """Start ``locust -f loadtests/scenarios/<scenario>.py --headless <args>`` in ``tmp_path``.

    ``--run-dir`` is added (``tmp_path/run``, then ``run-2``...) unless ``args`` has one.
    ``sigint_ignored``: the locust inherits SIGINT ignored (else at its default). Every locust
    still running at the end of the test is stopped.
    """
    started: list[LocustProcess] = []

    def start(
        scenario: str,
        *args: str,
        env: Mapping[str, str] | None = None,
        sigint_ignored: bool = False,
    ) -> LocustProcess:
        n = len(started) + 1
        run_dir = tmp_path / ("run" if n == 1 else f"run-{n}")
        extra: tuple[str, ...] = ()
        if "--run-dir" in args:
            run_dir = Path(args[args.index("--run-dir") + 1])
        else:
            extra = ("--run-dir", str(run_dir))
        if "--processes" in args:
            # Not Locust's default port 5557: workers of another run on this machine would
            # join this master (and ours theirs).
            port = str(free_port())
            extra += ("--master-bind-host", "127.0.0.1", "--master-bind-port", port)
            extra += ("--master-host", "127.0.0.1", "--master-port", port)
        log = tmp_path / f"locust-{n}.log"
        cmd = [sys.executable, "-m", "locust", "-f", str(SCENARIOS / f"{scenario}.py")]
        with log.open("wb") as out, child_sigint(sigint_ignored):
            proc = subprocess.Popen(
                [*cmd, "--headless", *args, *extra],
                cwd=tmp_path,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=clean_env(env),
                start_new_session=True,
            )
        started.append(LocustProcess(proc, log, run_dir))
        return started[-1]

    yield start
    for process in started:
        process.kill()


@pytest.fixture
def run_locust(start_locust: StartLocust) -> RunLocust:
    """Run a scenario to completion (see ``start_locust``); fail the test after ``timeout_s``."""

    def run(
        scenario: str, *args: str, timeout_s: float = 60.0, env: Mapping[str, str] | None = None
    ) -> LocustRun:
        return start_locust(scenario, *args, env=env).wait(timeout_s)

    return run


def server_requests(url: str, endpoint: str) -> int:
    """Requests the reference server at ``url`` answered on ``endpoint`` (a route such as
    ``/v1/chat/completions``), whatever their status, from its ``slabench_requests_total``."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return int(
        sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "slabench_requests_total" and sample.labels["endpoint"] == endpoint
        )
    )


def _inflight(url: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "slabench_inflight_requests"
    )


def idle_server_requests(url: str, endpoint: str, timeout_s: float = 15.0) -> int:
    """``server_requests`` once the server has no request in flight (a test's baseline on
    the shared ``reference_server``): a request an earlier test left there, cut off by its
    locust's end, is counted by then. The server counts a request as its handler returns,
    in the same step as its in-flight gauge goes down."""
    assert wait_until(lambda: _inflight(url) == 0, timeout_s=timeout_s, interval_s=0.1), (
        f"the server at {url} still had requests in flight after {timeout_s:g}s"
    )
    return server_requests(url, endpoint)


def settled_server_requests(url: str, endpoint: str, expected: int, timeout_s: float = 10.0) -> int:
    """``server_requests``, polled until it equals ``expected`` or ``timeout_s`` passes.

    The server counts a request when its handler returns; one cut off when Locust stopped may
    still be finishing there.
    """
    seen = [server_requests(url, endpoint)]

    def reached() -> bool:
        seen.append(server_requests(url, endpoint))
        return seen[-1] == expected

    wait_until(reached, timeout_s=timeout_s, interval_s=0.2)
    return seen[-1]


def assert_server_saw_the_rows(url: str, route: str, rows: pd.DataFrame, before: int = 0) -> None:
    """The server answered one request on ``route`` per recorded row, give or take the rows
    cancelled by the end of the test: aiohttp drops a request whose client hung up before
    its handler started (on a keep-alive connection still finishing the previous answer),
    and an open-loop send the stop killed before it left never reached it."""
    cancelled = int(rows["error"].isin(CANCELLED_ERRORS).sum())
    seen = settled_server_requests(url, route, before + len(rows)) - before
    assert len(rows) - cancelled <= seen <= len(rows), (
        f"server saw {seen} requests on {route}; the run recorded {len(rows)} "
        f"({cancelled} cancelled at the end)"
    )
