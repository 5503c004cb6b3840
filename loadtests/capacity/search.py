"""The SLA-constrained capacity search (``--capacity-search``): a series of steps, each one
an ordinary slabench run by a locust of its own, judged against the SLA.

The process that was asked to search runs no load itself. For each step it starts
``python -m locust`` with the user's own arguments plus the step's load (``--arrival-rate`` or
``-u``), duration, warm-up and run directory inside the sweep directory, waits for it, judges
the run with ``sla.capacity.summarize_step`` and asks ``sla.search.SearchPolicy`` what to try
next. A step per process keeps each step a complete run directory (its report can be
rebuilt, ``python -m sla check`` re-judges it), isolates a crash to one step, and works
unchanged with ``--processes``.

A step *errors* when its locust fails, or when a request was refused a connection (the
target was not listening: it crashed or restarted). It is kept in ``capacity.json`` with
status ERROR, the search waits for the target to listen again and runs the step once more
(``--step-retries``). Overload shows as errors the SLA judges (429, 503, timeouts), not as
refused connections, so it never counts as a step error.

Beyond its SLA verdict a step is judged on two things only the search can see: the load
generator (saturated CPU, or open-loop sends more than ``--max-send-lag`` late, stops the
search: a capacity found past that point would be the generator's), and, in open loop, its
backlog (arrivals exceeding completions beyond ``--max-backlog-growth`` and chance make it
FAIL as not sustainable: a longer step would have failed its SLA). Each step gets its own
seed, so that Poisson noise in the arrival schedule does not push every step the same way.

``capacity.json`` is rewritten after every step, so a search that is killed keeps what it
established.
"""

from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import gevent

from loadtests.capacity.options import SearchOptions
from loadtests.capacity.steps import EXIT_USAGE, Segment, StepRunner, StepUsageError
from sla.capacity import cost_at, find_knee, min_samples, summarize_step, unsustainable
from sla.files.capacity import (
    CapacityResult,
    LoadPoint,
    SpecInfo,
    StepMeasurement,
    StepResult,
    measurement_values,
    write_capacity,
)
from sla.files.run import Run, strip_credentials
from sla.search import Finish, Probe, SearchPolicy, fmt_load
from sla.spec import Spec

EXIT_FOUND = 0
EXIT_FAILS_AT_MIN = 1
EXIT_UNRESOLVED = 3
EXIT_SATURATED = 4
EXIT_INTERRUPTED = 130
_EXIT = {
    "found": EXIT_FOUND,
    "sla_holds_at_max": EXIT_FOUND,
    "sla_fails_at_min": EXIT_FAILS_AT_MIN,
    "unresolved": EXIT_UNRESOLVED,
    "budget_exhausted": EXIT_UNRESOLVED,
    "generator_saturated": EXIT_SATURATED,
    "interrupted": EXIT_INTERRUPTED,
}
_SAMPLE_MARGIN = 1.25  # errors and filtered-out requests: plan a little more than needed
_TARGET_WAIT_S = 60.0
_INTERRUPTED = "interrupted by a signal; capacity.json holds what was established"


class SearchStopped(Exception):
    """The search cannot go on (interrupted, target gone); str() says why."""


@dataclass(slots=True)
class SearchState:
    steps: list[StepResult] = field(default_factory=list)
    overhead_s: float = 3.0  # a step's wall time beyond its run time (locust start-up, exit)


