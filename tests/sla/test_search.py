"""The capacity-search policy, driven by oracles whose capacity is known exactly.

An oracle answers each probe as a step would: by default PASS iff ``load <= C``; the
INCONCLUSIVE cases make quick (widen/descend) or thorough (bisect/confirm) steps stay
undecided in a band of loads, as too few samples or a borderline server would.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from sla.search import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    Finish,
    Mode,
    Probe,
    SearchPolicy,
    SearchSettings,
    fmt_load,
    round_between,
    round_sig,
)

Oracle = Callable[[Probe], str]
PRECISION = 0.05
LINEAR_GRID_STEPS = math.ceil(1 / PRECISION) + 1


@dataclass(frozen=True, slots=True)
class Trace:
    policy: SearchPolicy
    probes: list[Probe]
    finish: Finish

    def loads(self, phase: str | None = None) -> list[float]:
        return [p.load for p in self.probes if phase is None or p.phase == phase]


def search(settings: SearchSettings, oracle: Oracle, *, limit: int = 200) -> Trace:
    """Run the policy to its Finish; a policy that never finishes fails the test."""
    policy = SearchPolicy(settings)
    probes: list[Probe] = []
    for _ in range(limit):
        decision = policy.next()
        if isinstance(decision, Finish):
            return Trace(policy, probes, decision)
        probes.append(decision)
        policy.record(decision.load, oracle(decision), thorough=decision.thorough)
    pytest.fail(f"no Finish after {limit} probes; the last: {probes[-5:]}", pytrace=False)


def passes_up_to(capacity: float) -> Oracle:
    return lambda probe: PASS if probe.load <= capacity else FAIL


def assert_well_formed(trace: Trace) -> None:
    """Quick widen/descend, thorough bisect/confirm; no load tried twice except to confirm."""
    seen: set[float] = set()
    for probe in trace.probes:
        assert probe.thorough == (probe.phase in ("bisect", "confirm")), probe
        if probe.phase == "confirm":
            assert probe.load in seen, f"confirm of a load never tried: {probe}"
        else:
            assert probe.load not in seen, f"{probe} repeats a load"
        seen.add(probe.load)


def assert_bracketed(trace: Trace, capacity: float) -> None:
    """Found: the capacity PASSED, is <= the true one, and is within the precision."""
    settings, policy = trace.policy.settings, trace.policy
    found, hi = policy.capacity(), policy.upper()
    assert trace.finish.outcome == "found", trace.finish.message
    assert found is not None and hi is not None
    assert policy.status[found] == PASS
    assert found <= capacity < hi
    assert policy.converged(found, hi)
    if settings.mode == "concurrency":
        assert hi - found <= 1 or hi / found - 1 <= settings.precision
    else:
        assert capacity / found - 1 <= hi / found - 1 <= settings.precision
    assert trace.finish.message.startswith(f"capacity {fmt_load(found, settings.mode)}: PASS")


# --- rate mode ----------------------------------------------------------------------------

RATE = SearchSettings(mode="rate", start=10.0, factor=2.0, precision=PRECISION)


@pytest.mark.parametrize(
    "capacity",
    [0.2, 0.5, 3.0, 7.3, 9.99, 10.0, 10.2, 15.0, 33.3, 80.0, 100.0, 1000.0, 12345.0],
)
def test_rate_search_brackets_the_capacity_within_the_precision(capacity: float) -> None:
    trace = search(RATE, passes_up_to(capacity))

    assert_bracketed(trace, capacity)
    assert_well_formed(trace)
    assert trace.probes[0] == Probe(10.0, "widen", thorough=False)
    assert not trace.loads("confirm")  # every quick step was decisive


@pytest.mark.parametrize("capacity", [40.0, 100.0, 1000.0, 12345.0])
def test_fewer_probes_than_a_linear_grid_when_capacity_is_well_above_start(
    capacity: float,
) -> None:
    trace = search(RATE, passes_up_to(capacity))

    assert len(trace.probes) < LINEAR_GRID_STEPS
    widen = trace.loads("widen")
    # Widening doubles (to 3 significant digits) until the first FAIL, then bisection.
    assert widen[0] == 10.0
    assert widen[1:] == [round_sig(2 * x) for x in widen[:-1]]
    assert widen[-1] > capacity >= widen[-2]
    assert trace.loads()[len(widen) :] == trace.loads("bisect")


def test_a_finer_precision_still_beats_its_grid() -> None:
    settings = SearchSettings(mode="rate", start=1.0, precision=0.01)
    trace = search(settings, passes_up_to(437.0))

    assert_bracketed(trace, 437.0)
    assert len(trace.probes) < math.ceil(1 / 0.01) + 1


def test_bisection_tries_the_geometric_mean_of_the_bracket() -> None:
    trace = search(RATE, passes_up_to(100.0))
    lo, hi = 80.0, 160.0  # the last PASS and the first FAIL of the widening

    first = trace.loads("bisect")[0]

    assert first == round_sig(math.sqrt(lo * hi))
    assert lo < first < hi


def test_start_already_failing_descends_quickly_then_bisects() -> None:
    trace = search(RATE, passes_up_to(3.0))

    assert trace.probes[:4] == [
        Probe(10.0, "widen", thorough=False),
        Probe(5.0, "descend", thorough=False),
        Probe(2.5, "descend", thorough=False),
        Probe(round_between(math.sqrt(2.5 * 5.0), 2.5, 5.0), "bisect", thorough=True),
    ]
    assert_bracketed(trace, 3.0)


def test_failing_at_the_floor_is_sla_fails_at_min() -> None:
    trace = search(RATE, passes_up_to(0.1))  # below start / 2**6

    assert trace.finish.outcome == "sla_fails_at_min"
    assert trace.policy.capacity() is None
    assert {p.phase for p in trace.probes[1:]} == {"descend"}
    assert not any(p.thorough for p in trace.probes)
    assert trace.loads()[-1] == RATE.floor == 10.0 / 64
    assert min(trace.loads()) == RATE.floor  # never below the floor
    assert "failed even at 0.15625 req/s" in trace.finish.message
    assert "--search-start" in trace.finish.message


def test_an_explicit_minimum_is_the_floor() -> None:
    settings = SearchSettings(mode="rate", start=10.0, minimum=3.0)
    trace = search(settings, passes_up_to(1.0))

    assert trace.loads() == [10.0, 5.0, 3.0]
    assert trace.finish.outcome == "sla_fails_at_min"


def test_holding_at_the_maximum_is_sla_holds_at_max() -> None:
    settings = SearchSettings(mode="rate", start=10.0, maximum=50.0)
    trace = search(settings, passes_up_to(1e9))

    assert trace.loads() == [10.0, 20.0, 40.0, 50.0]  # the last step is capped at the maximum
    assert trace.finish.outcome == "sla_holds_at_max"
    assert trace.policy.capacity() == 50.0
    assert "--search-max" in trace.finish.message


def test_a_capacity_between_the_last_widen_step_and_the_maximum_is_found() -> None:
    settings = SearchSettings(mode="rate", start=10.0, maximum=50.0)
    trace = search(settings, passes_up_to(47.0))

    assert_bracketed(trace, 47.0)
    assert max(trace.loads()) == 50.0


def quick_undecided(low: float, high: float, thorough: Oracle) -> Oracle:
    """A quick step in [low, high] stays INCONCLUSIVE; thorough steps ask ``thorough``."""

    def oracle(probe: Probe) -> str:
        if not probe.thorough and low <= probe.load <= high:
            return INCONCLUSIVE
        return thorough(probe)

    return oracle


@pytest.mark.parametrize("thorough_status", [PASS, FAIL, INCONCLUSIVE])
def test_an_inconclusive_top_at_the_maximum_is_confirmed(thorough_status: str) -> None:
    settings = SearchSettings(mode="rate", start=10.0, maximum=50.0)

    def at_top(probe: Probe) -> str:
        return thorough_status if probe.load == 50.0 else passes_up_to(47.0)(probe)

    trace = search(settings, quick_undecided(50.0, 50.0, at_top))

    assert trace.probes[3:5] == [
        Probe(50.0, "widen", thorough=False),
        Probe(50.0, "confirm", thorough=True),
    ]
    assert_well_formed(trace)
    if thorough_status == PASS:
        assert trace.finish.outcome == "sla_holds_at_max"
        assert trace.policy.capacity() == 50.0
    else:
        assert_bracketed(trace, 47.0)
        assert trace.policy.borderline() == ([50.0] if thorough_status == INCONCLUSIVE else [])


def test_a_quick_inconclusive_lower_bracket_is_confirmed_and_kept_when_it_passes() -> None:
    # Widen: 10 PASS, 20 PASS, 40 INCONCLUSIVE (quick), 80 FAIL; every bisection step above
    # 40 fails, so the bracket closes on a lower end that no step has shown to pass yet.
    trace = search(RATE, quick_undecided(30.0, 60.0, passes_up_to(40.5)))

    assert trace.loads("widen") == [10.0, 20.0, 40.0, 80.0]
    assert trace.probes[-1] == Probe(40.0, "confirm", thorough=True)
    assert_bracketed(trace, 40.5)
    assert trace.policy.capacity() == 40.0
    assert_well_formed(trace)


def test_a_quick_inconclusive_lower_bracket_that_fails_its_confirmation_is_dropped() -> None:
    trace = search(RATE, quick_undecided(30.0, 60.0, passes_up_to(35.0)))

    assert Probe(40.0, "confirm", thorough=True) in trace.probes
    assert trace.policy.status[40.0] == FAIL
    assert_bracketed(trace, 35.0)
    assert 20.0 < (trace.policy.capacity() or 0.0) < 40.0
    assert_well_formed(trace)


def borderline_above(capacity: float, band: float) -> Oracle:
    """PASS up to ``capacity``; a thorough step up to ``capacity * band`` stays INCONCLUSIVE."""

    def oracle(probe: Probe) -> str:
        if probe.load <= capacity:
            return PASS
        if probe.thorough and probe.load <= capacity * band:
            return INCONCLUSIVE
        return FAIL

    return oracle


def test_a_thorough_inconclusive_narrows_the_bracket_from_above() -> None:
    trace = search(RATE, borderline_above(100.0, 1.3))
    policy = trace.policy

    undecided = sorted(
        p.load for p in trace.probes if p.thorough and policy.status[p.load] == INCONCLUSIVE
    )
    assert undecided, "the band should catch a bisection step"
    assert policy.borderline() == undecided
    # The bracket's top is the lowest borderline load: it was not shown to pass.
    assert policy.upper() == undecided[0] < (policy.lowest_fail() or 0.0)
    assert_bracketed(trace, 100.0)
    loads = ", ".join(fmt_load(x, "rate") for x in undecided)
    assert trace.finish.message.endswith(f"; INCONCLUSIVE (borderline) at {loads}")
    assert f"not at {fmt_load(undecided[0], 'rate')}" in trace.finish.message


def test_quick_inconclusive_steps_are_not_borderline() -> None:
    policy = SearchPolicy(RATE)
    policy.record(10.0, INCONCLUSIVE, thorough=False)
    policy.record(20.0, INCONCLUSIVE, thorough=True)

    assert policy.borderline() == [20.0]
    assert policy.upper() == 20.0
    assert policy.capacity() is None


def test_a_thorough_inconclusive_at_the_floor_is_unresolved_not_a_failure() -> None:
    settings = SearchSettings(mode="concurrency", start=4)

    def oracle(probe: Probe) -> str:
        return INCONCLUSIVE if probe.load == 1.0 else FAIL

    trace = search(settings, oracle)

    assert trace.loads() == [4.0, 2.0, 1.0, 1.0]
    assert trace.probes[-1] == Probe(1.0, "confirm", thorough=True)
    assert trace.finish.outcome == "unresolved"
    assert "INCONCLUSIVE at 1 users" in trace.finish.message


def test_a_tiny_factor_still_moves_on_every_step() -> None:
    # 10 * 1.004 rounds back to 10 at 3 significant digits: the step must keep more.
    up = search(SearchSettings(mode="rate", start=10.0, factor=1.004), passes_up_to(10.1))
    down = search(SearchSettings(mode="rate", start=10.0, factor=1.004), passes_up_to(9.9))

    for trace, capacity in ((up, 10.1), (down, 9.9)):
        assert_well_formed(trace)
        assert_bracketed(trace, capacity)
    assert up.loads("widen")[:3] == [10.0, 10.04, 10.1]  # fewest digits that move on
    assert down.loads("descend")[:2] == [9.96, 9.92]


# --- concurrency mode ---------------------------------------------------------------------

USERS = SearchSettings(mode="concurrency", start=4, precision=PRECISION)


@pytest.mark.parametrize("capacity", [1, 2, 3, 5, 7, 8, 10, 13, 19, 37, 100, 250, 1001])
def test_concurrency_search_uses_whole_users(capacity: int) -> None:
    trace = search(USERS, passes_up_to(capacity))

    assert_bracketed(trace, capacity)
    assert_well_formed(trace)
    assert all(p.load == int(p.load) and p.load >= 1 for p in trace.probes)
    if capacity < 20:  # 1 user is more than 5%: only a gap of one user ends the search
        assert trace.policy.capacity() == capacity
        assert trace.policy.upper() == capacity + 1


@pytest.mark.parametrize("capacity", [3, 13, 37, 100, 250])
def test_concurrency_bisection_ends_when_the_bracket_is_one_user(capacity: int) -> None:
    settings = SearchSettings(mode="concurrency", start=4, precision=1e-6)
    trace = search(settings, passes_up_to(capacity))

    assert trace.policy.capacity() == capacity
    assert trace.policy.upper() == capacity + 1
    assert trace.finish.outcome == "found"
    # Whole users: the middle of a bracket two users wide is the one user between them.
    assert all(p.load == int(p.load) for p in trace.probes)
    assert_well_formed(trace)


@pytest.mark.parametrize("capacity", [40, 100, 1001])
def test_concurrency_search_beats_a_linear_grid(capacity: int) -> None:
    trace = search(USERS, passes_up_to(capacity))

    assert len(trace.probes) < LINEAR_GRID_STEPS


def test_concurrency_fails_at_one_user() -> None:
    trace = search(USERS, passes_up_to(0))

    assert trace.loads() == [4.0, 2.0, 1.0]
    assert trace.finish.outcome == "sla_fails_at_min"
    assert "1 users" in trace.finish.message


def test_a_small_factor_still_adds_a_user_per_step() -> None:
    settings = SearchSettings(mode="concurrency", start=1, factor=1.2)
    trace = search(settings, passes_up_to(6))

    assert trace.loads("widen") == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert_bracketed(trace, 6)


def test_concurrency_maximum_caps_the_widening() -> None:
    settings = SearchSettings(mode="concurrency", start=3, maximum=10)
    trace = search(settings, passes_up_to(1000))

    assert trace.loads() == [3.0, 6.0, 10.0]
    assert trace.finish.outcome == "sla_holds_at_max"
    assert "10 users" in trace.finish.message


# --- settings and rounding ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "kwargs", "fragment"),
    [
        ("rate", {"start": 0.0}, "start 0.0 must be > 0"),
        ("rate", {"start": -1.0}, "must be > 0"),
        ("rate", {"start": math.nan}, "must be > 0"),
        ("rate", {"start": math.inf}, "must be > 0"),
        ("rate", {"start": 1.0, "factor": 1.0}, "factor 1.0 must be > 1"),
        ("rate", {"start": 1.0, "factor": math.inf}, "factor inf must be > 1"),
        ("rate", {"start": 1.0, "precision": 0.0}, "precision 0.0 must be > 0 (e.g. 0.05"),
        ("rate", {"start": 1.0, "precision": math.nan}, "precision nan must be > 0"),
        ("rate", {"start": 5.0, "maximum": 4.0}, "maximum 4.0 must be >= the start 5.0"),
        ("rate", {"start": 5.0, "maximum": math.nan}, "maximum nan must be >= the start"),
        ("concurrency", {"start": 2.5}, "whole number"),
        ("concurrency", {"start": 2, "maximum": 10.5}, "maximum 10.5 must be a whole number"),
        ("concurrency", {"start": 2, "minimum": 1.5}, "minimum 1.5 must be a whole number"),
    ],
)
def test_settings_reject_bad_values_in_one_line(
    mode: Mode, kwargs: dict[str, float], fragment: str
) -> None:
    with pytest.raises(ValueError) as info:
        SearchSettings(mode=mode, **kwargs)

    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_settings_defaults_and_floor() -> None:
    assert SearchSettings(mode="rate", start=64.0).floor == 1.0
    assert SearchSettings(mode="rate", start=64.0, factor=4.0).floor == 64.0 / 4**6
    assert SearchSettings(mode="concurrency", start=8).floor == 1.0
    assert SearchSettings(mode="concurrency", start=8, minimum=2).floor == 2.0
    assert SearchSettings(mode="concurrency", start=8).maximum == math.inf


@pytest.mark.parametrize(
    ("x", "digits", "expected"),
    [
        (1234.5, 3, 1230.0),
        (0.0012345, 3, 0.00123),
        (98765.0, 2, 99000.0),
        (-2.71828, 3, -2.72),
        (0.0, 3, 0.0),
        (math.inf, 3, math.inf),
    ],
)
def test_round_sig(x: float, digits: int, expected: float) -> None:
    assert round_sig(x, digits) == expected


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (80.0, 160.0, 113.0),  # 3 digits fit
        (1.0, 1.001, 1.0005),  # needs 5
        (10.0, 10.0001, 10.00005),  # needs 7
        (99.5, 100.5, 100.0),
    ],
)
def test_round_between_keeps_the_fewest_digits_that_fit(
    lo: float, hi: float, expected: float
) -> None:
    assert round_between(math.sqrt(lo * hi), lo, hi) == expected


def test_round_between_stays_strictly_inside_the_interval() -> None:
    rng = np.random.default_rng(11)
    for _ in range(2000):
        lo = float(10 ** rng.uniform(-3, 5))
        hi = lo * (1 + float(10 ** rng.uniform(-9, 0)))
        x = math.sqrt(lo * hi)

        y = round_between(x, lo, hi)

        assert lo < y < hi, (lo, hi, y)
        assert abs(y - x) <= hi - lo


def test_fmt_load() -> None:
    assert fmt_load(12.5, "rate") == "12.5 req/s"
    assert fmt_load(1280.0, "rate") == "1280 req/s"
    assert fmt_load(8.0, "concurrency") == "8 users"
