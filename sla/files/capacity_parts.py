"""The parts of ``capacity.json``'s top level (``sla.files.capacity``), typed: the SLA the
steps were judged against (``SpecInfo``), the loads that bracket the capacity
(``LoadPoint``: ``capacity`` and ``lowest_fail``), the ``Knee`` and the ``Cost``.

Each is a frozen dataclass with ``to_dict`` (the object written under its key) and
``from_fields`` (that object read back, checked field by field; a missing object is None).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sla.files.capacity_step import StepResult
from sla.files.fields import Fields

__all__ = ["Cost", "Knee", "LoadPoint", "SpecInfo"]


@dataclass(frozen=True, slots=True)
class SpecInfo:
    """The SLA the search judged its steps against."""

    name: str | None
    source: str | None
    confidence: float | None
    objectives: tuple[str, ...]  # their labels

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "confidence": self.confidence,
            "objectives": list(self.objectives),
        }

    @classmethod
    def from_fields(cls, f: Fields | None) -> SpecInfo | None:
        if f is None:
            return None
        return cls(
            f.opt_text("name"),
            f.opt_text("source"),
            f.opt_number("confidence"),
            f.texts("objectives"),
        )


@dataclass(frozen=True, slots=True)
class LoadPoint:
    """``capacity`` or ``lowest_fail``: a load (in the result's ``load_unit``), the step
    that judged it, and what that step measured (open loop: the rate the schedule actually
    made, which Poisson noise moves)."""

    load: float
    step: int
    arrival_rps: float | None = None
    throughput_rps: float | None = None

    @classmethod
    def of(cls, step: StepResult) -> LoadPoint:
        return cls(step.load, step.step, step.arrival_rps, step.throughput_rps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "load": self.load,
            "step": self.step,
            "arrival_rps": self.arrival_rps,
            "throughput_rps": self.throughput_rps,
        }

    @classmethod
    def from_fields(cls, f: Fields | None) -> LoadPoint | None:
        if f is None:
            return None
        return cls(
            f.number("load"),
            f.integer("step"),
            f.opt_number("arrival_rps"),
            f.opt_number("throughput_rps"),
        )


@dataclass(frozen=True, slots=True)
class Knee:
    """Where latency starts to climb (``sla.capacity.find_knee``): the load, its step, the
    step's throughput and the latency of ``metric`` (``"p90 latency_ms"``) there. Files
    written before the knee named its metric and point have only the load and the step."""

    load: float
    step: int
    throughput_rps: float | None = None
    latency_ms: float | None = None
    metric: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "load": self.load,
            "step": self.step,
            "throughput_rps": self.throughput_rps,
            "latency_ms": self.latency_ms,
            "metric": self.metric,
        }

    @classmethod
    def from_fields(cls, f: Fields | None) -> Knee | None:
        if f is None:
            return None
        return cls(
            load=f.number("load"),
            step=f.integer("step"),
            throughput_rps=f.opt_number("throughput_rps"),
            latency_ms=f.opt_number("latency_ms"),
            metric=f.opt_text("metric"),
        )


@dataclass(frozen=True, slots=True)
class Cost:
    """What serving costs at the capacity step (``sla.capacity.cost_at``), in the currency
    of ``per_hour`` (``currency``: its symbol, when a file names one; never written)."""

    per_hour: float
    at_load: float
    step: int | None
    requests_per_s: float
    output_tokens_per_s: float | None
    per_1k_requests: float
    per_1m_output_tokens: float | None
    currency: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "per_hour": self.per_hour,
            "at_load": self.at_load,
            "step": self.step,
            "requests_per_s": self.requests_per_s,
            "output_tokens_per_s": self.output_tokens_per_s,
            "per_1k_requests": self.per_1k_requests,
            "per_1m_output_tokens": self.per_1m_output_tokens,
        }
        return out if self.currency is None else {**out, "currency": self.currency}

    @classmethod
    def from_fields(cls, f: Fields | None) -> Cost | None:
        if f is None:
            return None
        return cls(
            per_hour=f.number("per_hour"),
            at_load=f.number("at_load"),
            step=f.opt_integer("step"),
            requests_per_s=f.number("requests_per_s"),
            output_tokens_per_s=f.opt_number("output_tokens_per_s"),
            per_1k_requests=f.number("per_1k_requests"),
            per_1m_output_tokens=f.opt_number("per_1m_output_tokens"),
            currency=f.opt_text("currency"),
        )
