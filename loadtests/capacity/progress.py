"""What a capacity search prints as it goes: one ``slabench:`` line when it starts, per
segment, per step (with the bracket established so far) and at the end (the outcome, the
capacity, the knee, the cost, the energy, the file written); and a progress line (a bar of
the budget spent, steps done, the bracket, the budget left, the step in flight) after each
step and at each live interval, beside the step's own live lines
(``loadtests.capacity.relay``). Formatting only; the search decides."""

from __future__ import annotations

import math
from pathlib import Path

from loadtests.capacity.options import SearchOptions
from sla.files.capacity import CapacityResult, StepResult
from sla.files.run import strip_credentials
from sla.search import Probe, SearchPolicy, fmt_load
from sla.spec import Spec

BAR_WIDTH = 20


def say(text: str) -> None:
    print(f"slabench: {text}", flush=True)


class Progress:
    """The search's terminal lines; ``policy`` is read for the bracket after each step."""

    def __init__(self, options: SearchOptions, policy: SearchPolicy) -> None:
        self.options = options
        self.policy = policy
        self.say = say

    def started(self, spec: Spec, target_url: str, min_samples: int, sweep_dir: Path) -> None:
        s = self.options.settings
        top = f", max {fmt_load(s.maximum, s.mode)}" if math.isfinite(s.maximum) else ""
        self.say(
            f"capacity search ({s.mode}) of {strip_credentials(target_url)} against SLA "
            f"{spec.name!r}: start {fmt_load(s.start, s.mode)}, x{s.factor:g}{top}, "
            f"precision {s.precision:.0%}, budget {self.options.budget_s:g}s, "
            f"{min_samples} samples per bisection step; sweep {sweep_dir}"
        )

    def segment(
        self,
        number: int,
        probe: Probe,
        segment: int,
        *,
        measure_s: float,
        warmup_s: float,
        left_s: float,
    ) -> None:
        """Segment ``segment`` (0: the first) of step ``number`` starts."""
        self.say(
            f"step {number} [{probe.phase}] {fmt_load(probe.load, self.options.mode)}: "
            f"{'segment ' + str(segment + 1) + ', ' if segment else ''}{measure_s:.0f}s "
            f"(+{warmup_s:.0f}s warm-up); {_minutes(left_s)} of the budget left"
        )

    def step(self, step: StepResult) -> None:
        head = f"step {step.step} [{step.phase}] {fmt_load(step.load, self.options.mode)}"
        if step.status == "ERROR":
            self.say(f"{head}: ERROR {step.error}")
            return
        p99 = step.latency_ms.p99 if step.latency_ms else None
        arrived = step.arrival_rps
        parts = [
            f"{step.status}",
            *([f"{arrived:.4g} req/s arrived"] if arrived else []),
            f"{_num(step.throughput_rps)} req/s ok",
            f"goodput {_num(step.goodput_rps)} req/s",
            f"p99 latency {_num(p99)} ms",
            f"{step.requests} requests",
            f"{step.wall_s or 0.0:.0f}s",
        ]
        per_token = step.energy.j_per_output_token if step.energy else None
        if per_token is not None:
            parts.insert(4, f"{per_token:.4g} J/output token")
        if step.unsustainable:
            parts.append(f"NOT SUSTAINABLE: {step.unsustainable}")
        if step.saturated:
            parts.append(f"LOAD GENERATOR SATURATED: {step.saturation}")
        if step.disturbed:
            parts.append(f"LOAD GENERATOR DISTURBED, never a PASS: {step.disturbed}")
        self.say(f"{head}: " + ", ".join(parts) + f" -> {self.bracket()}")

    def progress(
        self, *, steps_done: int, elapsed_s: float, step: int | None = None, step_s: str = ""
    ) -> None:
        """The search's progress line; ``step``/``step_s``: the step in flight and how far
        it has gone (``12/20s``)."""
        budget = self.options.budget_s
        used = min(1.0, max(0.0, elapsed_s / budget)) if budget > 0 else 1.0
        filled = round(used * BAR_WIDTH)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        line = (
            f"search [{bar}] {used:.0%} of the budget: {steps_done} "
            f"step{'' if steps_done == 1 else 's'} done, {self.bracket()}, "
            f"{_minutes(budget - elapsed_s)} left"
        )
        if step is not None:
            line += f"; step {step} at {step_s}"
        self.say(line)

    def bracket(self) -> str:
        mode = self.options.mode
        lo, hi = self.policy.capacity(), self.policy.upper()
        low = f"PASS {fmt_load(lo, mode)}" if lo is not None else "no PASS yet"
        high = f"not {fmt_load(hi, mode)}" if hi is not None else "no FAIL yet"
        return f"{low} .. {high}"

    def result(self, result: CapacityResult, path: Path) -> None:
        self.say(f"capacity search {result.outcome.upper()}: {result.message}")
        cap = result.capacity
        if cap and cap.throughput_rps is not None:
            arrived = cap.arrival_rps
            self.say(
                f"at capacity: {_num(cap.throughput_rps)} req/s completed"
                + (f", {_num(arrived)} req/s arrived" if arrived is not None else "")
                + " in the step's measured window"
            )
        if result.knee:
            where = fmt_load(result.knee.load, self.options.mode)
            self.say(f"knee: latency starts to climb at {where}")
        cost = result.cost
        if cost:
            per_tok = cost.per_1m_output_tokens
            tokens = f"{per_tok:.4g} per 1M output tokens, " if per_tok is not None else ""
            self.say(
                f"cost at capacity ({cost.requests_per_s:.4g} req/s, "
                f"{cost.per_hour:g}/hour): {tokens}{cost.per_1k_requests:.4g} per 1k requests"
            )
        if result.energy:
            self.say(
                f"energy at capacity (step {result.energy.step}): {result.energy.energy.describe()}"
            )
        self.say(f"wrote {path}")


def _minutes(seconds: float) -> str:
    left = max(0.0, seconds)
    return f"{int(left // 60)}m{int(left % 60):02d}s"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"
