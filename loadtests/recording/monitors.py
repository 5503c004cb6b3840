"""Background greenlets that watch the run: the load generator (its own CPU, its loop lag,
the rest of the machine's CPU). The target's Prometheus scrapes are ``recording.scraper``."""

from __future__ import annotations

import logging
import math
from array import array
from typing import Any

import gevent
import psutil

from loadtests.client.clock import now
from loadtests.recording.disturbance import LOOP_LAG_INTERVAL_S, MachineCpu, summarize_loop_lag

log = logging.getLogger("slabench")

# A process above this share of one core is too busy to time requests faithfully.
SATURATED_CPU_PERCENT = 90.0
# ... and a run is flagged when that held for at least this share of its samples.
SATURATED_SHARE = 0.25


class CpuMonitor:
    """Samples this process's CPU use once a second (a Locust process uses one core), and
    what the rest of the machine used meanwhile (``machine``)."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self._interval_s = interval_s
        self._samples: list[float] = []
        self._proc = psutil.Process()
        self.machine = MachineCpu(self._proc)
        self._greenlet: gevent.Greenlet[Any, None] | None = None

    @property
    def samples(self) -> list[float]:
        """The CPU samples so far (percent of one core), oldest first."""
        return self._samples

    def start(self) -> None:
        self._proc.cpu_percent(None)  # the first call only sets the baseline
        self.machine.start()
        self._greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        while True:
            gevent.sleep(self._interval_s)
            self._samples.append(self._proc.cpu_percent(None))
            self.machine.sample()

    def stop(self) -> dict[str, Any]:
        if self._greenlet is not None:
            self._greenlet.kill(block=True)
            self._greenlet = None
        return summarize_cpu(self._samples)


class LoopLagMonitor:
    """Wakes every ``interval_s`` and records when it woke and how much later than asked:
    how late this process's gevent loop runs its callbacks (``recording.disturbance``).

    A timer's callback in the loop itself, the timer reset at each wake-up, rather than a
    greenlet that sleeps: the same wake-ups and the same lag, without a switch into a
    greenlet and a fresh ``gevent.sleep`` for each (``benchmarks.loop_lag_cost``)."""

    def __init__(self, interval_s: float = LOOP_LAG_INTERVAL_S) -> None:
        self._interval_s = interval_s
        self.woke_at = array("d")  # 16 bytes a sample with lags_ms: 2.9 MB an hour
        self.lags_ms = array("d")
        self._loop: Any = None
        self._timer: Any = None
        self._due = 0.0

    def start(self) -> None:
        self._loop = gevent.get_hub().loop
        self._timer = self._loop.timer(self._interval_s, self._interval_s)
        # A timer counts from the loop's cached time, which is as old as the loop's current
        # pass: refreshed, a late pass cannot shorten the wait and so hide the very lag it
        # measures.
        self._loop.update_now()
        self._due = now() + self._interval_s
        self._timer.start(self._woke)

    def _woke(self) -> None:  # in the loop
        woke = now()
        self.woke_at.append(woke)
        self.lags_ms.append(max(0.0, (woke - self._due) * 1000.0))
        # The same timer, reset to a whole interval from now (the loop's time refreshed
        # first, as above): each wait is the interval from the last wake-up. A new timer
        # for each cost an idle generator ~2 ms of CPU a second more
        # (benchmarks.idle_generator).
        self._timer.again(self._woke, update=True)
        self._due = now() + self._interval_s

    def stop(
        self, bound_ms: float, *, since: float | None = None, until: float | None = None
    ) -> dict[str, Any]:
        """The summary of the wake-ups between ``since`` and ``until`` (clock seconds):
        the measured window, without the warm-up and the stop's own work."""
        if self._timer is not None:
            self._timer.close()
            self._timer = None
        lo = -math.inf if since is None else since
        hi = math.inf if until is None else until
        kept = [lag for t, lag in zip(self.woke_at, self.lags_ms, strict=True) if lo <= t <= hi]
        return summarize_loop_lag(kept, self._interval_s, bound_ms)


class GeneratorMonitor:
    """Everything that says whether a process that sends requests timed them faithfully:
    its CPU (``cpu``: saturation), its loop lag (``loop_lag``: disturbance) and the rest of
    the machine's CPU (``machine_cpu``), as run.json records them for each process."""

    def __init__(self) -> None:
        self.cpu = CpuMonitor()
        self.loop_lag = LoopLagMonitor()

    def start(self) -> None:
        self.cpu.start()
        self.loop_lag.start()

    def stop(
        self, max_loop_lag_ms: float, *, since: float | None = None, until: float | None = None
    ) -> dict[str, Any]:
        """What run.json records of this process; the loop lag over ``since``..``until``."""
        return {
            "cpu": self.cpu.stop(),
            "loop_lag": self.loop_lag.stop(max_loop_lag_ms, since=since, until=until),
            "machine_cpu": self.cpu.machine.summary(),
        }


def summarize_cpu(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {
            "samples": 0,
            "mean_percent": None,
            "max_percent": None,
            "saturated_share": 0.0,
            "saturated": False,
        }
    busy = sum(1 for s in samples if s >= SATURATED_CPU_PERCENT) / len(samples)
    return {
        "samples": len(samples),
        "mean_percent": round(sum(samples) / len(samples), 1),
        "max_percent": round(max(samples), 1),
        "saturated_share": round(busy, 3),
        "saturated": len(samples) >= 3 and busy >= SATURATED_SHARE,
    }
