"""The result of a capacity search: ``capacity.json`` in a sweep directory (pure).

A sweep directory holds one run directory per step (``step-NN-...``; an extended step has
one per segment) and ``capacity.json``::

    schema_version, kind="capacity", scenario, target_url, mode ("rate" | "concurrency"),
    load_unit ("req/s" | "users"), spec {name, source, confidence, objectives[labels]},
    settings {...}, started_at, ended_at, wall_s,
    outcome   "found" | "sla_holds_at_max" | "sla_fails_at_min" | "generator_saturated"
              | "budget_exhausted" | "unresolved" | "interrupted"
    message   one line saying what the search established
    capacity  {load, step, arrival_rps, throughput_rps} | null: the highest load that
              PASSED below every load not shown to pass, and what its step measured
    lowest_fail {load, step, arrival_rps, throughput_rps} | null: the lowest load that FAILED
    precision lowest_fail / capacity - 1 | null
    knee      {load, step, throughput_rps, latency_ms} | null
    cost      {per_hour, at_load, requests_per_s, output_tokens_per_s, per_1k_requests,
               per_1m_output_tokens} | null
    steps     [step, ...] in the order they ran

and each step::

    step (1-based), load, phase ("widen" | "descend" | "bisect" | "confirm"),
    status ("PASS" | "FAIL" | "INCONCLUSIVE" | "ERROR"), error (str | null), saturated,
    runs [run dirs relative to the sweep directory], window_s, wall_s,
    requests, ok, failed, good (null without per_request limits),
    offered_rps (rate mode: the nominal rate; null in closed loop), arrival_rps (rate mode:
    the arrivals the schedule actually made in the windows, per second: Poisson noise),
    throughput_rps, output_tokens_per_s,
    goodput_rps, goodput_ratio, error_rate,
    latency_ms {p50, p90, p99}, ttft_ms {p50, p90, p99} | null, tpot_ms {...} | null,
    schedule_lag_ms {...} | null (open loop: how late the sends left),
    backlog {arrivals, completions, growth} | null (open loop: requests that arrived and
              that ended in the measured windows), unsustainable (str | null: why the
              step FAILED although its SLA verdict did not: its backlog kept growing),
    saturation (str | null: why the load generator counts as saturated),
    objectives [{label, op, limit, observed, status, message}]

Every number is finite or null (``write_json_atomic``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from sla import stats
from sla.metrics import with_request_metrics
from sla.records import (
    CANCELLED_ERROR,
    Run,
    check_schema_version,
    read_json_object,
    write_json_atomic,
)
from sla.spec import LATENCY_METRICS, Spec
from sla.verdict import Verdict, evaluate_segments, judged_samples

CAPACITY_FILE = "capacity.json"
CAPACITY_SCHEMA_VERSION = 1
OUTCOMES = (
    "found",
    "sla_holds_at_max",
    "sla_fails_at_min",
    "generator_saturated",
    "budget_exhausted",
    "unresolved",
    "interrupted",
)


class CapacityError(Exception):
    """A sweep directory or capacity.json that cannot be read; str() is one line."""


def write_capacity(sweep_dir: str | os.PathLike[str], result: dict[str, Any]) -> Path:
    """Write ``capacity.json`` atomically (readers never see half a file)."""
    path = Path(sweep_dir) / CAPACITY_FILE
    write_json_atomic(path, {"schema_version": CAPACITY_SCHEMA_VERSION, **result})
    return path


def load_capacity(sweep_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check ``capacity.json`` of a sweep directory (or the file itself)."""
    path = Path(sweep_dir)
    if path.is_dir():
        path = path / CAPACITY_FILE
    if not path.exists():
        raise CapacityError(f"{path} is missing; pass the directory of a capacity search")
    data = read_json_object(path, CapacityError)
    if data.get("kind") != "capacity":
        raise CapacityError(f"{path} is not a slabench capacity result")
    check_schema_version(
        data.get("schema_version"),
        CAPACITY_SCHEMA_VERSION,
        CapacityError,
        path,
        f"{path} uses capacity",
    )
    steps = data.get("steps")
    if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
        raise CapacityError(f"{path}: 'steps' must be a list of objects")
    if data.get("outcome") not in OUTCOMES:
        raise CapacityError(f"{path}: unknown outcome {data.get('outcome')!r}")
    data["path"] = str(path.parent)
    return data


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