class CapacitySearch:
    def __init__(
        self,
        *,
        options: SearchOptions,
        spec: Spec,
        target_url: str,
        scenario: str,
        sweep_dir: Path,
        argv: list[str],
        bundled: bool = False,
        seed: int = 0,
        local_master: bool = False,
    ) -> None:
        self.options = options
        self.spec = spec
        self.target_url = target_url
        self.scenario = scenario
        self.sweep_dir = sweep_dir
        self.steps = StepRunner(
            argv=argv,
            target_url=target_url,
            sweep_dir=sweep_dir,
            bundled=bundled,
            say=self._say,
            local_master=local_master,
        )
        self.seed = seed
        self.policy = SearchPolicy(options.settings)
        self.state = SearchState()
        self.min_samples = options.min_samples or min_samples(spec)
        self.started_at = time.time()
        self._clock0 = time.monotonic()

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> int:
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        self._announce()
        handlers = self._install_signals()
        finish: Finish
        code = None
        try:
            finish = self._search()
        except SearchStopped as exc:
            finish = Finish("interrupted", str(exc))
        except StepUsageError as exc:
            finish, code = Finish("interrupted", f"a step rejected its options: {exc}"), EXIT_USAGE
        finally:
            for handler in handlers:
                handler.cancel()
        result = self.result(finish)
        path = write_capacity(self.sweep_dir, result)
        self._print_result(result, path)
        return _EXIT[finish.outcome] if code is None else code

    def _search(self) -> Finish:
        while True:
            if self.steps.interrupted:
                raise SearchStopped(_INTERRUPTED)
            decision = self.policy.next()
            if isinstance(decision, Finish):
                return decision
            if not self._fits(self._plan(decision)):
                return self._budget_spent()
            step = self._run_step(decision)
            self._write_progress()
            if step.status == "ERROR":
                self._print_step(step)
                return Finish("interrupted", f"step {step.step} errored: {step.error}")
            if not step.saturated:
                self.policy.record(decision.load, step.status, thorough=decision.thorough)
            self._print_step(step)
            if step.saturated:
                return self._saturated(step)

    def _run_step(self, probe: Probe) -> StepResult:
        """Run a step (retrying one that errored) and return its capacity.json entry."""
        for attempt in range(self.options.retries + 1):
            step = self._attempt(probe)
            self.state.steps.append(step)
            if step.status != "ERROR" or attempt == self.options.retries:
                return step
            self._print_step(step)
            self._wait_for_target()
            self._say(f"step {step.step} errored; running it again")
        raise AssertionError("unreachable")

    def _attempt(self, probe: Probe) -> StepResult:
        """Run one step: a segment, extended while thorough and still inconclusive."""
        number = len(self.state.steps) + 1
        label = f"step-{number:02d}-{'rate' if self.options.mode == 'rate' else 'users'}"
        base = f"{label}-{probe.load:g}"
        measure_s = self._plan(probe)
        t0 = time.monotonic()
        names: list[str] = []
        runs: list[Run] = []
        judged: _Judged | None = None
        extensions = self.options.extensions if probe.thorough else 0
        for segment in range(extensions + 1):
            name = base if segment == 0 else f"{base}-ext{segment}"
            self._announce_segment(number, probe, segment, measure_s)
            seg = self._segment(name, probe.load, measure_s, self._seed(number, segment))
            names.append(name)
            problem, run = self.steps.check(seg)
            if problem:
                return _errored(number, probe, names, time.monotonic() - t0, judged, problem)
            assert run is not None
            runs.append(run)
            judged = self._judge_segments(runs)
            if judged.measurement.status != "INCONCLUSIVE" or judged.measurement.saturated:
                break
            if segment < extensions and not self._fits(measure_s):
                break
        assert judged is not None
        offered = probe.load if self.options.mode == "rate" else None
        return judged.step(number, probe, names, time.monotonic() - t0, offered)

    def _announce_segment(self, number: int, probe: Probe, segment: int, measure_s: float) -> None:
        self._say(
            f"step {number} [{probe.phase}] {fmt_load(probe.load, self.options.mode)}: "
            f"{'segment ' + str(segment + 1) + ', ' if segment else ''}{measure_s:.0f}s "
            f"(+{self._warmup_s():.0f}s warm-up); {self._left()} of the budget left"
        )

    def _judge_segments(self, runs: list[Run]) -> _Judged:
        """Judge the step's segments so far as one sample."""
        _, measurement = summarize_step(self.spec, runs)
        why = unsustainable(measurement.backlog, self.options.max_backlog_growth)
        if why and measurement.status != "FAIL":
            measurement = replace(measurement, status="FAIL")  # it would, given a longer step
        saturation = self._saturation(measurement)
        measurement = replace(measurement, saturated=saturation is not None)
        return _Judged(measurement, why, saturation)

    def _segment(self, name: str, load: float, measure_s: float, seed: int) -> Segment:
        run_s = math.ceil(self._warmup_s() + measure_s)
        args = [*self._load_args(load), "--seed", str(seed)]
        # The step's own warm-up goes to --warmup (run.json's measured_from); the spec's
        # is added on top by the judge, so it only lengthens the run.
        seg = self.steps.run(name, run_s, self.options.step_warmup_s, args)
        self.state.overhead_s = max(1.0, seg.wall_s - run_s)
        if self.steps.interrupted:
            raise SearchStopped(_INTERRUPTED)
        return seg

    # --- planning ------------------------------------------------------------------------

    def _warmup_s(self) -> float:
        return self.options.step_warmup_s + self.spec.warmup_s

    def _plan(self, probe: Probe) -> float:
        """Measured seconds of one segment of ``probe``."""
        o = self.options
        if not probe.thorough:
            return o.step_s
        rate = self._expected_rps(probe.load)
        if not rate:
            return o.step_s
        return min(o.step_max_s, max(o.step_s, _SAMPLE_MARGIN * self.min_samples / rate))

    def _expected_rps(self, load: float) -> float | None:
        if self.options.mode == "rate":
            return load
        per_user = [
            s.throughput_rps / s.load
            for s in self.state.steps
            if s.throughput_rps and s.load <= load
        ]
        return load * min(per_user) if per_user else None

    def _saturation(self, measured: StepMeasurement) -> str | None:
        """Why the load generator counts as saturated in a step, or None."""
        if measured.saturated:
            return "its CPU was >= 90% of a core for most of the step"
        lag = measured.schedule_lag_ms.p90 if measured.schedule_lag_ms else None
        if lag is not None and lag > self.options.max_send_lag_ms:
            return (
                f"its open-loop sends left {lag:.1f} ms late at p90 "
                f"(--max-send-lag {self.options.max_send_lag_ms:g} ms)"
            )
        return None

    def _fits(self, measure_s: float) -> bool:
        needed = measure_s + self._warmup_s() + self.state.overhead_s
        return self.elapsed_s() + needed <= self.options.budget_s

    def _seed(self, step: int, segment: int) -> int:
        """Each segment its own arrival schedule and prompts: with one seed for all, every
        step would replay the same sample path, and a path that happens to run 10% sparse
        (Poisson noise) would make every step of the search 10% lighter than it says."""
        return self.seed + 1000 * (step - 1) + segment

    def _load_args(self, load: float) -> list[str]:
        if self.options.mode == "rate":
            return ["--arrival-rate", f"{load:g}", "-u", "1", "-r", "1"]
        users = str(int(load))
        return ["-u", users, "-r", users]

    # --- outcomes ------------------------------------------------------------------------

    def _budget_spent(self) -> Finish:
        lo, hi = self.policy.capacity(), self.policy.upper()
        mode = self.options.mode
        found = f"PASS at {fmt_load(lo, mode)}" if lo is not None else "no PASS yet"
        above = f", not at {fmt_load(hi, mode)}" if hi is not None else ""
        return Finish(
            "budget_exhausted",
            f"the time budget ({self.options.budget_s:g}s) ran out before the next step: "
            f"{found}{above}",
        )

    def _saturated(self, step: StepResult) -> Finish:
        lo = self.policy.capacity()
        mode = self.options.mode
        known = f"; the server passed at {fmt_load(lo, mode)}" if lo is not None else ""
        return Finish(
            "generator_saturated",
            f"the load generator saturated at {fmt_load(step.load, mode)} (step "
            f"{step.step}: {step.saturation}): a capacity found now would be the "
            f"generator's, not the server's{known}; add --processes",
        )

    def result(self, finish: Finish) -> CapacityResult:
        steps = self.state.steps
        lo, upper = self.policy.capacity(), self.policy.upper()
        cap_step = _last_step(steps, lo, "PASS")
        fail_step = _last_step(steps, self.policy.lowest_fail(), "FAIL")
        o = self.options
        return CapacityResult(
            scenario=self.scenario,
            target_url=strip_credentials(self.target_url),
            mode=o.mode,
            load_unit="req/s" if o.mode == "rate" else "users",
            spec=SpecInfo(
                name=self.spec.name,
                source=self.spec.source,
                confidence=self.spec.confidence,
                objectives=tuple(obj.label for obj in self.spec.objectives),
            ),
            settings=MappingProxyType({**o.describe(), "min_samples": self.min_samples}),
            started_at=self.started_at,
            ended_at=time.time(),
            wall_s=self.elapsed_s(),
            outcome=finish.outcome,
            message=finish.message,
            capacity=LoadPoint.of(cap_step) if cap_step else None,
            lowest_fail=LoadPoint.of(fail_step) if fail_step else None,
            precision=upper / lo - 1.0 if lo and upper else None,
            borderline=tuple(self.policy.borderline()),
            knee=find_knee(steps),
            cost=cost_at(cap_step, o.cost_per_hour) if cap_step else None,
            steps=tuple(steps),
        )

    # --- output --------------------------------------------------------------------------

    def _announce(self) -> None:
        s = self.options.settings
        top = f", max {fmt_load(s.maximum, s.mode)}" if math.isfinite(s.maximum) else ""
        self._say(
            f"capacity search ({s.mode}) of {strip_credentials(self.target_url)} against SLA "
            f"{self.spec.name!r}: start {fmt_load(s.start, s.mode)}, x{s.factor:g}{top}, "
            f"precision {s.precision:.0%}, budget {self.options.budget_s:g}s, "
            f"{self.min_samples} samples per bisection step; sweep {self.sweep_dir}"
        )

    def _print_step(self, step: StepResult) -> None:
        head = f"step {step.step} [{step.phase}] {fmt_load(step.load, self.options.mode)}"
        if step.status == "ERROR":
            self._say(f"{head}: ERROR {step.error}")
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
        if step.unsustainable:
            parts.append(f"NOT SUSTAINABLE: {step.unsustainable}")
        if step.saturated:
            parts.append(f"LOAD GENERATOR SATURATED: {step.saturation}")
        self._say(f"{head}: " + ", ".join(parts) + f" -> {self._bracket()}")

    def _bracket(self) -> str:
        mode = self.options.mode
        lo, hi = self.policy.capacity(), self.policy.upper()
        low = f"PASS {fmt_load(lo, mode)}" if lo is not None else "no PASS yet"
        high = f"not {fmt_load(hi, mode)}" if hi is not None else "no FAIL yet"
        return f"{low} .. {high}"

    def _print_result(self, result: CapacityResult, path: Path) -> None:
        self._say(f"capacity search {result.outcome.upper()}: {result.message}")
        cap = result.capacity
        if cap and cap.throughput_rps is not None:
            arrived = cap.arrival_rps
            self._say(
                f"at capacity: {_num(cap.throughput_rps)} req/s completed"
                + (f", {_num(arrived)} req/s arrived" if arrived is not None else "")
                + " in the step's measured window"
            )
        if result.knee:
            where = fmt_load(result.knee.load, self.options.mode)
            self._say(f"knee: latency starts to climb at {where}")
        cost = result.cost
        if cost:
            per_tok = cost.per_1m_output_tokens
            tokens = f"{per_tok:.4g} per 1M output tokens, " if per_tok is not None else ""
            self._say(
                f"cost at capacity ({cost.requests_per_s:.4g} req/s, "
                f"{cost.per_hour:g}/hour): {tokens}{cost.per_1k_requests:.4g} per 1k requests"
            )
        self._say(f"wrote {path}")

    def _write_progress(self) -> None:
        partial = Finish("interrupted", "the search is still running (or was killed)")
        write_capacity(self.sweep_dir, self.result(partial))

    def _say(self, text: str) -> None:
        print(f"slabench: {text}", flush=True)

    # --- time, signals, the target ------------------------------------------------------

    def elapsed_s(self) -> float:
        return time.monotonic() - self._clock0

    def _left(self) -> str:
        left = max(0.0, self.options.budget_s - self.elapsed_s())
        return f"{int(left // 60)}m{int(left % 60):02d}s"

    def _install_signals(self) -> list[Any]:
        return [
            gevent.signal_handler(sig, self.steps.interrupt)
            for sig in (signal.SIGINT, signal.SIGTERM)
        ]

    def _wait_for_target(self) -> None:
        if self.steps.wait_for_target(_TARGET_WAIT_S):
            return
        if self.steps.interrupted:
            raise SearchStopped(_INTERRUPTED)
        raise SearchStopped(f"the target did not accept connections within {_TARGET_WAIT_S:g}s")


