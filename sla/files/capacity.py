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
    energy    {at_load, step, j_per_output_token, j_per_request, joules, mean_power_w,
               window_s, metric, none}: the capacity step's energy (figures null and ``none``
               saying why when the target has no energy source; never 0 J); absent
               without a capacity step, or in a file written before energy was measured
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
    disturbed (str, only when the load generator was disturbed, its event loop late: such a
              step is INCONCLUSIVE at best, never a PASS),
    objectives [{label, op, limit, observed, status, message}],
    energy {j_per_output_token, j_per_request, joules, mean_power_w, window_s, metric, none}
              (``sla.files.capacity_energy``; absent in files written before it)

Every number is finite or null (``write_json_atomic``). In memory the file is a frozen
``CapacityResult`` (its steps: ``StepResult``, ``sla.files.capacity_step``; its other parts:
``SpecInfo``, ``LoadPoint``, ``Knee``, ``Cost``, ``sla.files.capacity_parts``; this module
exports them all):
``write_capacity`` writes ``result.to_dict()``; ``load_capacity`` checks the schema version,
the kind, the outcome and the type of every field once, here (anything malformed is one
``CapacityError`` line), and returns the result with ``path`` set to the sweep directory.
A key an older file lacks reads as None (``load_unit``: from the mode).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, get_args

from sla.errors import SlabenchError
from sla.files.capacity_energy import EnergyAt, StepEnergy
from sla.files.capacity_parts import Cost, Knee, LoadPoint, SpecInfo
from sla.files.capacity_step import (
    STEP_STATUSES,
    Backlog,
    Percentiles,
    StepMeasurement,
    StepObjective,
    StepResult,
    StepStatus,
    measurement_values,
)
from sla.files.fields import Fields
from sla.files.jsonio import check_schema_version, read_json_object, write_json_atomic

__all__ = [
    "CAPACITY_FILE",
    "CAPACITY_SCHEMA_VERSION",
    "OUTCOMES",
    "STEP_STATUSES",
    "Backlog",
    "CapacityError",
    "CapacityResult",
    "Cost",
    "EnergyAt",
    "Knee",
    "LoadPoint",
    "Mode",
    "Outcome",
    "Percentiles",
    "SpecInfo",
    "StepEnergy",
    "StepMeasurement",
    "StepObjective",
    "StepResult",
    "StepStatus",
    "load_capacity",
    "measurement_values",
    "write_capacity",
]

CAPACITY_FILE = "capacity.json"
CAPACITY_SCHEMA_VERSION = 1
Outcome = Literal[
    "found",
    "sla_holds_at_max",
    "sla_fails_at_min",
    "generator_saturated",
    "budget_exhausted",
    "unresolved",
    "interrupted",
]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
Mode = Literal["rate", "concurrency"]
_MODES: tuple[Mode, ...] = get_args(Mode)


class CapacityError(SlabenchError):
    """A sweep directory or capacity.json that cannot be read; str() is one line."""


