"""One segment of a capacity-search step: a locust of its own, its log, its run directory.

``StepRunner.run`` starts ``python -m locust`` with the user's arguments followed by the
step's own (later options win in Locust's parser), waits for it and reads its run back.
While it runs, the step's live lines reach the search's terminal (``relay``) and ``beat``
is called every ``beat_s`` (the search's progress line). ``check`` says whether the step
*errored* (its locust failed, or the target refused a connection: it was not listening) as
opposed to running and being judged.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import gevent

from loadtests.capacity.options import BUNDLED_ENV, EXACT_RUN_DIR_ENV, STEP_ENV
from loadtests.capacity.relay import LogFollower, relayed
from loadtests.children import tied_to_parent
from sla.files.error_class import REFUSED
from sla.files.run import Run, RunDirError, load_run

EXIT_USAGE = 2
STEP_EXIT_CODES = (0, 1, 3, 4)  # a step's own --sla verdict, not a failure of the step
HEARTBEAT_S = 15.0  # the beat without a live view
_POLL_S = 0.2
HANG_GRACE_S = 120.0  # past its -t, a step's locust is hung


class StepUsageError(Exception):
    """A step's locust rejected its options (exit 2): every step would; str() is its line."""


@dataclass(frozen=True, slots=True)
class Segment:
    path: Path
    code: int | None  # None: it hung and was stopped
    wall_s: float
    log_tail: str


class StepRunner:
    def __init__(
        self,
        *,
        argv: Sequence[str],
        target_url: str,
        sweep_dir: Path,
        bundled: bool,
        say: Callable[[str], None],
        local_master: bool = False,
        beat: Callable[[float, int], None] | None = None,
        beat_s: float = HEARTBEAT_S,
    ) -> None:
        self.argv = [a for a in argv if a != "--capacity-search"]
        self.target_url = target_url
        self.sweep_dir = sweep_dir
        self.bundled = bundled
        self.local_master = local_master
        self.say = say
        self.beat = beat or self._heartbeat
        self.beat_s = beat_s if beat_s > 0 else HEARTBEAT_S
        self.child: subprocess.Popen[bytes] | None = None
        self.interrupted = False

    def run(
        self,
        name: str,
        run_s: int,
        warmup_s: float,
        load_args: Sequence[str],
        *,
        label: str = "",
    ) -> Segment:
        """Run the step's locust for ``run_s``; its live lines are relayed as ``label``'s."""
        path = self.sweep_dir / name
        path.mkdir()  # the search's sweep is fresh, so a step's directory is new: judged as written
        cmd = [
            *(sys.executable, "-m", "locust", *self.argv),
            *("--headless", "--no-report", "--host", self.target_url),
            *("--run-dir", str(path), "--warmup", f"{warmup_s:g}s", "-t", f"{run_s}s"),
            *load_args,
            *(self._master_args() if self.local_master else ()),
        ]
        env = {k: v for k, v in os.environ.items() if k != "SLABENCH_CAPACITY_SEARCH"}
        env[STEP_ENV] = "1"
        env[EXACT_RUN_DIR_ENV] = "1"  # it writes exactly there, or fails
        if self.bundled:
            env[BUNDLED_ENV] = "1"
        log_path = self.sweep_dir / f"{name}.log"
        t0 = time.monotonic()
        code = self.execute(cmd, env, log_path, label or name, run_s)
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-12:])
        return Segment(path, code, time.monotonic() - t0, tail)

    def execute(
        self, cmd: Sequence[str], env: dict[str, str], log_path: Path, label: str, run_s: int
    ) -> int | None:
        """Run ``cmd`` with its output in ``log_path`` and wait for it (None: it hung past
        ``run_s`` and was stopped), relaying its live lines meanwhile."""
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=tied_to_parent()
            )  # a killed search leaves no step running
            self.child = proc
            try:
                return self._wait(proc, run_s, LogFollower(log_path), label)
            finally:
                self.child = None

    @staticmethod
    def _master_args() -> list[str]:
        """--processes: each step's master on a port of its own (the searching process,
        itself a master with idle workers, holds the one given on the command line)."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = str(sock.getsockname()[1])
        return [
            *("--master-bind-host", "127.0.0.1", "--master-bind-port", port),
            *("--master-host", "127.0.0.1", "--master-port", port),
        ]

    def _wait(
        self, proc: subprocess.Popen[bytes], run_s: int, log: LogFollower, label: str
    ) -> int | None:
        t0 = time.monotonic()
        next_beat = t0 + self.beat_s
        while proc.poll() is None:
            now = time.monotonic()
            if now > t0 + run_s + HANG_GRACE_S:
                stop_process(proc)
                return None
            self._relay(log, label)
            if now >= next_beat and not self.interrupted:
                next_beat += self.beat_s
                self.beat(now - t0, run_s)
            gevent.sleep(_POLL_S)
        self._relay(log, label)  # what it printed as it ended
        return proc.returncode

    def _relay(self, log: LogFollower, label: str) -> None:
        for line in log.new_lines():
            said = relayed(line, label)
            if said is not None:
                self.say(said)

    def _heartbeat(self, elapsed_s: float, run_s: int) -> None:
        self.say(f"  ... {elapsed_s:.0f}/{run_s}s")

    def interrupt(self) -> None:
        """A signal reached the search: stop the step in flight (it keeps its records)."""
        self.interrupted = True
        if self.child is not None:
            gevent.spawn(stop_process, self.child, 3.0)

    def check(self, seg: Segment) -> tuple[str | None, Run | None]:
        """Why the segment errored (None when it ran and can be judged), and its run."""
        if seg.code is None:
            return f"its locust did not finish; see {seg.path.name}.log", None
        try:
            run = load_run(seg.path)
        except RunDirError as exc:
            if seg.code == EXIT_USAGE:
                raise StepUsageError(last_line(seg.log_tail) or str(exc)) from None
            return f"locust exited {seg.code} without a run: {last_line(seg.log_tail) or exc}", None
        if seg.code not in STEP_EXIT_CODES:
            return f"locust exited {seg.code}: {last_line(seg.log_tail)}", run
        if run.incomplete:
            return f"its run is incomplete: {'; '.join(run.incomplete)}", run
        refused = (run.requests["error_class"] == REFUSED).to_numpy(dtype=bool)
        if refused.any():
            return (
                f"{int(refused.sum())} requests were refused a connection: the target was "
                "not listening (restarted or crashed) during the step",
                run,
            )
        return None, run

    def wait_for_target(self, timeout_s: float) -> bool:
        """True once the target accepts a TCP connection again; False after ``timeout_s``
        or when interrupted."""
        parts = urlsplit(self.target_url)
        host = parts.hostname or "127.0.0.1"
        port = parts.port or (443 if parts.scheme == "https" else 80)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.interrupted:
            try:
                with socket.create_connection((host, port), timeout=2.0):
                    return True
            except OSError:
                gevent.sleep(0.5)
        return False


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 0.0) -> None:
    """Let a step's locust end on the signal it got from the terminal, then SIGTERM it (it
    closes its run directory), then kill it."""
    for sig, wait_s in ((None, grace_s), (signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            return
        if sig is not None:
            proc.send_signal(sig)
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            continue


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
