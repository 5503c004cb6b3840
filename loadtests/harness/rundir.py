"""One test run on the master (or the single local process): its run directory, recorder,
monitors and the summary at the end."""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import shlex
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import gevent
from gevent.event import Event

from loadtests.capacity.options import EXACT_RUN_DIR_ENV
from loadtests.client.clock import now
from loadtests.harness.failing_target import TARGET_DOWN_STATUS, DownWatch
from loadtests.harness.options import LoadOptions
from loadtests.harness.trace_outcome import trace_late
from loadtests.live.state import LiveState
from loadtests.recording.disturbance import merge_loop_lag, merge_machine_cpu
from loadtests.recording.monitors import GeneratorMonitor
from loadtests.recording.recorder import (
    RecordingError,
    RequestRecorder,
    finish_run_json,
    start_run_json,
)
from loadtests.recording.scraper import KSERVE_METRICS_PORTS, MetricsScraper
from sla.errors import SlabenchError
from sla.files.run import RequestRecord, strip_credentials

log = logging.getLogger("slabench")


class RunDirInUse(SlabenchError):
    """--run-dir is not empty and the parent will judge exactly that directory."""


def default_run_dir(scenario: str) -> Path:
    """``runs/<UTC second>-<scenario>``, created here: two made in the same second (in one
    process or several) get ``-2``, ``-3``... and never share a directory."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return reserve_dir(Path("runs") / f"{stamp}-{scenario}")


def reserve_dir(path: Path) -> Path:
    """The first of ``path``, ``path-2``, ``path-3``... that this call creates (an atomic
    mkdir, so no other process gets the same one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        candidate = path if n == 1 else path.with_name(f"{path.name}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1


def check_exact_run_dir(run_dir: str) -> None:
    """Refuse a non-empty --run-dir when the parent judges exactly that directory."""
    if run_dir and os.environ.get(EXACT_RUN_DIR_ENV) == "1" and not _empty(Path(run_dir)):
        raise RunDirInUse(f"--run-dir {run_dir} is not empty; this run must write exactly there")


def _empty(path: Path) -> bool:
    return not path.exists() or not any(path.iterdir())


def fresh_dir(path: Path) -> Path:
    """``path`` when it is empty or missing, else a new ``path-N`` beside it (said in the
    log: a second test in the same process, a second search into the same --run-dir)."""
    if _empty(path):
        return path
    check_exact_run_dir(str(path))
    candidate = reserve_dir(path)
    log.warning("%s is not empty: writing to %s instead", path, candidate)
    return candidate


def metrics_url(target_url: str) -> str:
    """``<target>/metrics``, keeping the target's path prefix but not its query."""
    parts = urlsplit(target_url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + "/metrics", "", ""))


def redacted_command(argv: Sequence[str], api_key: str) -> str:
    """The command line for run.json: the API key (however it was spelled on the command
    line) and URL credentials or secret query values are replaced by REDACTED."""
    out = []
    for arg in argv:
        if api_key:
            arg = arg.replace(api_key, "REDACTED")
        out.append(strip_credentials(arg) if "://" in arg else arg)
    return shlex.join(out)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("slabench", "locust", "gevent", "geventhttpclient", "pyarrow", "pandas"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


class RunSession:
    def __init__(
        self,
        *,
        options: LoadOptions,
        scenario: str,
        target_url: str,
        embedded: bool,
        users: dict[str, Any],
        extra_meta: dict[str, Any] | None = None,
    ) -> None:
        self.options = options
        self.started_at = now()
        run_dir = options.run_dir
        self.path = fresh_dir(Path(run_dir)) if run_dir else default_run_dir(scenario)
        self.recorder = RequestRecorder(self.path)
        self.failure: RecordingError | None = None
        # Ends the run early (a failed write, a target down); called once, in a greenlet.
        self.on_failure: Callable[[], None] | None = None
        self._went_down = Event()  # set by the watch when a request finds the target down
        self.down = DownWatch(on_down=self._went_down.set)
        self.target_down: str | None = None  # why the run stopped early: the target was down
        self._watch: gevent.Greenlet[Any, None] | None = None
        if options.failing.abort_when_down_s > 0:
            self._watch = gevent.spawn(self._watch_down, options.failing.abort_when_down_s)
        self.refused = 0  # requests that ended after a failed write: counted, not recorded
        self.live: LiveState | None = None  # the live view's state: sees every row recorded
        self.monitor = GeneratorMonitor()
        self.monitor.start()
        # A part of the requests every --flush-interval: a hard kill loses no more than that.
        self._flusher = gevent.spawn(self._flush_every, options.flush_interval_s)
        self.scraper: MetricsScraper | None = None
        if options.scrape_interval_s > 0:
            given = options.scrape_urls
            self.scraper = MetricsScraper(
                given or (metrics_url(target_url),),
                options.scrape_interval_s,
                self.path,
                tls=options.tls,
                probe_ports=() if given else KSERVE_METRICS_PORTS,
            )
            self.scraper.start()
        else:
            log.warning("no server metrics will be collected: --scrape-interval is 0")
        self.meta = start_run_json(
            self.path,
            {
                "status": "running",
                "scenario": scenario,
                "target_url": target_url,
                "embedded_server": embedded,
                "load_profile": {**options.describe(), **users},
                "started_at": self.started_at,
                "measured_from": self.started_at + options.warmup_s,
                "command": redacted_command(sys.argv, options.api_key),
                "versions": versions(),
                **(extra_meta or {}),
            },
        )

    def add(self, rec: RequestRecord) -> None:
        self.down.observe(rec)
        if self.live is not None:
            self.live.add_record(rec)
        if self.failure is not None:
            self.refused += 1
            return
        try:
            self.recorder.add(rec)
        except RecordingError as exc:
            self._failed(exc)

    def add_rows(self, rows: list[Any]) -> None:
        self.down.observe_rows(rows)
        if self.live is not None:
            self.live.add_rows(rows)
        if self.failure is not None:
            self.refused += len(rows)
            return
        try:
            self.recorder.add_rows(rows)
        except RecordingError as exc:
            self._failed(exc)

    def _flush_every(self, interval_s: float) -> None:
        while self.failure is None:
            gevent.sleep(interval_s)
            try:
                self.recorder.flush()
            except RecordingError as exc:
                self._failed(exc)

    def _watch_down(self, abort_s: float) -> None:
        """--abort-when-down: end the run once the target has been down for ``abort_s``.
        Asleep while the target answers (no wake-ups: the generator's fixed costs); once a
        request finds it down, a look every quarter second (or ``abort_s`` / 4)."""
        while self.down.down_for(now()) < abort_s:
            if self.down.down_since is None:
                self._went_down.clear()  # no yield since the check: a new fall sets it again
                self._went_down.wait()
                continue
            gevent.sleep(min(0.25, abort_s / 4))
        self.target_down = self.down.message(abort_s, str(self.path))
        if self.on_failure is not None:
            gevent.spawn(self.on_failure)  # it closes this session, which kills this greenlet

    def _failed(self, exc: RecordingError, *, stop: bool = True) -> None:
        """A write failed: the run cannot be recorded, so it ends (``on_failure``; the
        caller of ``close`` prints the one line)."""
        self.failure = exc
        if stop and self.on_failure is not None:
            gevent.spawn(self.on_failure)

    def close(
        self,
        *,
        status: str,
        ended_at: float,
        generator: dict[str, Any],
        extra: dict[str, Any],
    ) -> dict[str, Any]:
        """``generator`` holds what the processes that sent requests measured of themselves
        (CPU, loop lag, the machine's CPU); run.json adds the run's flags from them.
        ``status`` is replaced by ``write_failed`` after a failed write, and by
        ``target_down`` when --abort-when-down ended the run."""
        if self._watch is not None:
            self._watch.kill(block=True)
            self._watch = None
        # The loop lag of the measured window: the warm-up and the stop's own work (users
        # killed, files closed) are not what the requests measured were timed through.
        measured = self.monitor.stop(
            self.options.max_loop_lag_ms, since=self.meta["measured_from"], until=ended_at
        )
        self._flusher.kill(block=True)
        count = self._close_recorder()  # first: the requests matter more than the samples
        scrape = self.scraper.stop() if self.scraper else None
        if "local" in generator:  # one process both sent the requests and ran this monitor
            senders = [{**generator["local"], **measured}]
        else:
            senders = list(generator.get("workers", []))
        # Saturated: a busy CPU, or (trace replay) sends too late for the trace's schedule.
        saturated = any(p.get("cpu", {}).get("saturated") for p in senders) or trace_late(senders)
        loop_lag = merge_loop_lag([p.get("loop_lag") or {} for p in senders])
        self.meta = finish_run_json(
            self.path,
            {
                "status": self._status(status),
                "ended_at": ended_at,
                "requests": count,
                "requests_not_written": count - self.recorder.written,
                "generator": {
                    "processes": senders,
                    "master_cpu": None if "local" in generator else measured["cpu"],
                    "saturated": saturated,
                    "loop_lag": loop_lag,
                    "machine_cpu": merge_machine_cpu([p.get("machine_cpu") or {} for p in senders]),
                    "disturbed": bool(loop_lag and loop_lag["disturbed"]),
                    **{k: v for k, v in generator.items() if k not in ("local", "workers")},
                },
                "server_metrics": scrape,
                **({"target_down": self.target_down} if self.target_down else {}),
                **extra,
            },
        )
        return self.meta

    def _status(self, status: str) -> str:
        if self.failure is not None:
            return "write_failed"
        return TARGET_DOWN_STATUS if self.target_down is not None else status

    def _close_recorder(self) -> int:
        """The count of requests that ended during the run. After a failed write it includes
        those that could not be written: the buffered rows, and the requests that ended
        after the failure (``refused``); the complete parts hold ``recorder.written``."""
        if self.failure is None:
            try:
                return self.recorder.close()
            except RecordingError as exc:
                self._failed(exc, stop=False)
        return self.recorder.count + self.refused