Scalar = str | int | float | bool | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CapacityResult:
    """The result of a capacity search: ``capacity.json`` in memory (see the module)."""

    scenario: str | None
    target_url: str | None
    mode: Mode
    load_unit: str  # "req/s" (rate) or "users" (concurrency)
    spec: SpecInfo | None
    settings: Mapping[str, Scalar] = field(default_factory=lambda: MappingProxyType({}))
    started_at: float | None
    ended_at: float | None
    wall_s: float | None
    outcome: Outcome
    message: str
    capacity: LoadPoint | None
    lowest_fail: LoadPoint | None
    precision: float | None  # lowest_fail / capacity - 1
    borderline: tuple[float, ...] = ()  # loads judged thoroughly that stayed INCONCLUSIVE
    knee: Knee | None = None
    cost: Cost | None = None
    energy: EnergyAt | None = None
    steps: tuple[StepResult, ...] = ()
    path: Path | None = None  # the sweep directory it was read from (not in the file)

    def find_step(self, step: int | None) -> StepResult | None:
        """The step numbered ``step`` (None: no such step)."""
        return next((s for s in self.steps if s.step == step), None)

    def to_dict(self) -> dict[str, Any]:
        """The file's object (less ``schema_version``, which ``write_capacity`` adds)."""

        def of(item: LoadPoint | Knee | Cost | EnergyAt | SpecInfo | None) -> dict[str, Any] | None:
            return None if item is None else item.to_dict()

        return {
            "kind": "capacity",
            "scenario": self.scenario,
            "target_url": self.target_url,
            "mode": self.mode,
            "load_unit": self.load_unit,
            "spec": of(self.spec),
            "settings": dict(self.settings),
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "wall_s": self.wall_s,
            "outcome": self.outcome,
            "message": self.message,
            "capacity": of(self.capacity),
            "lowest_fail": of(self.lowest_fail),
            "precision": self.precision,
            "borderline": list(self.borderline),
            "knee": of(self.knee),
            "cost": of(self.cost),
            **({} if self.energy is None else {"energy": of(self.energy)}),
            "steps": [s.to_dict() for s in self.steps],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object], where: str = "") -> CapacityResult:
        """Check and read the file's object; ``where`` starts every error ("<path>: ")."""
        f = Fields(data, CapacityError, where)
        if data.get("kind") != "capacity":
            raise CapacityError(f"{where}not a slabench capacity result")
        if data.get("outcome") not in OUTCOMES:
            raise CapacityError(f"{where}unknown outcome {data.get('outcome')!r}")
        steps = data.get("steps")
        if not isinstance(steps, list) or not all(isinstance(s, Mapping) for s in steps):
            raise CapacityError(f"{where}'steps' must be a list of objects")
        mode = f.choice("mode", _MODES)
        return cls(
            scenario=f.opt_text("scenario"),
            target_url=f.opt_text("target_url"),
            mode=mode,
            load_unit=f.opt_text("load_unit") or ("users" if mode == "concurrency" else "req/s"),
            spec=SpecInfo.from_fields(f.obj("spec")),
            settings=_settings(f),
            started_at=f.opt_number("started_at"),
            ended_at=f.opt_number("ended_at"),
            wall_s=f.opt_number("wall_s"),
            outcome=f.choice("outcome", OUTCOMES),
            message=f.opt_text("message") or "",
            capacity=LoadPoint.from_fields(f.obj("capacity")),
            lowest_fail=LoadPoint.from_fields(f.obj("lowest_fail")),
            precision=f.opt_number("precision"),
            borderline=f.numbers("borderline"),
            knee=Knee.from_fields(f.obj("knee")),
            cost=Cost.from_fields(f.obj("cost")),
            energy=EnergyAt.from_fields(f.obj("energy")),
            steps=tuple(StepResult.from_fields(s) for s in f.objects("steps")),
        )


def _settings(f: Fields) -> Mapping[str, Scalar]:
    """The search's settings as they were given (a flat object of JSON scalars)."""
    settings = f.obj("settings")
    values = {} if settings is None else dict(settings.data)
    for key, value in values.items():
        if not isinstance(value, str | int | float | bool | None):
            f.fail("settings", f"an object of numbers and text (not {key}: {value!r})")
    return MappingProxyType(values)  # type: ignore[arg-type]


def write_capacity(sweep_dir: str | os.PathLike[str], result: CapacityResult) -> Path:
    """Write ``capacity.json`` atomically (readers never see half a file)."""
    path = Path(sweep_dir) / CAPACITY_FILE
    write_json_atomic(path, {"schema_version": CAPACITY_SCHEMA_VERSION, **result.to_dict()})
    return path


def load_capacity(sweep_dir: str | os.PathLike[str]) -> CapacityResult:
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
    return replace(CapacityResult.from_dict(data, f"{path}: "), path=path.parent)
