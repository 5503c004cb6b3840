"""How the steps of a capacity result (``sla.files.capacity.CapacityResult``, checked when it
was read) are drawn: which steps make a curve, how each point is marked and what its hover
says. Text from the file is kept as it is; it reaches a figure only through ``safe_label``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dashboards.panel import STATUS_COLOURS, safe_label
from sla.files.capacity import Percentiles, StepResult

__all__ = [
    "OTHER_STATUS_COLOUR",
    "STATUS_SYMBOLS",
    "curve_points",
    "hover",
    "percentile",
    "status_colour",
    "status_markers",
    "step_notes",
]

STATUS_SYMBOLS = {"PASS": "circle", "FAIL": "x", "INCONCLUSIVE": "diamond", "ERROR": "square"}
OTHER_STATUS_COLOUR = "#777777"


def percentile(stats: Percentiles | None, stat: str) -> float | None:
    """``stats.p99`` (``stat="p99"``) of a step's percentiles, None when it has none."""
    return None if stats is None else float(getattr(stats, stat))


def curve_points(steps: Sequence[StepResult]) -> list[StepResult]:
    """The points of a curve: measured (not ERROR), with a throughput, by load then step."""
    kept = [s for s in steps if s.status != "ERROR" and s.throughput_rps is not None]
    return sorted(kept, key=lambda s: (s.load, s.step))


def step_notes(step: StepResult) -> tuple[str, ...]:
    """Why the search judged ``step`` as it did, beyond its SLA verdict."""
    return tuple(
        f"{label}: {why}"
        for why, label in (
            (step.unsustainable, "not sustainable"),
            (step.saturation, "load generator saturated"),
            (step.disturbed, "load generator disturbed"),
        )
        if why
    )


def status_colour(status: str) -> str:
    return STATUS_COLOURS.get(status, OTHER_STATUS_COLOUR)


def status_markers(points: Sequence[StepResult], line_colour: str) -> dict[str, Any]:
    """Plotly ``marker`` of a curve: each point coloured and shaped by its step's status."""
    return {
        "color": [status_colour(p.status) for p in points],
        "symbol": [STATUS_SYMBOLS.get(p.status, "square") for p in points],
        "size": 10,
        "line": {"color": line_colour, "width": 1.5},
    }


def hover(points: Sequence[StepResult], unit: str) -> tuple[list[list[object]], str]:
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
