"""The live view of one run, wired to Locust: its state fed by the run session, its
monitor's greenlet, the early stop, and what the load generator says of itself so far."""

from __future__ import annotations

from typing import Any

from locust.env import Environment
from locust.runners import MasterRunner

from loadtests.harness.rundir import RunSession
from loadtests.harness.state import RunState
from loadtests.live.monitor import LiveMonitor, looks_for
from loadtests.live.state import LiveState
from loadtests.recording.disturbance import LOOP_LAG_INTERVAL_S, summarize_loop_lag
from loadtests.recording.monitors import GeneratorMonitor, summarize_cpu

__all__ = ["start_live"]

_LAG_SAMPLES = int(60 / LOOP_LAG_INTERVAL_S)  # the loop lag of the last minute


def start_live(
    environment: Environment, state: RunState, session: RunSession, scenario: str
) -> LiveMonitor:
    """Attach a live state to ``session`` (it sees every row the recorder gets) and start
    the monitor that prints, charts and (``--sla-stop-early``) stops."""
    options = state.options
    spec = state.spec
    measured_from = float(session.meta["measured_from"]) + (spec.warmup_s if spec else 0.0)
    live = LiveState(measured_from=measured_from, spec=spec)
    session.live = live
    distributed = isinstance(environment.runner, MasterRunner)
    run_time = getattr(environment.parsed_options, "run_time", None)
    monitor = LiveMonitor(
        live,
        started_at=session.started_at,
        scenario=scenario,
        interval_s=options.live_interval_s,
        spec=spec,
        stop_early=options.sla_stop_early,
        looks=looks_for(run_time, options.live_interval_s),
        generator=lambda: generator_state(session.monitor, options.max_loop_lag_ms, distributed),
        on_stop=lambda: _stop(environment),
    )
    monitor.start()
    return monitor


def _stop(environment: Environment) -> None:
    """End the run as -t would: the test stops and, headless, Locust quits."""
    runner = environment.runner
    if runner is None:
        return
    if environment.web_ui is not None:
        runner.stop()
    else:
        runner.quit()


def generator_state(
    monitor: GeneratorMonitor, max_loop_lag_ms: float, distributed: bool
) -> dict[str, Any]:
    """This process's CPU (saturated so far?) and event-loop lag over the last minute
    (disturbed?); in a distributed run the workers report theirs at the end."""
    cpu = summarize_cpu(monitor.cpu.samples)
    recent = monitor.loop_lag.lags_ms[-_LAG_SAMPLES:]
    lag = summarize_loop_lag(recent, LOOP_LAG_INTERVAL_S, max_loop_lag_ms)
    return {
        "process": "master" if distributed else "local",
        "cpu_percent": cpu["mean_percent"],
        "saturated": bool(cpu["saturated"]) and not distributed,
        "loop_lag_p99_ms": lag["p99_ms"],
        "disturbed": bool(lag["disturbed"]) and not distributed,
        "workers": "reported at the end of the run" if distributed else None,
    }
