"""Getting every record into one run directory, also in Locust's distributed mode.

A worker buffers rows and ships them to the master in batches over Locust's own messaging
(msgpack keeps float64 exact); when its test stops it ships the rest and a ``done`` note
with its counts. The master adds batches to the recorder as they arrive and, before it
closes the run, waits until every worker that took part has said ``done``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from operator import attrgetter
from typing import Any

import gevent
from locust import argument_parser

from sla.files.run import REQUEST_COLUMNS, RequestRecord

RECORDS = "slabench_records"
DONE = "slabench_done"
PLAN = "slabench_plan"
STOP = "slabench_stop"  # the master's test stopped: hand over the rest

log = logging.getLogger("slabench")
_row = attrgetter(*REQUEST_COLUMNS)


def as_row(rec: RequestRecord) -> tuple[Any, ...]:
    row: tuple[Any, ...] = _row(rec)
    return row


def cache_locust_defaults() -> None:
    """On a worker: compute Locust's default options once. Its worker rebuilds and parses
    its whole argument parser once per option of every spawn message from the master
    (``WorkerRunner.handle_message``, locust 2.47), which held the event loop ~0.15 s of
    CPU per message, and up to a second on a busy machine: every request in flight then
    was stamped late by as much (``--max-loop-lag``). The defaults never change in a run."""
    if not hasattr(argument_parser.default_args_dict, "cache_info"):  # not cached yet
        argument_parser.default_args_dict = functools.cache(argument_parser.default_args_dict)


class WorkerShipper:
    """Runs on a worker: batches rows to the master."""

    def __init__(
        self, send: Callable[[str, Any], None], *, batch_rows: int = 1000, interval_s: float = 0.5
    ) -> None:
        self._send = send
        self._batch_rows = batch_rows
        self._interval_s = interval_s
        self._rows: list[tuple[Any, ...]] = []
        self.shipped = 0
        self._greenlet = gevent.spawn(self._loop)

    def add(self, rec: RequestRecord) -> None:
        self._rows.append(as_row(rec))
        if len(self._rows) >= self._batch_rows:
            self._ship()

    def _ship(self) -> None:
        if self._rows:
            rows, self._rows = self._rows, []
            self._send(RECORDS, {"rows": rows})
            self.shipped += len(rows)

    def _loop(self) -> None:
        while True:
            gevent.sleep(self._interval_s)
            self._ship()

    def close(self, summary: dict[str, Any]) -> None:
        self._greenlet.kill(block=True)
        self._ship()
        self._send(DONE, {**summary, "records": self.shipped})


class MasterCollector:
    """Runs on the master: routes worker batches to the current run's recorder.

    Only the workers the master planned the run for (``attach``) are heard: a batch or a
    ``done`` note from any other node id (a stray worker, or anything that can reach the
    master's port) is ignored and logged, never recorded."""

    def __init__(self) -> None:
        self._sink: Callable[[list[Any]], None] | None = None
        self._workers: set[str] = set()
        self._early: list[tuple[str, list[Any]]] = []
        self.done: dict[str, dict[str, Any]] = {}
        self.received: dict[str, int] = {}
        self.ignored: dict[str, int] = {}

    def attach(self, sink: Callable[[list[Any]], None], workers: set[str]) -> None:
        self._sink = sink
        self._workers = set(workers)
        self.done.clear()
        self.received.clear()
        early, self._early = self._early, []
        for client_id, rows in early:
            self.on_records(client_id, rows)

    def detach(self) -> None:
        self._sink = None

    def on_records(self, client_id: str, rows: list[Any]) -> None:
        if self._sink is None:
            self._early.append((client_id, rows))  # a batch that raced the test start
            return
        if self._stranger(client_id, f"{len(rows)} records"):
            return
        self.received[client_id] = self.received.get(client_id, 0) + len(rows)
        self._sink(rows)

    def on_done(self, client_id: str, summary: dict[str, Any]) -> None:
        if not self._stranger(client_id, "its done note"):
            self.done[client_id] = summary

    def _stranger(self, client_id: str, what: str) -> bool:
        """Log and count a message from a node that is not one of this run's workers."""
        if client_id in self._workers:
            return False
        if client_id not in self.ignored:
            log.warning("slabench: ignored %s from %r: not a worker of this run", what, client_id)
        self.ignored[client_id] = self.ignored.get(client_id, 0) + 1
        return True

    def wait_for(
        self,
        workers: set[str],
        timeout_s: float,
        gone: Callable[[], set[str]] = set,
    ) -> set[str]:
        """Wait until each worker said done; returns those that did not. A worker that
        ``gone`` names (Locust lost its heartbeat, or it left) is not waited for: its
        records are not coming, and waiting the whole ``timeout_s`` would only delay the
        verdict of a run that is incomplete either way."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            pending = workers - self.done.keys()
            if not pending or pending <= gone():
                break
            gevent.sleep(0.05)
        missing = workers - self.done.keys()
        for client_id in missing:
            log.error("worker %s did not hand over its records (lost, or not in %gs)",
                      client_id, timeout_s)  # fmt: skip
        return missing
