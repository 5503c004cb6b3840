"""The energy figures of ``capacity.json`` (``sla.files.capacity``): each measured step's
``energy`` (``StepEnergy``, from ``sla.capacity.step_energy``) and, at the top level, the
capacity step's (``EnergyAt``), beside the ``cost``::

    energy  {j_per_output_token, j_per_request, joules, mean_power_w, window_s, metric,
             none}                                       (a step's; null figures with none)
    energy  {at_load, step, <a step's energy keys>} | null            (the top level's)

``none`` says why a step has no figure (no energy source: the target exports no energy
metric, or reports none itself) and then every figure is null, never 0 J. A file written
before energy was measured has no ``energy`` key: it reads as None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sla.files.fields import Fields

__all__ = ["EnergyAt", "StepEnergy"]


@dataclass(frozen=True, slots=True)
class StepEnergy:
    """A step's energy over its measured windows (summed over its segments), or why none."""

    j_per_output_token: float | None = None
    j_per_request: float | None = None
    joules: float | None = None
    mean_power_w: float | None = None
    window_s: float | None = None
    metric: str | None = None  # the family it came from (a counter, or a power gauge)
    none: str | None = None  # why there is no figure

    def describe(self) -> str:
        """One line: the figures and their source, or why there are none."""
        if self.joules is None:
            return self.none or "no energy figure"
        per_token = self.j_per_output_token
        return (
            (f"{per_token:.4g} J/output token" if per_token is not None else "no output tokens")
            + (f", {self.j_per_request:.4g} J/request" if self.j_per_request is not None else "")
            + f" (mean {_num(self.mean_power_w)} W from {self.metric})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "j_per_output_token": self.j_per_output_token,
            "j_per_request": self.j_per_request,
            "joules": self.joules,
            "mean_power_w": self.mean_power_w,
            "window_s": self.window_s,
            "metric": self.metric,
            "none": self.none,
        }

    @classmethod
    def from_fields(cls, f: Fields | None) -> StepEnergy | None:
        if f is None:
            return None
        return cls(
            j_per_output_token=f.opt_number("j_per_output_token"),
            j_per_request=f.opt_number("j_per_request"),
            joules=f.opt_number("joules"),
            mean_power_w=f.opt_number("mean_power_w"),
            window_s=f.opt_number("window_s"),
            metric=f.opt_text("metric"),
            none=f.opt_text("none"),
        )


@dataclass(frozen=True, slots=True)
class EnergyAt:
    """The energy at the capacity found: its step's ``StepEnergy``, with its load."""

    at_load: float
    step: int
    energy: StepEnergy

    def to_dict(self) -> dict[str, Any]:
        return {"at_load": self.at_load, "step": self.step, **self.energy.to_dict()}

    @classmethod
    def from_fields(cls, f: Fields | None) -> EnergyAt | None:
        energy = StepEnergy.from_fields(f)
        if f is None or energy is None:
            return None
        return cls(at_load=f.number("at_load"), step=f.integer("step"), energy=energy)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"
