"""Start the bundled reference server as a subprocess on a free loopback port.

Used by the Locust scenarios when no ``--host`` is given, and by tests and benchmarks. Only
the process started here is ever signalled, by its PID.
"""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from loadtests.children import tied_to_parent
from sla.errors import SlabenchError

READY = re.compile(r"ready at (http://[\d.]+:\d+)")

# Small models keep start-up and CPU time low in tests; benchmarks pass their own sizes.
SMALL_MODELS = (
    "--lm-layers", "2", "--lm-dim", "64", "--lm-heads", "4", "--max-model-len", "512",
    "--embed-layers", "1", "--embed-dim", "64", "--mlp-hidden", "128", "--mlp-in-features", "16",
    "--torch-threads", "1",
)  # fmt: skip


class ServerStartError(SlabenchError, RuntimeError):
    """The reference server exited or did not print its ready line in time (a bad
    ``--server-args`` most often): a user error, reported in one line."""


@dataclass
class ServerProcess:
    args: Sequence[str] = ()
    startup_timeout_s: float = 60.0
    url: str = ""
    proc: subprocess.Popen[str] | None = None
    output: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=500))
    _reader: threading.Thread | None = field(default=None, init=False, repr=False)

    def start(self) -> ServerProcess:
        cmd = [sys.executable, "-m", "reference_server", "--host", "127.0.0.1", "--port", "0",
               *self.args]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            preexec_fn=tied_to_parent(),  # a killed locust or pytest leaves no server behind
        )
        ready = threading.Event()
        self._reader = threading.Thread(target=self._pump, args=(ready,), daemon=True)
        self._reader.start()
        try:
            started = ready.wait(self.startup_timeout_s)
        except BaseException:  # a stop signal while it starts (in a locust, see harness.stopping)
            self.stop()
            raise
        if not started or not self.url:
            self.stop()
            tail = "".join(list(self.output)[-20:]).strip()
            raise ServerStartError(f"the reference server did not start: {tail or 'no output'}")
        return self

    def _pump(self, ready: threading.Event) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            match = READY.search(line)
            if match and not self.url:
                self.url = match.group(1)
                ready.set()
        ready.set()  # the process ended before it was ready

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else -1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self) -> None:
        """SIGTERM: the graceful drain starts; the caller waits with ``wait``."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout_s: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout_s)

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.proc is None:
            return
        if self.alive():
            self.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._reader is not None:
            self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until(
    predicate: Callable[[], bool], timeout_s: float = 10.0, interval_s: float = 0.05
) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return False