def summarize_step(spec: Spec, runs: Sequence[Run]) -> tuple[Verdict, dict[str, Any]]:
    """Judge one step (its segments as one, ``sla.verdict.evaluate_segments``) and summarise
    it for ``capacity.json`` (the step fields documented above, less the bookkeeping: step,
    load, phase, runs, wall_s, error, saturation).

    Proportions and percentiles are over the requests started in the measured windows;
    rates (throughput, tokens/s, goodput) over the requests that ended in them, divided by
    the windows' total length (``sla.metrics.completed``).
    """
    verdict = evaluate_segments(spec, runs)
    samples = judged_samples(spec, *runs)
    rows, rate_rows = samples.rows, samples.rate_rows
    ok = rows["ok"].to_numpy(dtype=bool)
    rate_ok = rate_rows["ok"].to_numpy(dtype=bool)
    n, n_ok = len(rows), int(ok.sum())
    window = samples.window_s if samples.window_s and samples.window_s > 0 else None
    tokens = pd.to_numeric(rate_rows["output_tokens"]).to_numpy(dtype=np.float64, na_value=np.nan)
    good = verdict.counts.good
    rate_good = None if samples.rate_good is None else int(samples.rate_good.sum())
    summary: dict[str, Any] = {
        "status": verdict.status.value,
        "saturated": verdict.saturated,
        "window_s": window,
        "requests": n,
        "ok": n_ok,
        "failed": n - n_ok,
        "good": good,
        "throughput_rps": int(rate_ok.sum()) / window if window else None,
        "output_tokens_per_s": float(np.nansum(tokens[rate_ok])) / window if window else None,
        "goodput_rps": rate_good / window if window and rate_good is not None else None,
        "goodput_ratio": good / n if n and good is not None else None,
        "error_rate": (n - n_ok) / n if n else None,
    }
    for metric in ("latency_ms", "ttft_ms", "tpot_ms"):
        summary[metric] = _percentiles(rows, ok, metric)
    summary["schedule_lag_ms"] = _percentiles(rows, np.ones(n, dtype=bool), "schedule_lag_ms")
    summary["backlog"] = backlog(spec, runs)
    summary["objectives"] = [
        {
            "label": r.label,
            "op": r.op,
            "limit": r.limit,
            "observed": r.observed,
            "status": r.status.value,
            "message": r.message,
        }
        for r in verdict.objectives
    ]
    return verdict, summary


def backlog(spec: Spec, runs: Sequence[Run]) -> dict[str, int] | None:
    """Open loop: requests that arrived (were scheduled) in the measured windows, requests
    that ended in them, and the difference: how much the backlog of requests in flight grew
    over the step. None in closed loop (a closed loop cannot build a backlog)."""
    arrivals = completions = 0
    for run in runs:
        df = with_request_metrics(run.requests)
        if spec.filters.endpoints:
            df = df[df["endpoint"].isin(spec.filters.endpoints).to_numpy(dtype=bool)]
        scheduled = df["scheduled_at"].to_numpy(dtype=np.float64, na_value=np.nan)
        if not len(df) or np.isnan(scheduled).all():
            return None
        begin, end = _window(run, spec, df)
        start = df["start"].to_numpy(dtype=np.float64)
        done = df["done_at"].to_numpy(dtype=np.float64, na_value=np.nan)
        cancelled = (df["error"] == CANCELLED_ERROR).to_numpy(dtype=bool, na_value=False)
        arrivals += int(((start >= begin) & (start <= end)).sum())
        completions += int(((done >= begin) & (done <= end) & ~cancelled).sum())
    return {"arrivals": arrivals, "completions": completions, "growth": arrivals - completions}


