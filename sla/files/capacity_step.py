"""The steps of ``capacity.json`` (``sla.files.capacity``), typed: what a step measured
(``StepMeasurement``, built by ``sla.capacity.summarize_step``) and the step as the search
recorded it (``StepResult``: the measurement plus its bookkeeping).

In the file a step is one flat object; ``to_dict`` writes the keys the search always wrote
(a step that errored before measuring anything has no numbers, a closed-loop step no
``offered_rps``/``arrival_rps``) and ``from_fields`` reads them back, a missing optional
key as None. Latency-like percentiles are in milliseconds, as the keys holding them say
(``latency_ms``, ``ttft_ms``, ``tpot_ms``, ``schedule_lag_ms``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from sla.files.capacity_energy import StepEnergy
from sla.files.fields import Fields

__all__ = [
    "STEP_STATUSES",
    "Backlog",
    "Percentiles",
    "StepMeasurement",
    "StepObjective",
    "StepResult",
    "StepStatus",
    "measurement_values",
]

StepStatus = Literal["PASS", "FAIL", "INCONCLUSIVE", "ERROR"]
STEP_STATUSES: tuple[StepStatus, ...] = ("PASS", "FAIL", "INCONCLUSIVE", "ERROR")
_PERCENTILE_METRICS = ("latency_ms", "ttft_ms", "tpot_ms", "schedule_lag_ms")
_RATES = ("throughput_rps", "output_tokens_per_s", "goodput_rps", "goodput_ratio", "error_rate")


@dataclass(frozen=True, slots=True)
class Percentiles:
    """p50, p90 and p99 of a metric, in the unit its key names (milliseconds)."""

    p50: float
    p90: float
    p99: float

    def to_dict(self) -> dict[str, float]:
        return {"p50": self.p50, "p90": self.p90, "p99": self.p99}

    @classmethod
    def from_fields(cls, f: Fields | None) -> Percentiles | None:
        return None if f is None else cls(f.number("p50"), f.number("p90"), f.number("p99"))


@dataclass(frozen=True, slots=True)
class Backlog:
    """Open loop: requests that arrived (were scheduled) in the measured windows, requests
    that ended in them, and the difference (how much the queue in flight grew)."""

    arrivals: int
    completions: int
    growth: int

    def to_dict(self) -> dict[str, int]:
        return {"arrivals": self.arrivals, "completions": self.completions, "growth": self.growth}

    @classmethod
    def from_fields(cls, f: Fields | None) -> Backlog | None:
        if f is None:
            return None
        return cls(f.integer("arrivals"), f.integer("completions"), f.integer("growth"))


@dataclass(frozen=True, slots=True)
class StepObjective:
    """One objective of the SLA as a step's verdict judged it."""

    label: str
    op: str
    limit: float
    observed: float | None
    status: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "op": self.op,
            "limit": self.limit,
            "observed": self.observed,
            "status": self.status,
            "message": self.message,
        }

    @classmethod
    def from_fields(cls, f: Fields) -> StepObjective:
        return cls(
            label=f.text("label"),
            op=f.text("op"),
            limit=f.number("limit"),
            observed=f.opt_number("observed"),
            status=f.text("status"),
            message=f.text("message"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StepMeasurement:
    """What a step measured over its segments' measured windows (``summarize_step``).

    Proportions and percentiles are over the requests started in the windows; rates over
    the requests that ended in them. ``requests``, ``ok`` and ``failed`` are None only in
    a ``StepResult`` that errored before it measured anything."""

    status: StepStatus
    saturated: bool
    window_s: float | None = None
    requests: int | None = None
    ok: int | None = None
    failed: int | None = None
    good: int | None = None  # None without per_request limits
    throughput_rps: float | None = None
    output_tokens_per_s: float | None = None
    goodput_rps: float | None = None
    goodput_ratio: float | None = None
    error_rate: float | None = None
    latency_ms: Percentiles | None = None
    ttft_ms: Percentiles | None = None
    tpot_ms: Percentiles | None = None
    schedule_lag_ms: Percentiles | None = None  # open loop: how late the sends left
    backlog: Backlog | None = None  # open loop only
    objectives: tuple[StepObjective, ...] = ()
    disturbed: str | None = None  # why the load generator was disturbed (never a PASS)
    energy: StepEnergy | None = None  # None: measured before energy was (an older file)

    @property
    def measured(self) -> bool:
        return self.requests is not None

    def numbers_dict(self) -> dict[str, Any]:
        """The measured keys of the step's object in ``capacity.json``, in their order."""
        out: dict[str, Any] = {
            "window_s": self.window_s,
            "requests": self.requests,
            "ok": self.ok,
            "failed": self.failed,
            "good": self.good,
        }
        out.update((key, getattr(self, key)) for key in _RATES)
        for key in _PERCENTILE_METRICS:
            stats: Percentiles | None = getattr(self, key)
            out[key] = None if stats is None else stats.to_dict()
        out["backlog"] = None if self.backlog is None else self.backlog.to_dict()
        out["objectives"] = [o.to_dict() for o in self.objectives]
        if self.energy is not None:  # only then: older files read back byte for byte
            out["energy"] = self.energy.to_dict()
        return out


def measurement_values(m: StepMeasurement) -> dict[str, Any]:
    """The fields of ``m`` by name, to build a ``StepResult`` (or ``replace``) from them."""
    return {f.name: getattr(m, f.name) for f in fields(StepMeasurement)}


def _numbers(f: Fields) -> dict[str, Any]:
    """The measured fields of a step object (which has them when it has ``requests``)."""
    if "requests" not in f.data:
        return {}
    values: dict[str, Any] = {
        "window_s": f.opt_number("window_s"),
        "requests": f.integer("requests"),
        "ok": f.integer("ok"),
        "failed": f.integer("failed"),
        "good": f.opt_integer("good"),
        "backlog": Backlog.from_fields(f.obj("backlog")),
        "objectives": tuple(StepObjective.from_fields(o) for o in f.objects("objectives")),
        "energy": StepEnergy.from_fields(f.obj("energy")),
    }
    values.update((key, f.opt_number(key)) for key in _RATES)
    values.update((key, Percentiles.from_fields(f.obj(key))) for key in _PERCENTILE_METRICS)
    return values


@dataclass(frozen=True, slots=True, kw_only=True)
class StepResult(StepMeasurement):
    """One step of a search as ``capacity.json`` records it: its number (1-based, in the
    order the steps ran), load, phase (``widen``/``descend``/``bisect``/``confirm``), its
    run directories (relative to the sweep directory) and what it measured. ``status`` is
    the step's, not only its SLA verdict's: a growing backlog makes it FAIL
    (``unsustainable`` says why), a failed locust or a refused connection ERROR (``error``).
    """

    step: int
    load: float
    phase: str
    thorough: bool = False
    runs: tuple[str, ...] = ()
    error: str | None = None
    unsustainable: str | None = None
    saturation: str | None = None  # why the load generator counts as saturated
    wall_s: float | None = None
    offered_rps: float | None = None  # rate mode: the nominal rate
    arrival_rps: float | None = None  # rate mode: the arrivals the schedule made, per second

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "step": self.step,
            "load": self.load,
            "phase": self.phase,
            "thorough": self.thorough,
            "runs": list(self.runs),
            "error": self.error,
            "status": self.status,
            "saturated": self.saturated,
        }
        if self.measured:
            out.update(self.numbers_dict())
        out.update(unsustainable=self.unsustainable, saturation=self.saturation, wall_s=self.wall_s)
        if self.disturbed is not None:  # only then: older files read back byte for byte
            out["disturbed"] = self.disturbed
        if self.offered_rps is not None:
            out.update(offered_rps=self.offered_rps, arrival_rps=self.arrival_rps)
        return out

    @classmethod
    def from_fields(cls, f: Fields) -> StepResult:
        return cls(
            step=f.integer("step"),
            load=f.number("load"),
            phase=f.text("phase"),
            thorough=f.flag("thorough"),
            runs=f.texts("runs"),
            error=f.opt_text("error"),
            status=f.choice("status", STEP_STATUSES),
            saturated=f.flag("saturated"),
            unsustainable=f.opt_text("unsustainable"),
            saturation=f.opt_text("saturation"),
            disturbed=f.opt_text("disturbed"),
            wall_s=f.opt_number("wall_s"),
            offered_rps=f.opt_number("offered_rps"),
            arrival_rps=f.opt_number("arrival_rps"),
            **_numbers(f),
        )
