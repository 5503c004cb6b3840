"""Whether a load-generator process was disturbed: its loop lag summarised and judged
against the bound, and what the rest of the machine used. No gevent here (the greenlet
that measures the lag is ``monitors.LoopLagMonitor``), so ``--max-loop-lag`` and these
summaries can be imported anywhere.

Why it matters. Every timestamp a Locust process stamps on a request is taken by a
greenlet, and a greenlet runs only when the gevent loop gets to it. When the loop runs late
(a greenlet that does not yield, a garbage-collector pause, or the operating system giving
the process's core to other work) every timestamp taken meanwhile is late by as much: the
latencies recorded grow while the server's do not. The process's own CPU does not show
this (saturation, ``monitors.summarize_cpu``): a process that waits for a core uses none.

The rule. A greenlet sleeps a fixed interval again and again and records how much later
than asked it woke: the *loop lag*. A process is **disturbed** when its loop was later than
the bound (``--max-loop-lag``, default 50 ms) for more than 1% of the time it was watched.
The time counted for one late wake-up is its lag less the bound (greenlets due during that
part of the stall ran more than the bound late), so the rule weighs a stall by how long it
lasted: a percentile of the wake-ups would not, since a stalled loop wakes less often.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import psutil

# The default of --max-loop-lag (ms): a loop this late holds back every timestamp taken
# meanwhile by as much, which no latency SLA of an inference server can ignore.
DEFAULT_MAX_LOOP_LAG_MS = 50.0
# A process is disturbed when its loop was later than the bound for more than this share
# of the time it was watched.
DISTURBED_SHARE = 0.01
# How often the loop-lag greenlet wakes: 50 times a second, a few microseconds each.
LOOP_LAG_INTERVAL_S = 0.02


def summarize_loop_lag(
    lags_ms: Sequence[float], interval_s: float, bound_ms: float
) -> dict[str, Any]:
    """run.json ``loop_lag`` of one process: ``samples`` wake-ups every ``interval_ms``,
    their lag ``p50_ms``/``p99_ms``/``max_ms``, ``late_share`` (the share of the watched
    time the loop ran more than ``bound_ms`` late) and whether that made it ``disturbed``."""
    lags = np.asarray(lags_ms, dtype=np.float64)
    out: dict[str, Any] = {
        "samples": len(lags),
        "interval_ms": interval_s * 1000.0,
        "p50_ms": None,
        "p99_ms": None,
        "max_ms": None,
        "late_share": 0.0,
        "bound_ms": bound_ms,
        "disturbed": False,
    }
    if not len(lags):
        return out
    watched_ms = len(lags) * interval_s * 1000.0 + float(lags.sum())
    share = float(np.clip(lags - bound_ms, 0.0, None).sum()) / watched_ms
    p50, p99 = np.percentile(lags, [50, 99])
    out.update(
        p50_ms=round(float(p50), 3),
        p99_ms=round(float(p99), 3),
        max_ms=round(float(lags.max()), 3),
        late_share=round(share, 4),
        disturbed=share > DISTURBED_SHARE,
    )
    return out


def merge_loop_lag(per_process: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The run's ``loop_lag`` from its processes': samples added up, every other figure the
    worst process's, ``disturbed`` when any process was. None when none measured it (a
    worker of an older release)."""
    lags = [p for p in per_process if p.get("samples")]
    if not lags:
        return None

    def worst(key: str) -> Any:
        return max(p[key] for p in lags)

    return {
        "processes": len(lags),
        "samples": sum(int(p["samples"]) for p in lags),
        "p50_ms": worst("p50_ms"),
        "p99_ms": worst("p99_ms"),
        "max_ms": worst("max_ms"),
        "late_share": worst("late_share"),
        "bound_ms": worst("bound_ms"),
        "disturbed": any(bool(p.get("disturbed")) for p in lags),
    }


class MachineCpu:
    """What the rest of the machine used while this process ran: every core's busy time
    less this process's own CPU time, as a share of the whole machine (100% = every core
    busy with other work). Each ``sample()`` covers the time since the one before, or since
    ``start()``."""

    def __init__(self, proc: psutil.Process) -> None:
        self._proc = proc
        self.cores = psutil.cpu_count() or 1
        self.samples: list[float] = []
        self._last = self._now()

    def start(self) -> None:
        self._last = self._now()

    def _now(self) -> tuple[float, float, float]:
        machine = psutil.cpu_times()
        own = self._proc.cpu_times()
        # As psutil.cpu_percent counts it: Linux counts guest time in user time as well.
        guest = getattr(machine, "guest", 0.0) + getattr(machine, "guest_nice", 0.0)
        idle = machine.idle + getattr(machine, "iowait", 0.0)
        return time.monotonic(), sum(machine) - guest - idle, own.user + own.system

    def sample(self) -> None:
        now = self._now()
        (t0, busy0, own0), self._last = self._last, now
        t, busy, own = now
        if t > t0:
            others = max(0.0, (busy - busy0) - (own - own0))
            self.samples.append(min(100.0, 100.0 * others / ((t - t0) * self.cores)))

    def summary(self) -> dict[str, Any]:
        """run.json ``machine_cpu`` of one process."""
        return summarize_machine_cpu(self.samples, self.cores)


def summarize_machine_cpu(samples: Sequence[float], cores: int) -> dict[str, Any]:
    return {
        "samples": len(samples),
        "cores": cores,
        "others_mean_percent": round(sum(samples) / len(samples), 1) if samples else None,
        "others_max_percent": round(max(samples), 1) if samples else None,
    }


def merge_machine_cpu(per_process: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The run's ``machine_cpu``: the busiest figures any process saw (processes of one
    machine each count the others among the rest of the machine)."""
    seen = [p for p in per_process if p.get("samples")]
    if not seen:
        return None
    return {
        "samples": sum(int(p["samples"]) for p in seen),
        "cores": max(int(p["cores"]) for p in seen),
        "others_mean_percent": max(float(p["others_mean_percent"]) for p in seen),
        "others_max_percent": max(float(p["others_max_percent"]) for p in seen),
    }
