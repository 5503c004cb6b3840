from __future__ import annotations

import pytest

from dashboards.levels import Level, constant_users, load_levels
from loadtests.workloads.shapes import parse_shape

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
def test_levels_are_the_stages_the_load_generator_wrote(shape: str) -> None:
    # loadtests writes load_profile.stages from its parsed shape; dashboards reads them back.
    stages = [list(stage) for stage in parse_shape(shape).levels()]
    expected = [tuple(stage) for stage in parse_shape(shape).levels()]
    assert [tuple(level) for level in load_levels({"shape": shape, "stages": stages})] == expected


def test_neighbouring_stages_with_the_same_users_merge() -> None:
    profile = {"stages": [[0, 5, 3], [5, 9, 3], [9, 12, 6], [12, 12, 9]]}
    assert load_levels(profile) == (Level(0.0, 9.0, 3), Level(9.0, 12.0, 6))


@pytest.mark.parametrize(
    "profile",
    [{}, {"shape": "steps:users=1,2,step=1s"}, {"stages": None}, {"stages": [[0, "x", 1]]}],
)
def test_no_or_malformed_stages_give_no_levels(profile: dict[str, object]) -> None:
    assert load_levels(profile) == ()


def test_constant_users_only_for_a_closed_loop_run() -> None:
    assert constant_users({"mode": "closed", "users": 16}) == 16
    assert constant_users({"mode": "open", "users": 16}) is None
    assert constant_users({"mode": "closed", "users": None}) is None
    assert constant_users({"users": True}) is None
