"""Recording under faults, end to end in real Locust: a run killed hard keeps the requests
and the server metrics it had on disk, and a file size limit stops a run with one line,
exit 2, a ``write_failed`` run.json and counts that still add up to what the server saw."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from benchmarks.scripted_runs import ScriptedServer
from loadtests.recording.scrapes import SCRAPES_PER_PART
from sla.files.parts import part_paths
from sla.files.run import PARTS_DIR as REQUESTS_PARTS_DIR
from sla.files.run import load_run
from sla.files.server_metrics import SERVER_METRICS_PARTS_DIR
from tests.loadtests.conftest import SCENARIOS, SMALL_LOAD, StartLocust, clean_env
from tests.server_process import ServerProcess, wait_until

pytestmark = pytest.mark.e2e


def test_a_killed_run_keeps_the_requests_and_server_metrics_it_had_on_disk(
    start_locust: StartLocust, reference_server: ServerProcess
) -> None:
    """SIGKILL (no handler runs) once two parts of samples are on disk: the run directory
    still holds every sample of those parts, read back by load_run, and the requests of
    every --flush-interval before the kill."""
    locust = start_locust(
        "chat",
        *("--host", reference_server.url, "-u", "2", "-r", "2", "-t", "60s"),
        *("--scrape-interval", "0.2", "--flush-interval", "0.5", *SMALL_LOAD),
    )
    parts_dir = locust.run_dir / SERVER_METRICS_PARTS_DIR
    two_parts = wait_until(lambda: len(part_paths(parts_dir)) >= 2, timeout_s=40)
    assert two_parts, f"no server-metrics parts in {parts_dir}:\n{locust.output()[-3000:]}"
    locust.send_signal(signal.SIGKILL)
    locust.wait(timeout_s=20)

    kept = part_paths(parts_dir)
    run = load_run(locust.run_dir)
    assert run.from_parts and run.meta["status"] == "running"  # never closed
    samples = run.server_metrics
    assert samples is not None
    assert len(samples) == sum(pq.read_metadata(p).num_rows for p in kept)
    assert samples["scraped_at"].nunique() == SCRAPES_PER_PART * len(kept) >= 10
    assert samples["scraped_at"].is_monotonic_increasing
    assert "slabench_requests_total" in set(samples["name"])
    # The requests' parts too: a part every 0.5 s, so the kill (2 s in) left some behind.
    request_parts = part_paths(locust.run_dir / REQUESTS_PARTS_DIR)
    assert request_parts, locust.output()[-3000:]
    assert len(run.requests) == sum(pq.read_metadata(p).num_rows for p in request_parts) > 0
    assert run.requests["done_at"].notna().all()


# Runs its arguments (python -m locust ...) under a file size limit. Ignored signals stay
# ignored across exec, so a write past the limit fails with EFBIG instead of killing.
UNDER_FSIZE_LIMIT = """
import os, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""
# run.json (about 2 KB) and the scraped samples (3 KB) fit; the requests' part (15+ rows
# of 31 gaps each) does not.
FSIZE_LIMIT = 8 * 1024
USERS = 4
COUNTS = re.compile(
    r"recorded (\d+) = .*; run\.json requests (\d+) = (\d+) written \+ (\d+) not written "
    r"\(a write failed\)"
)


def test_a_file_size_limit_stops_the_run_with_one_line_and_counts_that_add_up(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    locust = [
        *("-m", "locust", "-f", str(SCENARIOS / "chat.py"), "--headless"),
        *("-u", str(USERS), "-r", str(USERS), "-t", "2s", "--run-dir", str(run_dir)),
        *("--model", "m", "--input-len", "fixed:8", "--output-len", "fixed:32"),
        *("--scrape-interval", "0.5", "--no-report"),
    ]
    with ScriptedServer("--ttft-ms", "5", "--itl-ms", "2", "--tokens", "32") as server:
        limited = [sys.executable, "-c", UNDER_FSIZE_LIMIT, str(FSIZE_LIMIT)]
        proc = subprocess.run(
            [*limited, *locust, "--host", server.url],
            cwd=tmp_path, capture_output=True, text=True, timeout=90, env=clean_env(None),
        )  # fmt: skip
        seen = server.served()
    output = proc.stdout + proc.stderr

    assert proc.returncode == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert errors[0].startswith(f"slabench: error: cannot write the requests to {run_dir}: ")
    assert "File too large" in errors[0]

    run = load_run(run_dir)  # what was written is readable
    meta = run.meta
    assert meta["status"] == "write_failed" and run.incomplete
    recorded, not_written = meta["requests"], meta["requests_not_written"]
    assert len(run.requests) == recorded - not_written
    assert not_written > 0 and recorded >= 2 * USERS
    # The server saw every recorded request, except at most one per user cut off at the end
    # before its handler ran; every request it saw was recorded, written or not.
    assert recorded - USERS <= seen <= recorded, (seen, recorded)
    assert run.server_metrics is not None and meta["server_metrics"]["samples"] > 0

    counts = COUNTS.search(proc.stdout)
    assert counts, proc.stdout[-3000:]
    rows, in_json, written, unwritten = map(int, counts.groups())
    assert (rows, in_json, written, unwritten) == (
        len(run.requests),
        recorded,
        recorded - not_written,
        not_written,
    )
