from __future__ import annotations

import pytest

from dashboards.levels import Level, constant_users, load_levels
from loadtests.shape_specs import parse_shape

SHAPES = (
    "steps:users=4,8,16,step=30s",
    "steps:users=1,1,2,step=1m,rate=3",
    "ramp:from=1,to=64,over=2m,hold=30s",
    "ramp:from=10,to=2,over=45s",
    "ramp:from=5,to=5,over=10s",
    "spike:base=8,peak=64,at=60s,for=15s,total=3m",
    "spike:base=2,peak=6,at=0,for=1h30m,total=2h",
)


@pytest.mark.parametrize("shape", SHAPES)
def test_levels_are_the_load_generators_stages(shape: str) -> None:
    # dashboards may not import loadtests, so it reads the shape text itself; this pins the
    # two readings together.
    expected = [tuple(stage) for stage in parse_shape(shape).levels()]
    assert [tuple(level) for level in load_levels({"shape": shape})] == expected


def test_explicit_stages_win_over_the_shape_text() -> None:
    profile = {"shape": "steps:users=1,2,step=1s", "stages": [[0, 5, 3], [5, 9, 3], [9, 12, 6]]}
    assert load_levels(profile) == (Level(0.0, 9.0, 3), Level(9.0, 12.0, 6))


@pytest.mark.parametrize(
    "profile",
    [{}, {"shape": None}, {"shape": "zigzag:users=3"}, {"shape": "steps:users=x,step=1s"}],
)
def test_no_or_unreadable_shape_gives_no_levels(profile: dict[str, object]) -> None:
    assert load_levels(profile) == ()


def test_constant_users_only_for_a_closed_loop_run() -> None:
    assert constant_users({"mode": "closed", "users": 16}) == 16
    assert constant_users({"mode": "open", "users": 16}) is None
    assert constant_users({"mode": "closed", "users": None}) is None
    assert constant_users({"users": True}) is None
