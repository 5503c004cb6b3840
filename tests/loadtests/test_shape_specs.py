from __future__ import annotations

import pytest

from loadtests.errors import LoadSpecError
from loadtests.workloads.shapes import ShapeSpec, Stage, parse_duration_s, parse_shape, run_time_s


def _users(shape: ShapeSpec, *times_s: float) -> list[int | None]:
    return [None if (load := shape.at(t)) is None else load[0] for t in times_s]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("2m", 120.0),
        ("1h30m", 5400.0),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        ("1.5m", 90.0),
        ("45", 45.0),
        ("0.25", 0.25),
        (" 10s ", 10.0),
        ("2h0m5s", 7205.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "abc", "1x", "30m1h", "nan", "inf", "1 m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration_s(text)


def test_steps_hold_each_count_then_stop() -> None:
    shape: ShapeSpec = parse_shape("steps:users=4,8,16,step=30s")
    assert shape.total_duration_s == 90.0
    assert _users(shape, 0, 29.999, 30, 59.9, 60, 89.999, 90, 500) == [
        4,
        4,
        8,
        8,
        16,
        16,
        None,
        None,
    ]
    assert shape.at(45) == (8, 8.0)  # default rate: the largest jump, 8 -> 16
    assert shape.levels() == (Stage(0, 30, 4), Stage(30, 60, 8), Stage(60, 90, 16))


def test_steps_with_an_explicit_rate_and_repeated_counts() -> None:
    shape = parse_shape("steps: users = 2, 2, 6, step = 1m, rate = 2.5")
    assert shape.at(0) == (2, 2.5)
    assert shape.levels() == (Stage(0, 120, 2), Stage(120, 180, 6))
    assert shape.total_duration_s == 180.0


def test_steps_default_rate_counts_the_first_jump_from_zero() -> None:
    assert parse_shape("steps:users=50,60,step=10").at(0) == (50, 50.0)
    assert parse_shape("steps:users=1,step=10").at(0) == (1, 1.0)


def test_ramp_rises_linearly_then_holds() -> None:
    shape = parse_shape("ramp:from=1,to=64,over=2m,hold=30s")
    assert shape.total_duration_s == 150.0
    assert _users(shape, 0, 60, 119.999, 120, 149.9, 150) == [1, 33, 64, 64, 64, None]
    # Users at t round the line from + (to - from) * t / over.
    for t in range(0, 120, 7):
        assert _users(shape, t) == [round(1 + 63 * t / 120 + 1e-9)]
    assert shape.at(10) == (6, 1.0)  # 63 users over 120 s: one user at a time suffices


def test_ramp_levels_are_one_stage_per_user_count() -> None:
    shape = parse_shape("ramp:from=2,to=6,over=8s")
    assert shape.levels() == (
        Stage(0, 1, 2),
        Stage(1, 3, 3),
        Stage(3, 5, 4),
        Stage(5, 7, 5),
        Stage(7, 8, 6),
    )
    for stage in shape.levels():
        assert _users(shape, stage.start_s, (stage.start_s + stage.end_s) / 2) == [stage.users] * 2
    assert shape.at(8) is None


def test_steep_ramp_default_rate_keeps_up_with_its_slope() -> None:
    shape = parse_shape("ramp:from=0,to=1000,over=10s")
    assert shape.at(5) == (500, 100.0)
    assert len(shape.levels()) == 1001


def test_ramp_down_and_flat_ramp() -> None:
    down = parse_shape("ramp:from=10,to=2,over=4")
    assert _users(down, 0, 2, 3.9, 4) == [10, 6, 2, None]
    assert down.at(0) == (10, 10.0)
    flat = parse_shape("ramp:from=5,to=5,over=1m,hold=1m")
    assert flat.levels() == (Stage(0, 120, 5),)


def test_spike_goes_from_base_to_peak_and_back() -> None:
    shape = parse_shape("spike:base=8,peak=64,at=60s,for=15s,total=3m")
    assert shape.total_duration_s == 180.0
    assert _users(shape, 0, 59.9, 60, 74.9, 75, 179.9, 180) == [8, 8, 64, 64, 8, 8, None]
    assert shape.at(60) == (64, 56.0)
    assert shape.levels() == (Stage(0, 60, 8), Stage(60, 75, 64), Stage(75, 180, 8))


def test_spike_at_the_edges_drops_empty_stages() -> None:
    shape = parse_shape("spike:base=0,peak=10,at=0,for=30s,total=30s,rate=5")
    assert shape.levels() == (Stage(0, 30, 10),)
    assert shape.at(0) == (10, 5.0)


def test_negative_run_time_reads_as_the_start() -> None:
    assert parse_shape("steps:users=3,step=1").at(-0.5) == (3, 3.0)


FORMS = "use steps:users=4,8,16,step=30s[,rate=N] | ramp:from=1,to=64,over=2m"


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("", "unknown shape ''"),
        ("stairs:users=1,step=1", "unknown shape 'stairs'"),
        ("steps", "options must follow 'steps:'"),
        ("steps:users=4,8", "missing step"),
        ("steps:users=4,step=30s,hold=3", "unknown option hold"),
        ("steps:users=4,step=30s,step=1m", "option 'step' is empty or repeated"),
        ("steps:users=4,,step=1", "expected key=value, got ''"),
        ("steps:4,step=1", "expected key=value, got '4'"),
        ("steps:users=0,4,step=1", "users must be >= 1"),
        ("steps:users=4,x,step=1", "users must be whole numbers of users"),
        ("steps:users=4,step=0s", "step must be > 0"),
        ("steps:users=4,step=soon", "step is not a duration"),
        ("steps:users=4,step=1,rate=0", "rate must be a number of users/s > 0"),
        ("steps:users=4,step=1,rate=fast", "rate must be a number of users/s > 0"),
        ("ramp:from=1,to=64", "missing over"),
        ("ramp:from=1,2,to=64,over=1m", "from takes one value"),
        ("ramp:from=1,to=0,over=1m", "to must be >= 1"),
        ("ramp:from=-1,to=5,over=1m", "from must be >= 0"),
        ("ramp:from=1,to=5,over=1m,hold=-1", "hold must be >= 0"),
        ("spike:base=8,peak=64,at=60s,for=15s", "missing total"),
        (
            "spike:base=8,peak=64,at=60s,for=15s,total=1m",
            "the spike must end by total (at + for <= total)",
        ),
        ("spike:base=8,peak=64,at=0,for=0,total=1m", "for must be > 0"),
    ],
)
def test_bad_specs_are_one_line_errors_listing_the_forms(spec: str, why: str) -> None:
    with pytest.raises(LoadSpecError) as caught:
        parse_shape(spec)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"bad load shape {spec.strip()!r}: {why}; {FORMS}")
    assert "spike:base=8,peak=64,at=60s,for=15s,total=3m" in message


def test_a_shape_counts_from_the_runs_start_not_from_locusts_first_tick() -> None:
    """``ConfiguredShape.tick`` is ``spec.at(run_time_s(now, started_at, reset_at))``:
    Locust's first tick (which starts the test) comes before the run's start work; the
    stages count from the run's started_at."""
    shape = parse_shape("steps:users=1,2,step=2s")
    reset_at = 1000.0  # the shape was (re)set when this test began

    def users(at: float, started_at: float | None) -> int | None:
        load = shape.at(run_time_s(at, started_at, reset_at))
        return None if load is None else load[0]

    assert users(1000.5, None) == 1  # the run has not begun: the first stage
    assert users(1009.0, 900.0) == 1  # an earlier test's start: not this run's
    assert users(1002.5, 1000.8) == 1  # 1.7 s into the run, 2.5 s after Locust's zero
    assert users(1003.0, 1000.8) == 2
    assert users(1004.7, 1000.8) == 2
    assert users(1004.9, 1000.8) is None  # 4.1 s in: over
