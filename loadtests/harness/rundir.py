"""One test run on the master (or the single local process): its run directory, recorder,
monitors and the summary at the end."""

from __future__ import annotations

import contextlib
import logging
import platform
import shlex
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from loadtests.client.clock import now
from loadtests.harness.options import LoadOptions
from loadtests.recording.monitors import CpuMonitor, MetricsScraper
from loadtests.recording.recorder import RequestRecorder, finish_run_json, start_run_json
from sla.files.run import RequestRecord, strip_credentials
from sla.files.server_metrics import SERVER_METRICS_FILE

log = logging.getLogger("slabench")


def default_run_dir(scenario: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("runs") / f"{stamp}-{scenario}"


def _fresh(path: Path) -> Path:
    """A second test in the same process (web UI) gets its own directory."""
    if not path.exists() or not any(path.iterdir()):
        return path
    n = 2
    while (candidate := path.with_name(f"{path.name}-{n}")).exists():
        n += 1
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
    ) -> None:
        self.options = options
        self.started_at = now()
        self.path = _fresh(Path(options.run_dir) if options.run_dir else default_run_dir(scenario))
        self.recorder = RequestRecorder(self.path)
        self.cpu = CpuMonitor()
        self.cpu.start()
        self.scraper: MetricsScraper | None = None
        if options.scrape_interval_s > 0:
            url = options.scrape_url or metrics_url(target_url)
            self.scraper = MetricsScraper(url, options.scrape_interval_s, tls=options.tls)
            self.scraper.start()
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
            },
        )

    def add(self, rec: RequestRecord) -> None:
        self.recorder.add(rec)

    def add_rows(self, rows: list[Any]) -> None:
        self.recorder.add_rows(rows)

    def close(
        self,
        *,
        status: str,
        ended_at: float,
        generator: dict[str, Any],
        extra: dict[str, Any],
    ) -> dict[str, Any]:
        """``generator`` holds the CPU summaries of the processes that sent requests."""
        master_cpu = self.cpu.stop()
        scrape = self.scraper.stop(self.path / SERVER_METRICS_FILE) if self.scraper else None
        count = self.recorder.close()
        if "local" in generator:  # one process both sent the requests and ran this monitor
            senders = [{**generator["local"], "cpu": master_cpu}]
        else:
            senders = list(generator.get("workers", []))
        saturated = any(p.get("cpu", {}).get("saturated") for p in senders)
        self.meta = finish_run_json(
            self.path,
            {
                "status": status,
                "ended_at": ended_at,
                "requests": count,
                "generator": {
                    "processes": senders,
                    "master_cpu": None if "local" in generator else master_cpu,
                    "saturated": saturated,
                    **{k: v for k, v in generator.items() if k not in ("local", "workers")},
                },
                "server_metrics": scrape,
                **extra,
            },
        )
        return self.meta
