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

Beyond its SLA verdict a step is judged on its load generator and, in open loop, its
backlog (``loadtests.capacity.judging``). Each step gets its own seed, so that Poisson noise
in the arrival schedule does not push every step the same way. What the search prints is
``loadtests.capacity.progress``; its outcomes' exit codes are ``loadtests.capacity.outcome``.

``capacity.json`` is rewritten after every step, so a search that is killed keeps what it
established.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from loadtests.capacity.judging import Judged, errored, judge_segments
from loadtests.capacity.options import SearchOptions
from loadtests.capacity.outcome import budget_spent, exit_code, generator_saturated
from loadtests.capacity.progress import Progress
from loadtests.capacity.steps import EXIT_USAGE, Segment, StepRunner, StepUsageError
from sla.capacity import cost_at, energy_at, find_knee, min_samples
from sla.files.capacity import CapacityResult, LoadPoint, SpecInfo, StepResult, write_capacity
from sla.files.run import Run, strip_credentials
from sla.search import Finish, Probe, SearchPolicy
from sla.spec import Spec

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
        live_interval_s: float = 0.0,
    ) -> None:
        self.options = options
        self.spec = spec
        self.target_url = target_url
        self.scenario = scenario
        self.sweep_dir = sweep_dir
        self.policy = SearchPolicy(options.settings)
        self.progress = Progress(options, self.policy)
        self.steps = StepRunner(
            argv=argv,
            target_url=target_url,
            sweep_dir=sweep_dir,
            bundled=bundled,
            say=self.progress.say,
            local_master=local_master,
            beat=self._beat,
            beat_s=live_interval_s,  # the progress line beside the step's live lines
        )
        self.seed = seed
        self.state = SearchState()
        self.min_samples = options.min_samples or min_samples(spec)
        self.started_at = time.time()
        self._clock0 = time.monotonic()

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> int:
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        self.progress.started(self.spec, self.target_url, self.min_samples, self.sweep_dir)
        finish: Finish
        code = None
        try:
            finish = self._search()
        except SearchStopped as exc:
            finish = Finish("interrupted", str(exc))
        except StepUsageError as exc:
            finish, code = Finish("interrupted", f"a step rejected its options: {exc}"), EXIT_USAGE
        result = self.result(finish)
        path = write_capacity(self.sweep_dir, result)
        self.progress.result(result, path)
        return exit_code(finish) if code is None else code

    def _search(self) -> Finish:
        while True:
            if self.steps.interrupted:
                raise SearchStopped(_INTERRUPTED)
            decision = self.policy.next()
            if isinstance(decision, Finish):
                return decision
            if not self._fits(self._plan(decision)):
                return budget_spent(self.policy, self.options)
            step = self._run_step(decision)
            self._write_progress()
            if step.status == "ERROR":
                self.progress.step(step)
                return Finish("interrupted", f"step {step.step} errored: {step.error}")
            if not step.saturated:
                self.policy.record(decision.load, step.status, thorough=decision.thorough)
            self.progress.step(step)
            self.progress.progress(steps_done=len(self.state.steps), elapsed_s=self.elapsed_s())
            if step.saturated:
                return generator_saturated(self.policy, step, self.options.mode)

    def _run_step(self, probe: Probe) -> StepResult:
        """Run a step (retrying one that errored) and return its capacity.json entry."""
        for attempt in range(self.options.retries + 1):
            step = self._attempt(probe)
            self.state.steps.append(step)
            if step.status != "ERROR" or attempt == self.options.retries:
                return step
            self.progress.step(step)
            self._wait_for_target()
            self.progress.say(f"step {step.step} errored; running it again")
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
        judged: Judged | None = None
        extensions = self.options.extensions if probe.thorough else 0
        for segment in range(extensions + 1):
            name = base if segment == 0 else f"{base}-ext{segment}"
            self.progress.segment(
                number,
                probe,
                segment,
                measure_s=measure_s,
                warmup_s=self._warmup_s(),
                left_s=self.options.budget_s - self.elapsed_s(),
            )
            seed = self._seed(number, segment)
            seg = self._segment(name, probe.load, measure_s, seed, label=f"step {number}")
            names.append(name)
            problem, run = self.steps.check(seg)
            if problem:
                return errored(number, probe, names, time.monotonic() - t0, judged, problem)
            assert run is not None
            runs.append(run)
            judged = judge_segments(self.spec, runs, self.options)
            m = judged.measurement
            # A disturbed segment stays in the step's pooled sample: more cannot settle it.
            if m.status != "INCONCLUSIVE" or m.saturated or m.disturbed:
                break
            if segment < extensions and not self._fits(measure_s):
                break
        assert judged is not None
        offered = probe.load if self.options.mode == "rate" else None
        return judged.step(number, probe, names, time.monotonic() - t0, offered)

    def _segment(
        self, name: str, load: float, measure_s: float, seed: int, *, label: str
    ) -> Segment:
        run_s = math.ceil(self._warmup_s() + measure_s)
        args = [*self._load_args(load), "--seed", str(seed)]
        # The step's own warm-up goes to --warmup (run.json's measured_from); the spec's
        # is added on top by the judge, so it only lengthens the run.
        seg = self.steps.run(name, run_s, self.options.step_warmup_s, args, label=label)
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

    # --- the result ----------------------------------------------------------------------

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
            energy=energy_at(cap_step) if cap_step else None,
            steps=tuple(steps),
        )

    def _write_progress(self) -> None:
        partial = Finish("interrupted", "the search is still running (or was killed)")
        write_capacity(self.sweep_dir, self.result(partial))

    # --- time, signals, the target ------------------------------------------------------

    def elapsed_s(self) -> float:
        return time.monotonic() - self._clock0

    def interrupt(self) -> None:
        """A stop signal (its process hands them over here): stop the step in flight, which
        keeps its records, and end the search with what it established."""
        self.steps.interrupt()

    def _beat(self, step_elapsed_s: float, run_s: int) -> None:
        """While a step runs: the search's progress line, the step in flight at the end."""
        self.progress.progress(
            steps_done=len(self.state.steps),
            elapsed_s=self.elapsed_s(),
            step=len(self.state.steps) + 1,
            step_s=f"{step_elapsed_s:.0f}/{run_s}s",
        )

    def _wait_for_target(self) -> None:
        if self.steps.wait_for_target(_TARGET_WAIT_S):
            return
        if self.steps.interrupted:
            raise SearchStopped(_INTERRUPTED)
        raise SearchStopped(f"the target did not accept connections within {_TARGET_WAIT_S:g}s")


def _last_step(steps: list[StepResult], load: float | None, status: str) -> StepResult | None:
    if load is None:
        return None
    matches = [s for s in steps if s.load == load and s.status == status]
    return matches[-1] if matches else None
