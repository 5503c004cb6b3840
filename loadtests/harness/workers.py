"""Locust's distributed mode, both sides: the master waits for its workers, collects their
records and, when its test stops, has every worker hand over the rest; a worker takes its
share of the load from the master's plan and ships what it recorded (``harness.distributed``
carries the records)."""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtests.harness.distributed import (
    DONE,
    PLAN,
    RECORDS,
    STOP,
    MasterCollector,
    cache_locust_defaults,
)
from loadtests.harness.rundir import RunSession
from loadtests.harness.state import Plan, RunState, run_state
from loadtests.harness.stopping import wait_closed
from loadtests.recording.monitors import summarize_cpu

__all__ = [
    "collect_from_workers",
    "hand_over",
    "listen_to_master",
    "plan_workers",
    "stop_starting",
    "wait_for_workers",
]

HAND_OVER_S = 30.0  # the longest the master waits for a worker's last records


def wait_for_workers(runner: MasterRunner, opts: Any) -> None:
    """The wait for the workers that Locust's headless start does, done here, inside `init`,
    where a stop signal ends the process in one line (Locust's own wait lies outside any
    handler and would die of it with a traceback). Locust's wait then finds them ready."""
    if not (getattr(opts, "headless", False) or getattr(opts, "autostart", False)):
        return
    expected = getattr(opts, "expect_workers", 1)
    max_wait_s = getattr(opts, "expect_workers_max_wait", 0)
    t0 = time.monotonic()
    while len(runner.clients.ready) < expected:
        if max_wait_s and time.monotonic() - t0 > max_wait_s:
            return  # Locust's wait gives up, in its words
        gevent.sleep(0.1)


def collect_from_workers(runner: MasterRunner) -> MasterCollector:
    """On the master: gather the records and the `done` notes the workers send."""
    collector = MasterCollector()

    def on_records(environment: Environment, msg: Any, **_: Any) -> None:
        collector.on_records(msg.node_id, msg.data["rows"])

    def on_done(environment: Environment, msg: Any, **_: Any) -> None:
        collector.on_done(msg.node_id, msg.data)

    runner.register_message(RECORDS, on_records)
    runner.register_message(DONE, on_done)
    return collector


def plan_workers(runner: MasterRunner, state: RunState, session: RunSession, plan: Plan) -> None:
    """On the master, as its test starts (inside Locust's start): collect into ``session``
    and send each worker its share of ``plan``."""
    assert state.collector is not None
    state.starter = gevent.getcurrent()
    workers = sorted(c.id for c in runner.clients.all)
    state.workers = set(workers)
    state.collector.attach(session.add_rows, state.workers)
    for index, client_id in enumerate(workers):
        share = replace(plan, index=index, count=len(workers))
        runner.send_message(PLAN, asdict(share), client_id=client_id)


def stop_starting(state: RunState) -> None:
    """On the master, as its test stops: end the greenlet that is still starting it (Locust
    sends the workers their users step by step while it ramps up), so that no worker is
    sent users after it was told to stop."""
    starter, state.starter = state.starter, None
    if isinstance(starter, gevent.Greenlet) and starter is not gevent.getcurrent():
        starter.kill(block=True)


def hand_over(runner: MasterRunner, state: RunState) -> dict[str, Any]:
    """On the master, as its test stops: every worker stops and hands over its last records
    (or is lost); what the run directory says of the workers."""
    assert state.collector is not None
    # Locust's quit() stops the master without telling the workers (it sends them `quit`
    # later), and a worker may not have reported its users yet (a stop while the test
    # starts): ask every worker that has not handed over its records to do it now.
    for client_id in sorted(state.workers - state.collector.done.keys()):
        runner.send_message(STOP, None, client_id=client_id)
    missing = state.collector.wait_for(
        state.workers, HAND_OVER_S, gone=lambda: _lost(runner, state.workers)
    )
    state.collector.detach()
    generator: dict[str, Any] = {"workers": list(state.collector.done.values())}
    if state.collector.ignored:
        generator["ignored_nodes"] = dict(state.collector.ignored)
    if missing:
        generator["missing_workers"] = sorted(missing)
    return generator


def _lost(runner: MasterRunner, workers: set[str]) -> set[str]:
    """Workers the master no longer hears: their heartbeats stopped, or they left its list."""
    present = {c.id for c in runner.clients.all}
    return {c.id for c in runner.clients.missing} | (workers - present)


def listen_to_master(environment: Environment, runner: WorkerRunner) -> None:
    """On a worker: take this worker's share of the load from the master's plan, and hand
    over its records when the master's test stops or this worker quits."""

    def on_plan(environment: Environment, msg: Any, **_: Any) -> None:
        run_state(environment).set_plan(Plan(**msg.data))

    def on_stop(environment: Environment, msg: Any, **_: Any) -> None:
        state = run_state(environment)
        if state.worker_test_open:
            runner.stop()  # test_stop ships the records and the `done` note
        else:  # users never reached this worker: nothing to ship, but the master waits
            summary = {"worker": state.label, "dropped": 0, "cpu": summarize_cpu([])}
            runner.send_message(DONE, {**summary, "records": 0})

    runner.register_message(PLAN, on_plan)
    runner.register_message(STOP, on_stop)
    cache_locust_defaults()
    # Added after the runner's own `quitting` listener, which tells the master that this
    # worker quit; `quitting` runs its listeners in reverse, so this one ships every
    # record first. (Ctrl-C in a terminal reaches the workers as well as the master, and
    # a master that hears of its last worker quitting stops listening to the workers.)
    environment.events.quitting.add_listener(_worker_quitting)


def _worker_quitting(environment: Environment, **_: Any) -> None:
    if environment.runner is not None:
        environment.runner.stop()  # test_stop ships the records and the `done` note
    wait_closed(run_state(environment))
