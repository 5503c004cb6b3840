"""Capacity policy (pure): what a step of a capacity search measured (``summarize_step``: a
``StepMeasurement``, the numbers of a step of ``capacity.json``, see ``sla.files.capacity``),
and what the steps add up to: the fewest samples a step needs, whether its backlog grew,
the knee, the cost, the energy per token.

A step is judged on readings of its segments (``sla.reading``): each segment's window and
metrics are derived once and shared by the verdict, the step's numbers and its backlog.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from sla import stats
from sla.energy import no_energy_reason
from sla.files.capacity import (
    Backlog,
    Cost,
    EnergyAt,
    Knee,
    Percentiles,
    StepEnergy,
    StepMeasurement,
    StepObjective,
    StepResult,
)
from sla.files.run import Run
from sla.metrics import floats, throughput
from sla.reading import Reading
from sla.samples import Samples, judged_samples, reading_for
from sla.server_side import reading_energy
from sla.spec import LATENCY_METRICS, Spec
from sla.verdict import Verdict, judge

_PERCENTILES = (50, 90, 99)
KNEE_METRIC = "latency_ms"
KNEE_STAT = "p90"


def min_samples(spec: Spec) -> int:
    """The fewest requests with which every objective of ``spec`` could PASS: a p99 at 95%
    needs 299, a mean 30, ``error_rate <= 1%`` about 300 without a single error."""
    needed = [1]
    for obj in spec.objectives:
        q = obj.percentile
        if q is not None and obj.metric in LATENCY_METRICS:
            side: Literal["low", "high"] = "high" if obj.op == "max" else "low"
            needed.append(stats.samples_needed(q / 100.0, spec.confidence, side))
        elif obj.stat == "mean":
            needed.append(30)
        elif obj.metric in ("error_rate", "goodput_ratio"):
            best = 0.0 if obj.metric == "error_rate" else 1.0
            n = stats.wilson_samples_needed(best, obj.limit, obj.op, spec.confidence)
            if n is not None:
                needed.append(n)
    return max(needed)


def summarize_step(spec: Spec, runs: Sequence[Run | Reading]) -> tuple[Verdict, StepMeasurement]:
    """Judge one step (its segments as one, as ``sla.verdict.evaluate_segments`` does) and
    summarise what it measured for ``capacity.json`` (``StepMeasurement``: the step's
    fields less the bookkeeping the search adds: step, load, phase, runs, wall_s, error,
    saturation). A segment with a disturbed load generator (``Run.disturbed``) leaves the
    step INCONCLUSIVE at best, never a PASS, and says why in ``disturbed``.

    Proportions and percentiles are over the requests started in the measured windows;
    rates (throughput, tokens/s, goodput) over the requests that ended in them, divided by
    the windows' total length (``Reading.completed``).
    """
    readings = [reading_for(spec, run) for run in runs]
    samples = judged_samples(spec, *readings)
    verdict = judge(spec, readings, samples)
    objectives = tuple(
        StepObjective(r.label, r.op, r.limit, r.observed, r.status.value, r.message)
        for r in verdict.objectives
    )
    measurement = StepMeasurement(
        status=verdict.status.value,
        saturated=verdict.saturated,
        **_step_numbers(samples, verdict.counts.good),
        backlog=backlog(spec, readings),
        objectives=objectives,
        disturbed="; ".join(verdict.disturbed) or None,
        energy=step_energy(readings),
    )
    return verdict, measurement


def step_energy(readings: Sequence[Reading]) -> StepEnergy:
    """The energy of a step's measured windows over the output tokens and successful
    requests that ended in them, summed over the segments that have a source; without any,
    why not (``sla.energy.no_energy_reason``), never 0 J."""
    found = [(r, e) for r in readings if (e := reading_energy(r)) is not None]
    if not found:
        first = readings[0].run.server_metrics if readings else None
        return StepEnergy(none=no_energy_reason(first))
    joules = sum(e.joules for _, e in found)
    window = sum(e.window_s for _, e in found)
    tokens = sum(e.output_tokens for _, e in found)
    requests = sum(e.requests for _, e in found)
    return StepEnergy(
        j_per_output_token=joules / tokens if tokens else None,
        j_per_request=joules / requests if requests else None,
        joules=joules,
        mean_power_w=joules / window if window > 0 else None,
        window_s=window,
        metric=found[0][1].metric,
    )


def energy_at(step: StepResult) -> EnergyAt | None:
    """The energy at ``step`` (the capacity found); None for a step measured without it."""
    return None if step.energy is None else EnergyAt(step.load, step.step, step.energy)


def _step_numbers(samples: Samples, good: int | None) -> dict[str, Any]:
    rows = samples.rows
    ok = rows["ok"].to_numpy(dtype=bool)
    n, n_ok = len(rows), int(ok.sum())
    window = samples.window_s if samples.window_s and samples.window_s > 0 else None
    rates = throughput(samples.rate_rows, window) if window else None
    rate_good = None if samples.rate_good is None else int(samples.rate_good.sum())
    return {
        "window_s": window,
        "requests": n,
        "ok": n_ok,
        "failed": n - n_ok,
        "good": good,
        "throughput_rps": rates["requests_per_s"] if rates else None,
        "output_tokens_per_s": rates["output_tokens_per_s"] if rates else None,
        "goodput_rps": rate_good / window if window and rate_good is not None else None,
        "goodput_ratio": good / n if n and good is not None else None,
        "error_rate": (n - n_ok) / n if n else None,
        **{
            metric: _percentiles(rows, ok, metric)
            for metric in ("latency_ms", "ttft_ms", "tpot_ms")
        },
        "schedule_lag_ms": _percentiles(rows, np.ones(n, dtype=bool), "schedule_lag_ms"),
    }


def backlog(spec: Spec, runs: Sequence[Run | Reading]) -> Backlog | None:
    """Open loop: requests that arrived (were scheduled) in the measured windows, requests
    that ended in them, and the difference: how much the backlog of requests in flight grew
    over the step. None in closed loop (a closed loop cannot build a backlog)."""
    arrivals = completions = 0
    for run in runs:
        reading = reading_for(spec, run)
        kept = _endpoint_mask(spec, reading)
        scheduled = floats(reading.rows, "scheduled_at")[kept]
        if not len(scheduled) or np.isnan(scheduled).all():
            return None
        arrivals += int((reading.started_in_window & kept).sum())
        completions += int((reading.completed_mask & kept).sum())
    return Backlog(arrivals, completions, arrivals - completions)


def _endpoint_mask(spec: Spec, reading: Reading) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """The spec's endpoint filter (a backlog counts every scenario)."""
    if not spec.filters.endpoints:
        return np.ones(len(reading.rows), dtype=bool)
    return reading.rows["endpoint"].isin(spec.filters.endpoints).to_numpy(dtype=bool)


