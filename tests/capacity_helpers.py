"""A realistic capacity search, as data and as a sweep directory (plain helpers, no fixtures).

Shared by tests/dashboards/test_capacity.py and the capacity tests of tests/reports::

    result = capacity_result(outcome="budget_exhausted")   # a capacity.json body (a dict)
    typed = read_result(result)                            # the CapacityResult it reads as
    sweep = write_sweep(tmp_path / "sweep", result, run_reports={10})
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from pathlib import Path
from typing import Any

from sla.files.capacity import CapacityResult, write_capacity

__all__ = [
    "COST",
    "STEPS",
    "capacity_result",
    "read_result",
    "run_name",
    "step_record",
    "write_sweep",
]

# (step, phase, load, status, throughput_rps, p50 ms, p99 ms, goodput_ratio): a search for
# "p99 latency <= 1000 ms" that widens 1..32 req/s, then bisects; step 8 errored and was
# measured again as step 9.
STEPS = (
    (1, "widen", 1.0, "PASS", 0.99, 180.0, 240.0, 1.0),
    (2, "widen", 2.0, "PASS", 1.98, 185.0, 260.0, 1.0),
    (3, "widen", 4.0, "PASS", 3.97, 195.0, 300.0, 0.998),
    (4, "widen", 8.0, "PASS", 7.95, 220.0, 380.0, 0.996),
    (5, "widen", 16.0, "PASS", 15.9, 290.0, 560.0, 0.995),
    (6, "widen", 32.0, "FAIL", 27.1, 900.0, 2400.0, 0.61),
    (7, "bisect", 22.627, "PASS", 22.4, 380.0, 820.0, 0.993),
    (8, "bisect", 26.909, "ERROR", None, None, None, None),
    (9, "bisect", 26.909, "FAIL", 26.2, 520.0, 1250.0, 0.88),
    (10, "bisect", 24.675, "PASS", 24.5, 430.0, 940.0, 0.991),
)
COST = {
    "per_hour": 2.5,
    "at_load": 24.675,
    "requests_per_s": 24.5,
    "output_tokens_per_s": 3136.0,
    "per_1k_requests": 2.5 / 3600 / 24.5 * 1000,
    "per_1m_output_tokens": 2.5 / 3600 / 3136.0 * 1e6,
}


def run_name(step: int, load: float) -> str:
    return f"step-{step:02d}-rate-{load:g}"


def step_record(row: tuple[Any, ...]) -> dict[str, Any]:
    """The capacity.json entry of a row of ``STEPS`` (no throughput: an ERROR step)."""
    step, phase, load, status, tput, p50, p99, ratio = row
    measured = tput is not None
    return {
        "step": step,
        "load": load,
        "phase": phase,
        "status": status,
        "error": None if measured else "connection refused: the server restarted",
        "saturated": False,
        "runs": [run_name(step, load)],
        "window_s": 30.0 if measured else None,
        "wall_s": 36.0,
        "requests": round(tput * 30) if measured else 0,
        "ok": round(tput * 30) if measured else 0,
        "failed": 0,
        "good": round(tput * 30 * ratio) if measured else None,
        "offered_rps": load if measured else None,
        "arrival_rps": load * 0.98 if measured else None,
        "throughput_rps": tput,
        "output_tokens_per_s": tput * 128 if measured else None,
        "goodput_rps": tput * ratio if measured else None,
        "goodput_ratio": ratio,
        "error_rate": 0.0 if measured else None,
        "latency_ms": {"p50": p50, "p90": p99 * 0.8, "p99": p99} if measured else None,
        "ttft_ms": {"p50": p50 / 6, "p90": p99 / 8, "p99": p99 / 5} if measured else None,
        "tpot_ms": {"p50": 10.0, "p90": 11.0, "p99": p99 / 60} if measured else None,
        "objectives": [
            {
                "label": "p99 latency_ms",
                "op": "max",
                "limit": 1000.0,
                "observed": p99,
                "status": status if measured else "INCONCLUSIVE",
                "message": f"p99 latency_ms {p99} ms vs limit 1000 ms",
            }
        ],
    }


def capacity_result(**overrides: Any) -> dict[str, Any]:
    """A realistic capacity.json body (without schema_version) of a search that found
    24.675 req/s; ``overrides`` replace top-level keys."""
    result = {
        "kind": "capacity",
        "scenario": "chat",
        "target_url": "http://127.0.0.1:8000",
        "mode": "rate",
        "load_unit": "req/s",
        "spec": {
            "name": "chat-sla",
            "source": "sla/chat.yaml",
            "confidence": 0.95,
            "objectives": ["p99 latency_ms"],
        },
        "settings": {"min_load": 1.0, "max_load": 64.0, "precision": 0.1, "step_s": 30},
        "started_at": 1_764_400_000.0,
        "ended_at": 1_764_400_360.0,
        "wall_s": 360.0,
        "outcome": "found",
        "message": "capacity 24.675 req/s: the SLA holds at 24.675 req/s, fails at 26.909",
        "capacity": {"load": 24.675, "step": 10},
        "lowest_fail": {"load": 26.909, "step": 9},
        "precision": 26.909 / 24.675 - 1,
        "knee": {
            "load": 16.0,
            "step": 5,
            "throughput_rps": 15.9,
            "latency_ms": 448.0,  # step 5's p90 (0.8 x p99): the metric the knee is found on
            "metric": "p90 latency_ms",
        },
        "cost": dict(COST),
        "steps": [step_record(row) for row in STEPS],
    }
    result.update(copy.deepcopy(overrides))
    return result


def read_result(result: dict[str, Any]) -> CapacityResult:
    """``result`` (a capacity.json body) checked and read as ``load_capacity`` reads it."""
    return CapacityResult.from_dict(result, "capacity.json: ")


def write_sweep(
    path: Path, result: dict[str, Any] | None = None, *, run_reports: Collection[int] = ()
) -> Path:
    """A sweep directory: capacity.json and an (empty) run directory per step, with a
    ``report.html`` in the runs of the steps in ``run_reports``."""
    result = capacity_result() if result is None else result
    path.mkdir(parents=True)
    for step in result["steps"]:
        for run in step["runs"]:
            (path / run).mkdir(parents=True, exist_ok=True)
            if step["step"] in run_reports:
                (path / run / "report.html").write_text("<!DOCTYPE html><p>run</p>")
    write_capacity(path, read_result(result))
    return path
