"""``--sla-stop-early``: a run against a server far over the limit ends as soon as the FAIL
is settled, long before its -t, and says why in verdict.json, run.json and its exit code.
(A passing run with it runs its whole -t: tests/loadtests/test_e2e_sla.py.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.loadtests.conftest import SMALL_LOAD, RunLocust
from tests.server_process import ServerProcess

pytestmark = pytest.mark.e2e

StartServer = Callable[..., ServerProcess]


def test_stop_early_ends_a_plainly_failing_run_with_the_reason(
    run_locust: RunLocust, start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server("--fault-latency", "fixed:300")  # every request takes >= 300 ms
    sla = tmp_path / "sla.yaml"
    sla.write_text("objectives:\n  - {metric: latency_ms, stat: p50, max: 100}\n")
    result = run_locust("chat", "--host", server.url, "-u", "4", "-t", "60s", "--sla", str(sla),
                        "--sla-stop-early", "--live-interval", "1", *SMALL_LOAD)  # fmt: skip
    assert result.code == 1, result.output
    meta = json.loads((result.run_dir / "run.json").read_text())
    assert meta["ended_at"] - meta["started_at"] < 20, "it ran to its -t, not stopped early"
    verdict = json.loads((result.run_dir / "verdict.json").read_text())
    assert verdict["status"] == "FAIL" and verdict["exit_code"] == 1
    assert "p50 latency_ms FAIL settled at" in verdict["stopped_early"]
    assert meta["stopped_early"] == verdict["stopped_early"]
    assert "slabench live SLA (provisional) p50 latency_ms:" in result.output
    assert "STOPPED EARLY (--sla-stop-early)" in result.output
