"""Which load a capacity search tries next, given the verdicts so far (pure; no I/O).

The load is an open-loop arrival rate (``mode="rate"``, req/s) or a closed-loop number of
users (``mode="concurrency"``). The policy:

1. *Widen*: start at ``start`` and multiply by ``factor`` until a step FAILS (or ``maximum``
   is reached). These steps are *quick* (the minimum step time, no extensions): their job is
   to find a failing load, and a FAIL needs few samples when the load is well past capacity.
2. *Descend*: if the first step already fails, divide by ``factor`` until one does not (or
   ``minimum`` is passed).
3. *Bisect*: between ``lo``, the highest load not failed, and ``hi``, the lowest load not
   established to pass (a FAIL, or a *thorough* step that stayed INCONCLUSIVE), try their
   geometric mean (rates) or integer middle (users) until ``hi / lo - 1 <= precision``.
   Bisection steps are *thorough*: long enough for the spec's minimum sample count, and
   extended when INCONCLUSIVE, so the bracket moves only on PASS or FAIL.
4. *Confirm*: if ``lo`` came from a quick step that did not PASS outright, run it again
   thoroughly; the capacity reported is always a load that PASSED.

The policy never guesses: an INCONCLUSIVE thorough step narrows the bracket from above (the
load is not shown to pass) and is reported as borderline, not as a pass or a fail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from sla.files.capacity import Outcome

Mode = Literal["rate", "concurrency"]
Phase = Literal["widen", "descend", "bisect", "confirm"]
PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"


@dataclass(frozen=True, slots=True)
class SearchSettings:
    mode: Mode
    start: float
    factor: float = 2.0
    precision: float = 0.05
    minimum: float = 0.0  # 0: start / factor**6 (rates), 1 user
    maximum: float = math.inf

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and self.start > 0):
            raise ValueError(f"start {self.start} must be > 0")
        if not (math.isfinite(self.factor) and self.factor > 1):
            raise ValueError(f"factor {self.factor} must be > 1")
        if not (math.isfinite(self.precision) and self.precision > 0):
            raise ValueError(f"precision {self.precision} must be > 0 (e.g. 0.05 for 5%)")
        if not self.maximum >= self.start:
            raise ValueError(f"maximum {self.maximum} must be >= the start {self.start}")
        if self.mode == "concurrency" and self.start != int(self.start):
            raise ValueError(f"a number of users must be a whole number, not {self.start}")
        for name, users in (("maximum", self.maximum), ("minimum", self.minimum)):
            if self.mode == "concurrency" and math.isfinite(users) and users != int(users):
                raise ValueError(f"{name} {users} must be a whole number of users")

    @property
    def floor(self) -> float:
        if self.minimum > 0:
            return self.minimum
        return 1.0 if self.mode == "concurrency" else self.start / self.factor**6


@dataclass(frozen=True, slots=True)
class Probe:
    """Run a step at ``load``; ``thorough`` steps need the full sample count and extensions."""

    load: float
    phase: Phase
    thorough: bool


@dataclass(frozen=True, slots=True)
class Finish:
    outcome: Outcome  # what the search established (sla.files.capacity.OUTCOMES)
    message: str


@dataclass(slots=True)
class SearchPolicy:
    settings: SearchSettings
    status: dict[float, str] = field(default_factory=dict)  # the latest verdict per load
    thorough: set[float] = field(default_factory=set)

    def record(self, load: float, status: str, *, thorough: bool) -> None:
        """The verdict of a step (PASS/FAIL/INCONCLUSIVE) at ``load``."""
        self.status[load] = status
        if thorough:
            self.thorough.add(load)

    def lowest_fail(self) -> float | None:
        fails = [load for load, st in self.status.items() if st == FAIL]
        return min(fails) if fails else None

    def upper(self) -> float | None:
        """The lowest load not established to pass: a FAIL or a thorough INCONCLUSIVE."""
        tops = [
            load
            for load, st in self.status.items()
            if st == FAIL or (st == INCONCLUSIVE and load in self.thorough)
        ]
        return min(tops) if tops else None

    def capacity(self) -> float | None:
        """The highest load that PASSED below every load not established to pass."""
        hi = self.upper()
        passes = [
            load for load, st in self.status.items() if st == PASS and (hi is None or load < hi)
        ]
        return max(passes) if passes else None

    def borderline(self) -> list[float]:
        """Loads judged thoroughly that stayed INCONCLUSIVE."""
        return sorted(
            x for x, st in self.status.items() if st == INCONCLUSIVE and x in self.thorough
        )

    def next(self) -> Probe | Finish:
        s = self.settings
        if not self.status:
            return Probe(s.start, "widen", thorough=False)
        hi = self.upper()
        if hi is None:
            return self._widen()
        below = [load for load in self.status if load < hi]
        if not below:
            return self._descend()
        lo = max(below)
        if self.converged(lo, hi):
            return self._settle(lo, hi)
        return Probe(self.middle(lo, hi), "bisect", thorough=True)

    def _widen(self) -> Probe | Finish:
        s = self.settings
        top = max(self.status)
        if top >= s.maximum:
            if self.status[top] != PASS and top not in self.thorough:
                return Probe(top, "confirm", thorough=True)
            if self.status[top] == PASS:
                return Finish(
                    "sla_holds_at_max",
                    f"the SLA held up to the search's maximum, {fmt_load(top, s.mode)}; "
                    "raise --search-max to look further",
                )
            return Finish(
                "unresolved",
                f"the SLA stayed INCONCLUSIVE at the search's maximum, {fmt_load(top, s.mode)}",
            )
        return Probe(min(s.maximum, self.step_up(top)), "widen", thorough=False)

    def _descend(self) -> Probe | Finish:
        s = self.settings
        low = min(self.status)
        if low <= s.floor:
            if self.status[low] != FAIL:  # a thorough INCONCLUSIVE: not shown to fail either
                return Finish(
                    "unresolved",
                    "no load was shown to pass: the SLA stayed INCONCLUSIVE at "
                    f"{fmt_load(low, s.mode)}, the lowest load tried",
                )
            return Finish(
                "sla_fails_at_min",
                f"the SLA failed even at {fmt_load(low, s.mode)}, the lowest load tried; "
                "lower --search-start (or check the target)",
            )
        return Probe(max(s.floor, self.step_down(low)), "descend", thorough=False)

    def _settle(self, lo: float, hi: float) -> Probe | Finish:
        s = self.settings
        if self.status[lo] != PASS:
            if lo not in self.thorough:
                return Probe(lo, "confirm", thorough=True)
            return Finish(
                "unresolved",
                f"no load below {fmt_load(hi, s.mode)} was shown to pass: the SLA stayed "
                f"INCONCLUSIVE at {fmt_load(lo, s.mode)}",
            )
        gap = hi / lo - 1.0
        text = (
            f"capacity {fmt_load(lo, s.mode)}: PASS at {fmt_load(lo, s.mode)}, "
            f"not at {fmt_load(hi, s.mode)} ({gap:.1%} apart)"
        )
        if self.borderline():
            loads = ", ".join(fmt_load(x, s.mode) for x in self.borderline())
            text += f"; INCONCLUSIVE (borderline) at {loads}"
        return Finish("found", text)

    def converged(self, lo: float, hi: float) -> bool:
        if self.settings.mode == "concurrency" and hi - lo <= 1:
            return True
        return hi / lo - 1.0 <= self.settings.precision

    def middle(self, lo: float, hi: float) -> float:
        if self.settings.mode == "concurrency":
            return float(max(lo + 1, min(hi - 1, round(math.sqrt(lo * hi)))))
        return round_between(math.sqrt(lo * hi), lo, hi)

    def step_up(self, load: float) -> float:
        if self.settings.mode == "concurrency":
            return float(max(load + 1, round(load * self.settings.factor)))
        # Not plain round_sig: with a factor near 1 it can round back to ``load`` itself.
        return round_between(load * self.settings.factor, load, math.inf)

    def step_down(self, load: float) -> float:
        if self.settings.mode == "concurrency":
            return float(max(1, min(load - 1, round(load / self.settings.factor))))
        return round_between(load / self.settings.factor, 0.0, load)


def round_sig(x: float, digits: int = 3) -> float:
    """``x`` to ``digits`` significant digits (loads that read well in directory names)."""
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def round_between(x: float, lo: float, hi: float) -> float:
    """``x`` rounded to the fewest significant digits (3 or more) that keep it in (lo, hi)."""
    for digits in range(3, 16):
        y = round_sig(x, digits)
        if lo < y < hi:
            return y
    return x


def fmt_load(load: float, mode: Mode) -> str:
    if mode == "concurrency":
        return f"{load:g} users"
    return f"{load:g} req/s"
