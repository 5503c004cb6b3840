"""Recording under faults, end to end in real Locust: a run killed hard keeps the server
metrics it had scraped."""

from __future__ import annotations

import signal

import pyarrow.parquet as pq
import pytest

from loadtests.recording.scrapes import SCRAPES_PER_PART
from sla.files.parts import part_paths
from sla.files.run import load_run
from sla.files.server_metrics import SERVER_METRICS_PARTS_DIR
from tests.loadtests.conftest import SMALL_LOAD, StartLocust
from tests.server_process import ServerProcess, wait_until

pytestmark = pytest.mark.e2e


def test_a_killed_run_keeps_the_server_metrics_it_scraped(
    start_locust: StartLocust, reference_server: ServerProcess
) -> None:
    """SIGKILL (no handler runs) once two parts of samples are on disk: the run directory
    still holds every sample of those parts, read back by load_run."""
    locust = start_locust(
        "chat",
        *("--host", reference_server.url, "-u", "2", "-r", "2", "-t", "60s"),
        *("--scrape-interval", "0.2", *SMALL_LOAD),
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
