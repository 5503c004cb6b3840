"""Trace replay: each row of a trace sent at the trace's own time, and the run's end with it.

The dispatcher of one process (``Replay.run``) takes its share of the window's rows (row i
goes to worker ``i % count``, so workers keep the trace's times), builds each request before
it is due (never inside its latency), sends it at ``t0 + offset`` with that moment as its
``scheduled_at`` (latency counts from it: no coordinated omission), and drops it as any open
loop does when ``--max-inflight`` requests are already out. It measures how late its sends
left (``sent_at - scheduled_at`` of the sends due in the measured window): a p99 above
``--max-send-lag`` means the generator could not keep the trace's schedule, and run.json's
``generator.saturated`` says so (never a PASS).

When its rows are sent and answered, a local process ends the run (as ``-t`` would); a
worker tells the master, which ends the run when every worker has.
"""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

import gevent
import numpy as np
from gevent.pool import Pool
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtests.client.clock import now
from loadtests.client.protocols import PreparedRequest, RequestBuilder
from loadtests.client.transport import Transport
from loadtests.workloads.trace_prompts import TracePrompts
from loadtests.workloads.traces import Trace, for_worker
from sla.files.run import RequestRecord

__all__ = ["TRACE_DONE", "Replay", "end_when_replayed", "listen_for_trace_ends"]

TRACE_DONE = "slabench_trace_done"


class Sender(Protocol):
    """What the replay asks of the run state (``loadtests.harness.state.RunState``)."""

    def builder_for(self, cls: Any) -> RequestBuilder: ...

    def send(
        self, transport: Transport, req: PreparedRequest, scheduled_at: float = math.nan
    ) -> RequestRecord: ...

    def record_dropped(self, req: PreparedRequest, scheduled_at: float) -> None: ...

    def spawn_send(
        self,
        pool: Pool,
        req: PreparedRequest,
        scheduled_at: float,
        run: Callable[..., Any],
        *args: Any,
    ) -> None: ...


class Replay:
    """One process's share of a trace; ``run`` is its dispatcher greenlet."""

    def __init__(
        self,
        sender: Sender,
        trace: Trace,
        prompts: TracePrompts,
        *,
        index: int,
        count: int,
        t0: float,
        measured_from: float,
        max_send_lag_ms: float,
        seed: int,
    ) -> None:
        self._sender = sender
        self._trace = trace
        self._prompts = prompts
        self._index, self._count = index, count
        self._t0 = t0
        self._measured_from = measured_from
        self._bound_ms = max_send_lag_ms
        self._rng = random.Random(seed + index)
        self._lags_ms: array[float] = array("d")
        self.rows = len(range(index, trace.rows, count))
        self.sent = 0
        self.dropped = 0
        self.finished = False

    def run(
        self,
        pool: Pool,
        transport: Transport,
        classes: Sequence[Any],
        on_done: Callable[[], None],
    ) -> None:
        weights = [getattr(c, "weight", 1) for c in classes]
        rows = for_worker(self._trace.iter_rows(), self._index, self._count)
        for row in rows:
            scheduled_at = self._t0 + row.offset_s
            cls = self._rng.choices(classes, weights)[0] if len(classes) > 1 else classes[0]
            req = self._sender.builder_for(cls).build(self._prompts.prompt(row))
            if row.session_id is not None:
                req = replace(req, session_id=row.session_id)
            delay = scheduled_at - now()
            if delay > 0:
                gevent.sleep(delay)
            if pool.full():
                self.dropped += 1
                self._sender.record_dropped(req, scheduled_at)
                continue
            self._sender.spawn_send(
                pool, req, scheduled_at, self._send, transport, req, scheduled_at
            )
            # Let it leave now: the next row's prompt is built after, not before, this send.
            gevent.sleep(0)
        pool.join()
        self.finished = True
        on_done()

    def _send(self, transport: Transport, req: PreparedRequest, scheduled_at: float) -> None:
        self.sent += 1
        rec = self._sender.send(transport, req, scheduled_at)
        if scheduled_at >= self._measured_from and not math.isnan(rec.sent_at):
            self._lags_ms.append((rec.sent_at - scheduled_at) * 1000.0)

    def summary(self) -> dict[str, Any]:
        """What run.json records of this process's replay (``generator.processes[].trace``)."""
        lags = np.frombuffer(self._lags_ms, dtype=np.float64) if self._lags_ms else None
        p99 = float(np.percentile(lags, 99)) if lags is not None else None
        return {
            "rows": self.rows,
            "sent": self.sent,
            "dropped": self.dropped,
            "finished": self.finished,
            "send_lag_p50_ms": float(np.percentile(lags, 50)) if lags is not None else None,
            "send_lag_p99_ms": p99,
            "send_lag_max_ms": float(lags.max()) if lags is not None else None,
            "max_send_lag_ms": self._bound_ms,
            "late": p99 is not None and p99 > self._bound_ms,
        }


def end_when_replayed(environment: Environment) -> Callable[[], None]:
    """What a process does when its rows are replayed: a worker tells the master; a local
    process ends the run itself (as ``-t`` does: quit when headless, else stop the test)."""

    def done() -> None:
        runner = environment.runner
        if isinstance(runner, WorkerRunner):
            runner.send_message(TRACE_DONE, None)
        else:
            gevent.spawn(_end, environment)

    return done


def listen_for_trace_ends(environment: Environment, workers: Callable[[], set[str]]) -> None:
    """On the master: end the run once every worker of the test has replayed its rows."""
    runner = environment.runner
    assert isinstance(runner, MasterRunner)
    finished: set[str] = set()

    def on_done(environment: Environment, msg: Any, **_: Any) -> None:
        expected = workers()
        finished.intersection_update(expected)
        finished.add(msg.node_id)
        if expected and expected <= finished:
            finished.clear()
            gevent.spawn(_end, environment)

    runner.register_message(TRACE_DONE, on_done)


def _end(environment: Environment) -> None:
    print("slabench: the trace is replayed: ending the run", flush=True)
    runner = environment.runner
    if runner is None:
        return
    if getattr(environment.parsed_options, "headless", False):
        runner.quit()
    else:  # the web UI stays up, as after -t with --autostart
        runner.stop()