def unsustainable(growth: Backlog | None, tolerance: float) -> str | None:
    """Why an open-loop step's load is not sustainable, or None: its backlog grew by more
    than ``tolerance`` of its arrivals and by more than three standard deviations of a
    stable queue's Poisson noise (3 sqrt(arrivals)). Such a step can pass its SLA only
    because it ended before the queue reached the limits: a longer one would fail."""
    if growth is None or growth.arrivals <= 0:
        return None
    arrivals, grown = growth.arrivals, growth.growth
    if grown <= max(3.0 * math.sqrt(arrivals), tolerance * arrivals):
        return None
    return (
        f"the backlog grew by {grown} requests ({grown / arrivals:.1%} of the "
        f"{arrivals} arrivals): completions did not keep up, so this load is not sustainable"
    )


def _percentiles(rows: pd.DataFrame, ok: np.ndarray[Any, Any], metric: str) -> Percentiles | None:
    values = pd.to_numeric(rows[metric]).to_numpy(dtype=np.float64, na_value=np.nan)[ok]
    values = values[~np.isnan(values)]
    if not len(values):
        return None
    p50, p90, p99 = (float(np.percentile(values, q)) for q in _PERCENTILES)
    return Percentiles(p50, p90, p99)


def latest_by_load(steps: Sequence[StepResult]) -> list[StepResult]:
    """The last judged step at each load (a confirmation supersedes a quick step), by load."""
    latest: dict[float, StepResult] = {}
    for step in steps:
        if step.status in ("PASS", "FAIL", "INCONCLUSIVE"):
            latest[step.load] = step
    return [latest[load] for load in sorted(latest)]


def find_knee(steps: Sequence[StepResult]) -> Knee | None:
    """Where latency starts to climb: the Kneedle point (Satopaa et al., 2011) of p90
    latency against load, i.e. on the curve scaled to the unit square, the step farthest
    below the straight line from the lowest load to the highest. None with fewer than three
    steps or a curve that does not bend upwards."""
    points = [
        (s.load, getattr(s.latency_ms, KNEE_STAT), s)
        for s in latest_by_load(steps)
        if s.latency_ms is not None
    ]
    if len(points) < 3:
        return None
    x = np.array([p[0] for p in points])
    y = np.array([p[1] for p in points])
    if x[-1] == x[0] or y.max() == y.min():
        return None
    x_n = (x - x[0]) / (x[-1] - x[0])
    y_n = (y - y.min()) / (y.max() - y.min())
    below = x_n - y_n
    index = int(np.argmax(below))
    # Not <= 0: rounding leaves a straight line up to ~1e-16 off its own chord.
    if below[index] <= 1e-9 or index in (0, len(points) - 1):
        return None
    load, latency_ms, step = points[index]
    return Knee(load, step.step, step.throughput_rps, latency_ms, f"{KNEE_STAT} {KNEE_METRIC}")


def cost_at(step: StepResult, cost_per_hour: float) -> Cost | None:
    """What serving costs at ``step`` for an instance costing ``cost_per_hour``: per 1,000
    requests and per 1,000,000 output tokens, from the step's measured throughput of
    successful requests (not its offered load)."""
    rps = step.throughput_rps
    if not cost_per_hour > 0 or not rps:
        return None
    per_s = cost_per_hour / 3600.0
    tokens_per_s = step.output_tokens_per_s or 0.0
    return Cost(
        per_hour=cost_per_hour,
        at_load=step.load,
        step=step.step,
        requests_per_s=rps,
        output_tokens_per_s=tokens_per_s or None,
        per_1k_requests=per_s / rps * 1000.0,
        per_1m_output_tokens=per_s / tokens_per_s * 1e6 if tokens_per_s > 0 else None,
    )
