"""How a capacity search ends: the exit code of each outcome, and the messages of the two
outcomes the search decides itself rather than its policy (``sla.search``): the time budget
ran out, or the load generator saturated."""

from __future__ import annotations

from loadtests.capacity.options import SearchOptions
from sla.files.capacity import StepResult
from sla.search import Finish, Mode, SearchPolicy, fmt_load

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


def exit_code(finish: Finish) -> int:
    return _EXIT[finish.outcome]


def budget_spent(policy: SearchPolicy, options: SearchOptions) -> Finish:
    lo, hi = policy.capacity(), policy.upper()
    mode = options.mode
    found = f"PASS at {fmt_load(lo, mode)}" if lo is not None else "no PASS yet"
    above = f", not at {fmt_load(hi, mode)}" if hi is not None else ""
    return Finish(
        "budget_exhausted",
        f"the time budget ({options.budget_s:g}s) ran out before the next step: {found}{above}",
    )


def generator_saturated(policy: SearchPolicy, step: StepResult, mode: Mode) -> Finish:
    lo = policy.capacity()
    known = f"; the server passed at {fmt_load(lo, mode)}" if lo is not None else ""
    return Finish(
        "generator_saturated",
        f"the load generator saturated at {fmt_load(step.load, mode)} (step "
        f"{step.step}: {step.saturation}): a capacity found now would be the "
        f"generator's, not the server's{known}; add --processes",
    )
