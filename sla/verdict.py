"""Judge a run against an SLA spec: ``evaluate(spec, run) -> Verdict`` (pure).

What is judged is ``sla.samples`` (the measured window, the spec's warm-up and filters, good
requests, the window rates divide by; an objective with a ``where`` judges those samples
narrowed by it, and its counts are in its own ``n``, not in ``Verdict.counts``); how each
objective is decided at the spec's ``confidence`` (bounds, PASS/FAIL/INCONCLUSIVE, the
message) is ``sla.objectives``.

Overall: FAIL if any objective fails, else INCONCLUSIVE if any is, else PASS.

Exit codes (``exit_code``), one per outcome, in this order of precedence:
``EXIT_FAIL`` 1 > ``EXIT_SATURATED`` 4 > ``EXIT_INCONCLUSIVE`` 3 > ``EXIT_PASS`` 0;
``EXIT_USAGE`` 2 is a bad spec or argument. A saturated load generator (run.json
``generator.saturated``) is never a PASS: its overall status is INCONCLUSIVE at best, and
its exit code ``EXIT_SATURATED`` overrides PASS and INCONCLUSIVE because its run cannot be
trusted: it delivered less load than asked, so a PASS may hide a server that fails at the
intended load, and the fix for both is the same (more load-generator processes). It does
not override FAIL: a FAIL needs a person's attention either way, an error-rate failure is
the server's whatever the client's CPU, and the table and verdict.json still say that the
generator was saturated (a busy client can add delay, so re-check a latency FAIL then).

An incomplete run (``Run.incomplete``: never closed, run.json status not "complete", or
workers that never handed over their records) is never a PASS: its overall status is
INCONCLUSIVE at best (a FAIL stays FAIL, since the rows it has already fail) and its exit
code is ``EXIT_INCONCLUSIVE`` even with ``allow_inconclusive``, which is for too few
samples, not for samples that were lost. The reasons are in ``Verdict.incomplete``.

A disturbed load generator (``Run.disturbed``: a process whose event loop ran later than
``--max-loop-lag`` for too much of the measured window) is treated the same way: never a
PASS, INCONCLUSIVE at best, ``EXIT_INCONCLUSIVE`` even with ``allow_inconclusive``, its
reasons in ``Verdict.disturbed``. Its timestamps are late, so its latencies may be the
generator's; a FAIL stays FAIL (re-check a latency FAIL on a quieter machine).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from sla.errors import EXIT_USAGE
from sla.files.error_class import CLIENT_ERROR
from sla.objectives import ObjectiveResult, Status, judge_objective
from sla.reading import Reading
from sla.samples import RunLike, Samples, judged_samples, reading_for
from sla.spec import Filters, Spec

__all__ = [
    "EXIT_FAIL",
    "EXIT_INCONCLUSIVE",
    "EXIT_PASS",
    "EXIT_SATURATED",
    "EXIT_USAGE",
    "Counts",
    "Verdict",
    "errors_by_class",
    "evaluate",
    "evaluate_segments",
    "exit_code",
    "overall_status",
]

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_INCONCLUSIVE = 3
EXIT_SATURATED = 4


@dataclass(frozen=True, slots=True)
class Counts:
    """Rows recorded, in the judged window (after warm-up, cancellations and filters),
    successful, failed, and good (None without ``per_request`` limits)."""

    recorded: int
    measured: int
    ok: int
    failed: int
    good: int | None


@dataclass(frozen=True, slots=True)
class Verdict:
    spec_name: str
    spec_source: str
    run_path: str
    status: Status
    saturated: bool
    confidence: float
    window_s: float | None
    counts: Counts
    objectives: tuple[ObjectiveResult, ...]
    incomplete: tuple[str, ...] = ()  # why the run lacks data (Run.incomplete); () if whole
    # The judged failures by class (sla.files.error_class), the most frequent first; they
    # add up to counts.failed.
    errors_by_class: tuple[tuple[str, int], ...] = ()
    disturbed: tuple[str, ...] = ()  # why the load generator was disturbed (Run.disturbed)
    # Why --sla-stop-early ended the run (run.json ``stopped_early``); "" if it ran its course.
    stopped_early: str = ""


def exit_code(verdict: Verdict, *, allow_inconclusive: bool = False) -> int:
    """The process exit code for a verdict (precedence in the module docstring)."""
    if verdict.status is Status.FAIL:
        return EXIT_FAIL
    if verdict.saturated:
        return EXIT_SATURATED
    if verdict.incomplete or verdict.disturbed:
        return EXIT_INCONCLUSIVE
    if verdict.status is Status.INCONCLUSIVE and not allow_inconclusive:
        return EXIT_INCONCLUSIVE
    return EXIT_PASS


def evaluate(spec: Spec, run: RunLike) -> Verdict:
    """Judge ``run`` (a run, or a reading of it) against ``spec``; pure."""
    return evaluate_segments(spec, [run])


def evaluate_segments(spec: Spec, runs: Sequence[RunLike]) -> Verdict:
    """Judge several runs as one: the segments of one load level (an extended step of a
    capacity search). Each keeps its own measured window; the samples are pooled and rates
    divide by the sum of the windows, as if the windows followed each other."""
    if not runs:
        raise ValueError("evaluate_segments needs at least one run")
    readings = [reading_for(spec, run) for run in runs]
    return judge(spec, readings, judged_samples(spec, *readings))


def judge(spec: Spec, readings: Sequence[Reading], samples: Samples) -> Verdict:
    """The verdict on ``samples``, the ``judged_samples`` of ``readings``."""
    narrowed: dict[Filters, Samples] = {}
    for obj in spec.objectives:
        if obj.where is not None and obj.where not in narrowed:
            narrowed[obj.where] = judged_samples(spec, *readings, where=obj.where)
    results = tuple(
        judge_objective(obj, samples if obj.where is None else narrowed[obj.where], spec.confidence)
        for obj in spec.objectives
    )
    incomplete = tuple(reason for reading in readings for reason in reading.incomplete)
    disturbed = tuple(reason for reading in readings for reason in reading.disturbed)
    saturated = any(reading.saturated for reading in readings)
    return Verdict(
        spec_name=spec.name,
        spec_source=spec.source,
        run_path=str(readings[0].path),
        status=overall_status(
            {r.status for r in results}, untrusted=bool(saturated or incomplete or disturbed)
        ),
        saturated=saturated,
        confidence=spec.confidence,
        window_s=samples.window_s,
        counts=_counts(readings, samples),
        objectives=results,
        incomplete=incomplete,
        errors_by_class=errors_by_class(samples.rows),
        disturbed=disturbed,
        stopped_early="; ".join(
            str(r.meta["stopped_early"]) for r in readings if r.meta.get("stopped_early")
        ),
    )


def errors_by_class(rows: pd.DataFrame) -> tuple[tuple[str, int], ...]:
    """How many of ``rows`` failed with each error class, the most frequent first (ties by
    name); the rows carry ``error_class`` (``sla.metrics.with_request_metrics``)."""
    failed = rows.loc[~rows["ok"].to_numpy(dtype=bool), "error_class"]
    counts = failed.astype(object).fillna(CLIENT_ERROR).value_counts()
    ranked = sorted(counts.items(), key=lambda item: (-int(item[1]), str(item[0])))
    return tuple((str(name), int(n)) for name, n in ranked)


def overall_status(statuses: set[Status], *, untrusted: bool = False) -> Status:
    """FAIL if any objective failed, else INCONCLUSIVE if any is, else PASS; never PASS for
    an ``untrusted`` run (saturated, incomplete or disturbed: see the module)."""
    if Status.FAIL in statuses:
        return Status.FAIL
    if Status.INCONCLUSIVE in statuses or untrusted:
        return Status.INCONCLUSIVE
    return Status.PASS


def _counts(readings: Sequence[Reading], samples: Samples) -> Counts:
    ok = int(samples.rows["ok"].sum())
    return Counts(
        recorded=sum(len(reading.rows) for reading in readings),
        measured=len(samples.rows),
        ok=ok,
        failed=len(samples.rows) - ok,
        good=None if samples.good is None else int(samples.good.sum()),
    )
