"""How the capacity search judges a step: its segments as one sample, and its entry in
``capacity.json``.

Beyond its SLA verdict a step is judged on two things only the search can see: the load
generator (saturated CPU, or open-loop sends more than ``--max-send-lag`` late, stops the
search: a capacity found past that point would be the generator's), and, in open loop, its
backlog (arrivals exceeding completions beyond ``--max-backlog-growth`` and chance make it
FAIL as not sustainable: a longer step would have failed its SLA).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from loadtests.capacity.options import SearchOptions
from sla.capacity import summarize_step, unsustainable
from sla.files.capacity import StepMeasurement, StepResult, measurement_values
from sla.files.run import Run
from sla.search import Probe
from sla.spec import Spec


@dataclass(frozen=True, slots=True)
class Judged:
    """A step's segments judged so far: what they measured (its status already FAIL when
    its backlog grew, ``saturated`` set when the load generator was), and why."""

    measurement: StepMeasurement
    unsustainable: str | None
    saturation: str | None

    def step(
        self, number: int, probe: Probe, runs: list[str], wall_s: float, offered: float | None
    ) -> StepResult:
        """The step's capacity.json entry; open loop (``offered``): the offered rate and
        the rate at which requests really arrived."""
        m = self.measurement
        arrived = m.backlog.arrivals / m.window_s if m.backlog and m.window_s else None
        return StepResult(
            **measurement_values(m),
            **_bookkeeping(number, probe, runs, wall_s),
            unsustainable=self.unsustainable,
            saturation=self.saturation,
            offered_rps=offered,
            arrival_rps=arrived if offered is not None else None,
        )


def judge_segments(spec: Spec, runs: list[Run], options: SearchOptions) -> Judged:
    """Judge the step's segments so far as one sample."""
    _, measurement = summarize_step(spec, runs)
    why = unsustainable(measurement.backlog, options.max_backlog_growth)
    if why and measurement.status != "FAIL":
        measurement = replace(measurement, status="FAIL")  # it would, given a longer step
    saturation = generator_saturation(measurement, options.max_send_lag_ms)
    measurement = replace(measurement, saturated=saturation is not None)
    if saturation and measurement.status == "PASS":  # never a PASS, as a run's verdict
        measurement = replace(measurement, status="INCONCLUSIVE")
    return Judged(measurement, why, saturation)


def generator_saturation(measured: StepMeasurement, max_send_lag_ms: float) -> str | None:
    """Why the load generator counts as saturated in a step, or None."""
    if measured.saturated:
        return "its CPU was >= 90% of a core for most of the step"
    lag = measured.schedule_lag_ms.p90 if measured.schedule_lag_ms else None
    if lag is not None and lag > max_send_lag_ms:
        return (
            f"its open-loop sends left {lag:.1f} ms late at p90 "
            f"(--max-send-lag {max_send_lag_ms:g} ms)"
        )
    return None


def errored(
    number: int,
    probe: Probe,
    runs: list[str],
    wall_s: float,
    judged: Judged | None,
    problem: str,
) -> StepResult:
    """An ERROR step: what its earlier segments measured, if any, and what went wrong."""
    values = measurement_values(judged.measurement) if judged else {}
    values.update(status="ERROR", saturated=False, error=problem)
    return StepResult(**values, **_bookkeeping(number, probe, runs, wall_s))


def _bookkeeping(number: int, probe: Probe, runs: list[str], wall_s: float) -> dict[str, Any]:
    return {
        "step": number,
        "load": probe.load,
        "phase": probe.phase,
        "thorough": probe.thorough,
        "runs": tuple(runs),
        "wall_s": wall_s,
    }