def _window(run: Run, spec: Spec, df: pd.DataFrame) -> tuple[float, float]:
    """The measured window of ``run`` as ``sla.verdict`` judges it."""
    base = run.meta.get("measured_from")
    if base is None:
        base = run.meta.get("started_at")
    if base is None:
        base = float(np.nanmin(df["start"].to_numpy(dtype=np.float64)))
    end = run.meta.get("ended_at")
    if end is None:
        end = float(np.nanmax(df["done_at"].to_numpy(dtype=np.float64, na_value=np.nan)))
    return float(base) + spec.warmup_s, float(end)


def unsustainable(growth: Mapping[str, int] | None, tolerance: float) -> str | None:
    """Why an open-loop step's load is not sustainable, or None: its backlog grew by more
    than ``tolerance`` of its arrivals and by more than three standard deviations of a
    stable queue's Poisson noise (3 sqrt(arrivals)). Such a step can pass its SLA only
    because it ended before the queue reached the limits: a longer one would fail."""
    if not growth or growth["arrivals"] <= 0:
        return None
    arrivals, grown = growth["arrivals"], growth["growth"]
    if grown <= max(3.0 * math.sqrt(arrivals), tolerance * arrivals):
        return None
    return (
        f"the backlog grew by {grown} requests ({grown / arrivals:.1%} of the "
        f"{arrivals} arrivals): completions did not keep up, so this load is not sustainable"
    )


def _percentiles(
    rows: pd.DataFrame, ok: np.ndarray[Any, Any], metric: str
) -> dict[str, Any] | None:
    values = pd.to_numeric(rows[metric]).to_numpy(dtype=np.float64, na_value=np.nan)[ok]
    values = values[~np.isnan(values)]
    if not len(values):
        return None
    return {f"p{q}": float(np.percentile(values, q)) for q in _PERCENTILES}


def latest_by_load(steps: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The last judged step at each load (a confirmation supersedes a quick step), by load."""
    latest: dict[float, Mapping[str, Any]] = {}
    for step in steps:
        if step.get("status") in ("PASS", "FAIL", "INCONCLUSIVE"):
            latest[float(step["load"])] = step
    return [latest[load] for load in sorted(latest)]


def find_knee(steps: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Where latency starts to climb: the Kneedle point (Satopaa et al., 2011) of p90
    latency against load, i.e. on the curve scaled to the unit square, the step farthest
    below the straight line from the lowest load to the highest. None with fewer than three
    steps or a curve that does not bend upwards."""
    points = [
        (float(s["load"]), float(s[KNEE_METRIC][KNEE_STAT]), s)
        for s in latest_by_load(steps)
        if isinstance(s.get(KNEE_METRIC), Mapping) and s[KNEE_METRIC].get(KNEE_STAT) is not None
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
    step = points[index][2]
    return {
        "load": points[index][0],
        "step": step.get("step"),
        "throughput_rps": step.get("throughput_rps"),
        "latency_ms": points[index][1],
        "metric": f"{KNEE_STAT} {KNEE_METRIC}",
    }


def cost_at(step: Mapping[str, Any], cost_per_hour: float) -> dict[str, Any] | None:
    """What serving costs at ``step`` for an instance costing ``cost_per_hour``: per 1,000
    requests and per 1,000,000 output tokens, from the step's measured throughput of
    successful requests (not its offered load)."""
    rps = step.get("throughput_rps")
    if not cost_per_hour > 0 or not rps:
        return None
    per_s = cost_per_hour / 3600.0
    tokens_per_s = step.get("output_tokens_per_s") or 0.0
    return {
        "per_hour": cost_per_hour,
        "at_load": step.get("load"),
        "step": step.get("step"),
        "requests_per_s": rps,
        "output_tokens_per_s": tokens_per_s or None,
        "per_1k_requests": per_s / rps * 1000.0,
        "per_1m_output_tokens": per_s / tokens_per_s * 1e6 if tokens_per_s > 0 else None,
    }
