"""For benchmarks/poll_interval.py: slabench's measured chat users (``accuracy_mix.py``), and
a greenlet that switches the event loop's poll interval between ``SLABENCH_BENCH_POLLS_MS``
(comma-separated, e.g. "0,2") segment by segment, in this one Locust process.

Each segment lasts ``SLABENCH_BENCH_SEGMENT_S``; from ``SLABENCH_BENCH_SETTLE_S`` after its
switch (longer than a request) to its end, the process's CPU and the requests completed
are counted. At the end one line ``POLLS {json}`` on stderr: ``[[interval_ms, us_per_request,
requests], ...]`` a segment. The run's own ``--poll-interval-ms`` is overridden from the
first segment on (the greenlet starts ``SLABENCH_BENCH_START_S`` after the test does).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import gevent
from locust import events

from benchmarks.locustfiles.accuracy_mix import MeasuredChat  # noqa: F401 - the users
from loadtests.client.clock import now
from loadtests.client.polling import set_poll_interval
from loadtests.harness import state as run_state_module

POLLS_MS = [float(v) for v in os.environ.get("SLABENCH_BENCH_POLLS_MS", "0,2").split(",")]
SEGMENTS = int(os.environ.get("SLABENCH_BENCH_SEGMENTS", "20"))
SEGMENT_S = float(os.environ.get("SLABENCH_BENCH_SEGMENT_S", "2"))
SETTLE_S = float(os.environ.get("SLABENCH_BENCH_SETTLE_S", "0.5"))
START_S = float(os.environ.get("SLABENCH_BENCH_START_S", "3"))

_done: list[float] = []
_record = run_state_module.RunState.record


def _counting_record(self: Any, rec: Any) -> None:
    if rec.error is None:
        _done.append(rec.done_at)
    _record(self, rec)


run_state_module.RunState.record = _counting_record  # type: ignore[method-assign]


def _alternate() -> None:
    gevent.sleep(START_S)
    out = []
    for s in range(SEGMENTS):
        interval_ms = POLLS_MS[s % len(POLLS_MS)]
        set_poll_interval(interval_ms / 1000.0)
        gevent.sleep(SETTLE_S)
        cpu0, t0, seen = time.process_time(), now(), len(_done)
        gevent.sleep(SEGMENT_S - SETTLE_S)
        cpu1, t1 = time.process_time(), now()
        n = sum(1 for d in _done[seen:] if t0 <= d <= t1)
        out.append([interval_ms, (cpu1 - cpu0) / max(n, 1) * 1e6, n])
    print("POLLS " + json.dumps(out), file=sys.stderr, flush=True)


@events.test_start.add_listener
def _start(environment: Any, **_: Any) -> None:
    gevent.spawn(_alternate)