@dataclass(frozen=True, slots=True)
class _Judged:
    """A step's segments judged so far: what they measured (its status already FAIL when
    its backlog grew, ``saturated`` set when the load generator was), and why."""

    measurement: StepMeasurement
    unsustainable: str | None
    saturation: str | None

    def step(
        self, number: int, probe: Probe, runs: list[str], wall_s: float, offered: float | None
    ) -> StepResult:
        """The step's capacity.json entry; open loop (``offered``): the offered rate and
        the rate at which requests really arrived."""
        m = self.measurement
        arrived = m.backlog.arrivals / m.window_s if m.backlog and m.window_s else None
        return StepResult(
            **measurement_values(m),
            **_bookkeeping(number, probe, runs, wall_s),
            unsustainable=self.unsustainable,
            saturation=self.saturation,
            offered_rps=offered,
            arrival_rps=arrived if offered is not None else None,
        )


def _bookkeeping(number: int, probe: Probe, runs: list[str], wall_s: float) -> dict[str, Any]:
    return {
        "step": number,
        "load": probe.load,
        "phase": probe.phase,
        "thorough": probe.thorough,
        "runs": tuple(runs),
        "wall_s": wall_s,
    }


def _errored(
    number: int,
    probe: Probe,
    runs: list[str],
    wall_s: float,
    judged: _Judged | None,
    problem: str,
) -> StepResult:
    """An ERROR step: what its earlier segments measured, if any, and what went wrong."""
    values = measurement_values(judged.measurement) if judged else {}
    values.update(status="ERROR", saturated=False, error=problem)
    return StepResult(**values, **_bookkeeping(number, probe, runs, wall_s))


def _last_step(steps: list[StepResult], load: float | None, status: str) -> StepResult | None:
    if load is None:
        return None
    matches = [s for s in steps if s.load == load and s.status == status]
    return matches[-1] if matches else None


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"
