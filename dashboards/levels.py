"""The load levels of a run, read from run.json's ``load_profile``.

A closed-loop shape (``--shape``) is a piecewise-constant number of users over the run; the
load generator writes its stages as ``load_profile.stages``, a list of ``[start_s, end_s,
users]`` counted from the run start. Without stages, a closed-loop run holds
``load_profile.users`` throughout. Malformed stages give no levels, so a figure is skipped
rather than wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple


class Level(NamedTuple):
    """``users`` from ``start_s`` (inclusive) to ``end_s`` (exclusive), since the run start."""

    start_s: float
    end_s: float
    users: int


def load_levels(profile: Mapping[str, Any]) -> tuple[Level, ...]:
    """The stages of a shaped run; ``()`` when the run has none (or they are malformed)."""
    stages = profile.get("stages")
    if not isinstance(stages, list) or not stages:
        return ()
    try:
        return _merge([Level(float(a), float(b), int(u)) for a, b, u in stages])
    except (TypeError, ValueError):
        return ()


def constant_users(profile: Mapping[str, Any]) -> int | None:
    """The fixed user count of an unshaped closed-loop run, else None."""
    users = profile.get("users")
    if profile.get("mode", "closed") != "closed" or isinstance(users, bool):
        return None
    return users if isinstance(users, int) and users > 0 else None


def _merge(levels: list[Level]) -> tuple[Level, ...]:
    """Drop empty stages and join neighbours with the same user count."""
    merged: list[Level] = []
    for level in levels:
        if level.end_s <= level.start_s:
            continue
        if merged and merged[-1].users == level.users:
            merged[-1] = merged[-1]._replace(end_s=level.end_s)
        else:
            merged.append(level)
    return tuple(merged)
