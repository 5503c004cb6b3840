"""The master's collector hears only the workers of this run. It imports gevent, so it runs
in a subprocess (the pytest process stays unpatched and gevent-free)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import logging
    from loadtests.harness.distributed import MasterCollector

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    got = []
    collector = MasterCollector()
    collector.on_records("intruder-early", [("x",)])  # before the test started
    collector.attach(got.extend, {"w1", "w2"})
    collector.on_records("w1", [("a",), ("b",)])
    collector.on_records("intruder", [("forged",)])
    collector.on_records("intruder", [("forged again",)])
    collector.on_done("intruder", {"records": 1})
    collector.on_done("w1", {"records": 2})
    assert got == [("a",), ("b",)], got
    assert collector.received == {"w1": 2}, collector.received
    assert set(collector.done) == {"w1"}, collector.done
    assert collector.ignored == {"intruder-early": 1, "intruder": 3}, collector.ignored
    """
)


def test_records_from_an_unknown_node_are_ignored_and_logged() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("WARNING")]
    assert warnings == [
        "WARNING slabench: ignored 1 records from 'intruder-early': not a worker of this run",
        "WARNING slabench: ignored 1 records from 'intruder': not a worker of this run",
    ], done.stderr
