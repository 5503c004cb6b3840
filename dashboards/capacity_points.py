"""A capacity result (``capacity.json``, see ``sla.files.capacity``) read into frozen points once.

    points = step_points(result)              # one StepPoint per step, in the order they ran
    capacity = bound(result, "capacity")      # Bound(load, step) | None
    at = find_step(points, capacity.step)

The file is validated by ``sla.files.capacity.load_capacity``, but a field may still be null or
of a surprising type (an older writer, a hand edit): everything here returns None for a
number that is missing, not finite, or a boolean, so that the figures and the report tables
never have to check. Text fields are kept as they are; escape them where they are shown.
``status_markers`` and ``hover`` say how a point is marked on every capacity figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dashboards.panel import STATUS_COLOURS, safe_label

__all__ = [
    "OTHER_STATUS_COLOUR",
    "STATUS_SYMBOLS",
    "Bound",
    "StepPoint",
    "bound",
    "curve_points",
    "find_step",
    "hover",
    "knee_metric",
    "load_unit",
    "number",
    "status_colour",
    "status_markers",
    "step_points",
]

STATUS_SYMBOLS = {"PASS": "circle", "FAIL": "x", "INCONCLUSIVE": "diamond", "ERROR": "square"}
OTHER_STATUS_COLOUR = "#777777"


@dataclass(frozen=True, slots=True)
class StepPoint:
    """One step of a sweep, every number finite or None."""

    step: int
    load: float | None
    phase: str
    status: str
    throughput_rps: float | None
    goodput_rps: float | None
    goodput_ratio: float | None
    error_rate: float | None
    offered_rps: float | None
    arrival_rps: float | None  # what the open-loop schedule actually sent, per second
    output_tokens_per_s: float | None
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    ttft_p99_ms: float | None
    tpot_p99_ms: float | None
    window_s: float | None
    saturated: bool
    error: str | None
    runs: tuple[str, ...]
    notes: tuple[str, ...] = ()  # why the search judged the step as it did, beyond its SLA


@dataclass(frozen=True, slots=True)
class Bound:
    """``capacity`` or ``lowest_fail`` of a result: a load and the step that measured it."""

    load: float
    step: int | None


def number(value: object) -> float | None:
    """A finite number from the file, else None (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _percentile(step: Mapping[str, Any], metric: str, key: str) -> float | None:
    stats = step.get(metric)
    return number(stats.get(key)) if isinstance(stats, Mapping) else None


def _point(step: Mapping[str, Any], index: int) -> StepPoint:
    runs = step.get("runs")
    step_no = number(step.get("step"))
    error = step.get("error")
    return StepPoint(
        step=int(step_no) if step_no is not None else index,
        load=number(step.get("load")),
        phase=str(step.get("phase") or "?"),
        status=str(step.get("status") or "?"),
        throughput_rps=number(step.get("throughput_rps")),
        goodput_rps=number(step.get("goodput_rps")),
        goodput_ratio=number(step.get("goodput_ratio")),
        error_rate=number(step.get("error_rate")),
        offered_rps=number(step.get("offered_rps")),
        arrival_rps=number(step.get("arrival_rps")),
        output_tokens_per_s=number(step.get("output_tokens_per_s")),
        latency_p50_ms=_percentile(step, "latency_ms", "p50"),
        latency_p99_ms=_percentile(step, "latency_ms", "p99"),
        ttft_p99_ms=_percentile(step, "ttft_ms", "p99"),
        tpot_p99_ms=_percentile(step, "tpot_ms", "p99"),
        window_s=number(step.get("window_s")),
        saturated=bool(step.get("saturated")),
        error=None if error is None else str(error),
        runs=tuple(str(r) for r in runs) if isinstance(runs, list) else (),
        notes=tuple(
            f"{label}: {step[key]}"
            for key, label in (
                ("unsustainable", "not sustainable"),
                ("saturation", "load generator saturated"),
            )
            if isinstance(step.get(key), str) and step[key]
        ),
    )


def step_points(result: Mapping[str, Any]) -> tuple[StepPoint, ...]:
    """The steps of ``result`` in the order they ran; a step without a number is numbered
    by its position (1-based)."""
    steps = result.get("steps") or ()
    return tuple(_point(step, index) for index, step in enumerate(steps, start=1))


def bound(result: Mapping[str, Any], key: str) -> Bound | None:
    """``result[key]`` (``"capacity"``, ``"lowest_fail"``, ``"knee"``) as a ``Bound``."""
    entry = result.get(key)
    load = number(entry.get("load")) if isinstance(entry, Mapping) else None
    if load is None or not isinstance(entry, Mapping):
        return None
    step = number(entry.get("step"))
    return Bound(load, int(step) if step is not None else None)


def find_step(points: Sequence[StepPoint], step: int | None) -> StepPoint | None:
    return next((p for p in points if p.step == step), None) if step is not None else None


def load_unit(result: Mapping[str, Any]) -> str:
    unit = result.get("load_unit")
    if isinstance(unit, str) and unit:
        return unit
    return "users" if result.get("mode") == "concurrency" else "req/s"


def knee_metric(result: Mapping[str, Any]) -> str | None:
    """The metric the knee was found on (``"p90 latency_ms"``), when the file names one:
    older files have a knee without it."""
    knee = result.get("knee")
    metric = knee.get("metric") if isinstance(knee, Mapping) else None
    return metric if isinstance(metric, str) and metric else None


def curve_points(points: Sequence[StepPoint]) -> list[StepPoint]:
    """The points of a curve: measured (not ERROR), with a throughput, by load then step."""
    kept = [p for p in points if p.status != "ERROR" and p.throughput_rps is not None]
    return sorted(kept, key=lambda p: (p.load if p.load is not None else math.inf, p.step))


def status_colour(status: str) -> str:
    return STATUS_COLOURS.get(status, OTHER_STATUS_COLOUR)


def status_markers(points: Sequence[StepPoint], line_colour: str) -> dict[str, Any]:
    """Plotly ``marker`` of a curve: each point coloured and shaped by its step's status."""
    return {
        "color": [status_colour(p.status) for p in points],
        "symbol": [STATUS_SYMBOLS.get(p.status, "square") for p in points],
        "size": 10,
        "line": {"color": line_colour, "width": 1.5},
    }


def hover(points: Sequence[StepPoint], unit: str) -> tuple[list[list[object]], str]:
    """``customdata`` (step, load, status, phase) of each point and the head of a hover
    template that shows them; text from the file goes through ``safe_label``."""
    data: list[list[object]] = [
        [p.step, p.load, safe_label(p.status, 20), safe_label(p.phase, 20)] for p in points
    ]
    template = (
        "step %{customdata[0]} (%{customdata[3]}): load %{customdata[1]:.4g} "
        f"{safe_label(unit, 20)}, %{{customdata[2]}}<br>"
    )
    return data, template
