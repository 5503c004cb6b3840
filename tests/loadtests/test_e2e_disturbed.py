"""A load generator whose event loop is held up is *disturbed*: every timestamp taken while
it was held is late, so the run is never a PASS, however good its numbers look."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.loadtests.conftest import SMALL_LOAD, RunLocust
from tests.server_process import ServerProcess

pytestmark = pytest.mark.e2e

# The chat scenario, with its gevent loop held four times for 300 ms during the run: a
# blocking call, as a CPU-bound greenlet or a machine too busy to give the process its core
# would hold it. Every greenlet (every request's timestamps) waits meanwhile.
HELD_LOCUSTFILE = '''
"""The chat scenario with its event loop held up by a blocking call, four times."""
import gevent
from gevent import monkey
from locust import events

from loadtests.scenarios.chat import *  # noqa: F403  (the scenario's user class)

hold = monkey.get_original("time", "sleep")


def hold_the_loop():
    for _ in range(4):
        gevent.sleep(0.35)
        hold(0.3)


@events.test_start.add_listener
def _start(**_):
    gevent.spawn(hold_the_loop)
'''


def test_a_held_event_loop_makes_the_run_inconclusive_never_a_pass(
    run_locust: RunLocust, reference_server: ServerProcess, tmp_path: Path
) -> None:
    locustfile = tmp_path / "held_chat.py"
    locustfile.write_text(HELD_LOCUSTFILE)
    loose = tmp_path / "sla.yaml"
    loose.write_text("name: loose\nobjectives:\n  - {metric: latency_ms, stat: p50, max: 5000}\n")
    result = run_locust(
        str(locustfile.with_suffix("")),
        *("--host", reference_server.url, "-u", "2", "-t", "3s", "--sla", str(loose)),
        *SMALL_LOAD,
        "--sla-allow-inconclusive",  # excuses too few samples, never late timestamps
        env={"SLABENCH_MAX_LOOP_LAG": "50"},  # the default bound, whatever the suite sets
    )
    assert result.code == 3, result.output
    verdict = json.loads((result.run_dir / "verdict.json").read_text())
    assert verdict["status"] == "INCONCLUSIVE" and verdict["exit_code"] == 3
    assert verdict["objectives"][0]["status"] == "PASS"  # the numbers alone would pass
    (reason,) = verdict["disturbed"]
    assert "the load generator's event loop ran more than 50 ms (--max-loop-lag) late" in reason
    assert f"DISTURBED LOAD GENERATOR, never a PASS: {reason}" in result.output
    generator = json.loads((result.run_dir / "run.json").read_text())["generator"]
    assert generator["disturbed"] is True
    lag = generator["loop_lag"]
    # Each hold leaves the lag monitor at least 280 ms late (it may wake up to 20 ms into
    # one); four of them are over a fifth of the 3 s measured.
    assert lag["max_ms"] >= 280.0 and lag["late_share"] >= 0.2 and lag["bound_ms"] == 50.0
    (process,) = generator["processes"]
    assert process["machine_cpu"]["cores"] >= 1 and process["cpu"]["samples"] >= 1
