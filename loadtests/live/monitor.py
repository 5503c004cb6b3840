"""The live view while a run goes: every ``--live-interval`` a greenlet takes a snapshot of
the ``LiveState``, prints its lines (beside Locust's own output, never instead of it), keeps
a point for the web UI's charts, and with ``--sla-stop-early`` ends the run when an
objective's FAIL is settled (``sla.provisional.settled_failures``).

Cheap by construction: the state is updated as rows reach the recorder (a few list appends
a row; ``sla.live.Tally`` counts them in batches); the snapshot, the sketches' quantiles
and the judgement run once per interval (and once per web UI poll), never per request; a
look yields to the requests in flight after each endpoint's figures."""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Any

import gevent

from loadtests.client.clock import now
from loadtests.live.state import LiveState
from loadtests.live.view import endpoint_figures, format_lines, objective_figures
from sla.live import LiveSamples
from sla.provisional import judge_live, settled_failures
from sla.sketch import RELATIVE_ERROR
from sla.spec import Spec

__all__ = ["MAX_LOOKS", "LiveMonitor", "looks_for"]

log = logging.getLogger("slabench")
MAX_LOOKS = 360  # without -t: an hour of looks at 10 s; after them no early stop
HISTORY_POINTS = 720


def looks_for(run_time_s: float | None, interval_s: float) -> int:
    """How many looks the early stop splits its error across: one per interval of the
    run's -t, or ``MAX_LOOKS`` when the run has no set length."""
    if not interval_s > 0:
        return 0
    if run_time_s and run_time_s > 0:
        return max(1, math.ceil(run_time_s / interval_s))
    return MAX_LOOKS


class LiveMonitor:
    """Snapshots, terminal lines, chart history and the early stop of one run."""

    def __init__(
        self,
        state: LiveState,
        *,
        started_at: float,
        scenario: str,
        interval_s: float,
        spec: Spec | None = None,
        stop_early: bool = False,
        looks: int = MAX_LOOKS,
        generator: Callable[[], dict[str, Any]] = dict,
        on_stop: Callable[[], None] | None = None,
        printer: Callable[[str], None] | None = None,
    ) -> None:
        self.state = state
        self.started_at = started_at
        self.scenario = scenario
        self.interval_s = interval_s
        self.spec = spec
        self.stop_early = stop_early and spec is not None
        self.looks = looks
        self.looks_done = 0
        self.generator = generator
        self.on_stop = on_stop
        self.printer = printer or _print
        self.stopped_early: str | None = None
        self.ended_at: float | None = None
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY_POINTS)
        self._greenlet: gevent.Greenlet[Any, None] | None = None

    def start(self) -> None:
        if self.interval_s > 0:
            self._greenlet = gevent.spawn(self._loop)

    def stop(self, ended_at: float) -> None:
        """End the looks (the last snapshot stays for the web UI, frozen at ``ended_at``)."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True)
            self._greenlet = None
        self.ended_at = ended_at

    def _loop(self) -> None:
        while True:
            gevent.sleep(self.interval_s)
            try:
                self.look()
            except Exception:  # never let the view end the run
                log.exception("slabench: the live view failed; the run goes on without it")
                return

    def look(self) -> dict[str, Any]:
        """One look: snapshot, history point, lines printed, the early stop considered."""
        snap = self.snapshot()
        self.history.append(_point(snap))
        for line in format_lines(snap):
            self.printer(line)
        if not snap["warming_up"]:
            self.looks_done += 1
            self._consider_stop(snap["now"])
        return snap

    def _consider_stop(self, at: float) -> None:
        if not self.stop_early or self.stopped_early is not None or self.looks_done > self.looks:
            return
        assert self.spec is not None
        failed = settled_failures(
            self.spec,
            self.state.window,
            scenario=self.scenario,
            window_s=self.state.window_s(at),
            looks=self.looks,
        )
        if failed:
            self.stopped_early = f"stopped early after {at - self.started_at:.0f}s: " + "; ".join(
                failed
            )
            self.printer(f"slabench: {self.stopped_early}")
            if self.on_stop is not None:
                gevent.spawn(self.on_stop)

    def snapshot(self) -> dict[str, Any]:
        """Everything the live view shows, JSON-able (the web UI serves it as it is)."""
        at = self.ended_at if self.ended_at is not None else now()
        state = self.state
        recent = state.recent(at)
        window_s = state.window_s(at)
        endpoints = []
        for name in state.endpoints():
            endpoints.append(
                endpoint_figures(
                    name,
                    state.window[name],
                    recent.get(name, LiveSamples()),
                    window_s,
                    state.recent_s,
                )
            )
            # Let the requests in flight run between endpoints: with many endpoints a look
            # would otherwise hold the loop for its whole length, and delay their timestamps.
            gevent.sleep(0)
        sla = None
        if self.spec is not None:
            results = judge_live(self.spec, state.window, scenario=self.scenario, window_s=window_s)
            sla = objective_figures(results, self.spec.confidence)
        return {
            "provisional": True,
            "relative_error": RELATIVE_ERROR,
            "now": at,
            "elapsed_s": at - self.started_at,
            "warming_up": window_s is None,
            "running": self.ended_at is None,
            "recent_s": state.recent_s,
            "endpoints": endpoints,
            "sla": sla,
            "generator": self.generator(),
            "stopped_early": self.stopped_early,
            "looks": {"done": self.looks_done, "allowed": self.looks} if self.stop_early else None,
            "history": list(self.history),
        }


def _print(line: str) -> None:
    # Flushed: when stdout is a file or a pipe (a capacity step's log, `| tee`) the line
    # must be there now, not when a buffer fills.
    print(line, flush=True)


def _point(snap: dict[str, Any]) -> dict[str, Any]:
    """The chart point of a snapshot: the first endpoint's TTFT over the last seconds, and
    the throughput of all of them."""
    first = snap["endpoints"][0] if snap["endpoints"] else None
    ttft = first["recent"]["ttft_ms"] if first else {}
    return {
        "elapsed_s": round(snap["elapsed_s"], 3),
        "ttft_p50_ms": ttft.get("p50"),
        "ttft_p99_ms": ttft.get("p99"),
        "requests_per_s": sum(e["recent_requests_per_s"] or 0.0 for e in snap["endpoints"]),
        "output_tokens_per_s": sum(
            e["recent_output_tokens_per_s"] or 0.0 for e in snap["endpoints"]
        ),
    }
