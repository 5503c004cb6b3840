"""``capacity.json``: the result of a capacity search, in its sweep directory.

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

Every number is finite or null (``write_json_atomic``); ``load_capacity`` checks the
schema version, the kind, the outcome and that ``steps`` is a list of objects, and adds
``path`` (the sweep directory).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sla.errors import SlabenchError
from sla.files.jsonio import check_schema_version, read_json_object, write_json_atomic

__all__ = [
    "CAPACITY_FILE",
    "CAPACITY_SCHEMA_VERSION",
    "OUTCOMES",
    "CapacityError",
    "load_capacity",
    "write_capacity",
]

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


class CapacityError(SlabenchError):
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
