"""The test side of ``benchmarks.scripted_server``: the server in a process of its own and
real Locust runs against it, read back from their run directories.

    with ScriptedServer("--mode", "split", "--ttft-ms", "20") as server:
        run = run_locust(server.url, tmp_path, "--no-report", run_time="1s")
        timings = server.timings()  # the server's own record, request by request

Kept apart from the server module, which every ``ScriptedServer`` starts as
``python -m benchmarks.scripted_server``: the server imports aiohttp and the clock only,
not pandas and ``sla`` (~0.5 s of every start).
"""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from prometheus_client.parser import text_string_to_metric_families

from sla.files.run import load_run
from sla.metrics import with_request_metrics

_READY = re.compile(r"ready at (http://[\d.]+:\d+)")
REPO_ROOT = Path(__file__).resolve().parents[1]
LOCUST_TIMEOUT_S = 90.0


class ScriptedServer:
    """The scripted server in a process of its own (never inside pytest's), on a free
    loopback port. Only the process started here is ever signalled."""

    def __init__(self, *flags: str, startup_timeout_s: float = 20.0) -> None:
        self.flags = flags
        self.url = ""
        self.output: collections.deque[str] = collections.deque(maxlen=200)
        self._startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[str] | None = None
        self._pump: threading.Thread | None = None

    def __enter__(self) -> ScriptedServer:
        cmd = [sys.executable, "-m", "benchmarks.scripted_server", "--port", "0", *self.flags]
        self._proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        ready = threading.Event()
        self._pump = threading.Thread(target=self._read_output, args=(ready,), daemon=True)
        self._pump.start()
        if not ready.wait(self._startup_timeout_s) or not self.url:
            self.__exit__()
            raise RuntimeError(f"scripted server did not start: {''.join(self.output)}")
        return self

    def _read_output(self, ready: threading.Event) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self.output.append(line)
            match = _READY.search(line)
            if match and not self.url:
                self.url = match.group(1)
                ready.set()
        ready.set()

    def __exit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._pump is not None:
            self._pump.join(5)
        if proc.stdout is not None:
            proc.stdout.close()

    @property
    def pid(self) -> int:
        assert self._proc is not None, "not started"
        return self._proc.pid

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=10) as resp:
            body: bytes = resp.read()
            return body

    def timings(self, path: str = "/v1/chat/completions") -> list[dict[str, Any]]:
        """The server's own record of each request to ``path``, in arrival order."""
        return [t for t in json.loads(self.get("/timings")) if t["path"] == path]

    def served(self, path: str = "/v1/chat/completions") -> int:
        """Requests to ``path`` counted by the server's Prometheus ``/metrics``."""
        for family in text_string_to_metric_families(self.get("/metrics").decode()):
            for sample in family.samples:
                if sample.labels.get("path") == path:
                    return int(sample.value)
        return 0


@dataclass(frozen=True)
class LocustRun:
    returncode: int
    output: str
    rows: pd.DataFrame  # requests.parquet with the metric columns, in send order

    def describe(self) -> str:
        """For assertion messages: what Locust printed last."""
        return self.output[-3000:]


def run_locust(
    host: str,
    work_dir: Path,
    *options: str,
    scenario: str = "chat",
    run_time: str = "3s",
    users: int = 1,
) -> LocustRun:
    """Run a scenario with real Locust (a subprocess) against ``host``; read its run dir."""
    run_dir = work_dir / "run"
    cmd = [
        sys.executable, "-m", "locust", "-f", str(REPO_ROOT / "loadtests" / "scenarios" /
        f"{scenario}.py"), "--headless", "-u", str(users), "-r", str(users), "-t", run_time,
        "--host", host, "--model", "m", "--run-dir", str(run_dir), "--scrape-interval", "0",
        "--input-len", "fixed:8", "--output-len", "fixed:16", *options,
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=work_dir, capture_output=True, text=True, timeout=LOCUST_TIMEOUT_S, check=False
    )
    output = proc.stdout + proc.stderr
    if not (run_dir / "run.json").exists():
        raise AssertionError(f"locust wrote no run directory (exit {proc.returncode}):\n{output}")
    rows = with_request_metrics(load_run(run_dir).requests)
    rows = rows.sort_values("sent_at", kind="stable").reset_index(drop=True)
    return LocustRun(proc.returncode, output, rows)
