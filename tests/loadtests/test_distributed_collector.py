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


WAIT_SCRIPT = textwrap.dedent(
    """
    import time
    from loadtests.harness.distributed import MasterCollector

    collector = MasterCollector()
    collector.attach(lambda rows: None, {"w1", "w2"})
    collector.on_done("w1", {"records": 0})
    t0 = time.monotonic()
    assert collector.wait_for({"w1", "w2"}, 20.0, gone=lambda: {"w2"}) == {"w2"}
    lost_s = time.monotonic() - t0
    t0 = time.monotonic()
    assert collector.wait_for({"w1", "w2"}, 0.5) == {"w2"}
    print(f"{lost_s:.3f} {time.monotonic() - t0:.3f}")
    """
)


def test_a_lost_worker_is_not_waited_for_and_a_silent_one_until_the_timeout() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WAIT_SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lost_s, silent_s = (float(x) for x in done.stdout.split())
    assert lost_s < 5.0  # not the 20 s timeout: Locust already lost that worker
    assert silent_s >= 0.5  # a worker still heard from is waited for, up to the timeout
    assert "did not hand over its records" in done.stderr


DEFAULTS_SCRIPT = textwrap.dedent(
    """
    import time
    from locust import argument_parser
    from loadtests.harness.distributed import cache_locust_defaults

    def cpu_of_ten_calls():
        t0 = time.process_time()
        for _ in range(10):
            got = argument_parser.default_args_dict()
        return time.process_time() - t0, got

    uncached, before = cpu_of_ten_calls()
    cache_locust_defaults()
    cache_locust_defaults()  # twice: still one cache
    argument_parser.default_args_dict()  # computed once, here
    cached, after = cpu_of_ten_calls()
    assert after == before and argument_parser.default_args_dict() is after
    print(uncached, cached)
    """
)


def test_a_worker_computes_locusts_default_options_once() -> None:
    """A Locust worker looks its default options up once per option of every spawn message,
    and each lookup rebuilt and parsed the whole argument parser: the loop was held ~0.15 s
    a message (a disturbed run, see --max-loop-lag). Cached, the lookups cost nothing."""
    done = subprocess.run(
        [sys.executable, "-c", DEFAULTS_SCRIPT], cwd=ROOT, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    uncached_s, cached_s = map(float, done.stdout.split())
    assert uncached_s > 0.005 and cached_s < uncached_s / 20, (uncached_s, cached_s)
