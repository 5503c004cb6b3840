"""The load levels of a run, read from run.json's ``load_profile``.

A closed-loop shape (``load_profile.shape``, the ``--shape`` text) is a piecewise-constant
number of users over the run: ``steps:users=4,8,16,step=30s``, ``ramp:from=1,to=64,over=2m
[,hold=30s]``, ``spike:base=8,peak=64,at=60s,for=15s,total=3m``. A ``load_profile.stages``
list of ``[start_s, end_s, users]`` is used as-is when present. Stage times count from the
run start. Without a shape, a closed-loop run holds ``load_profile.users`` throughout.

This mirrors ``loadtests.shape_specs`` (which ``dashboards`` may not import: it sits above
us in the layering) for the three forms, the rounding of a ramp included; a text it cannot
read gives no levels, so a figure is skipped rather than wrong.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

_NUM = r"(\d+(?:\.\d*)?|\.\d+)"
_DURATION = re.compile(rf"(?:{_NUM}h)?(?:{_NUM}m)?(?:{_NUM}s)?")


class Level(NamedTuple):
    """``users`` from ``start_s`` (inclusive) to ``end_s`` (exclusive), since the run start."""

    start_s: float
    end_s: float
    users: int


def load_levels(profile: Mapping[str, Any]) -> tuple[Level, ...]:
    """The stages of a shaped run; ``()`` when the run has no shape (or one we cannot read)."""
    stages = profile.get("stages")
    if isinstance(stages, list) and stages:
        try:
            return _merge([Level(float(a), float(b), int(u)) for a, b, u in stages])
        except (TypeError, ValueError):
            return ()
    shape = profile.get("shape")
    if not isinstance(shape, str) or not shape.strip():
        return ()
    try:
        return _merge(_parse(shape))
    except (KeyError, IndexError, ValueError, ZeroDivisionError):
        return ()


def constant_users(profile: Mapping[str, Any]) -> int | None:
    """The fixed user count of an unshaped closed-loop run, else None."""
    users = profile.get("users")
    if profile.get("mode", "closed") != "closed" or isinstance(users, bool):
        return None
    return users if isinstance(users, int) and users > 0 else None


def _parse(spec: str) -> list[Level]:
    kind, _, args = spec.strip().partition(":")
    opts = _options(args)
    kind = kind.strip()
    if kind == "steps":
        step_s = _seconds(opts["step"][0])
        users = [int(u) for u in opts["users"]]
        return [Level(i * step_s, (i + 1) * step_s, u) for i, u in enumerate(users)]
    if kind == "ramp":
        return _ramp(opts)
    if kind == "spike":
        base, peak = int(opts["base"][0]), int(opts["peak"][0])
        at_s, for_s = _seconds(opts["at"][0]), _seconds(opts["for"][0])
        total_s = _seconds(opts["total"][0])
        return [
            Level(0.0, at_s, base),
            Level(at_s, at_s + for_s, peak),
            Level(at_s + for_s, total_s, base),
        ]
    raise ValueError(f"unknown shape {kind!r}")


def _ramp(opts: dict[str, list[str]]) -> list[Level]:
    first, last = int(opts["from"][0]), int(opts["to"][0])
    over_s = _seconds(opts["over"][0])
    hold_s = _seconds(opts["hold"][0]) if "hold" in opts else 0.0
    span = abs(last - first)
    sign = 1 if last >= first else -1
    if span == 0:
        return [Level(0.0, over_s + hold_s, first)]
    # The staircase that rounds the line: stage k spans [(k - 0.5), (k + 0.5)) * over / span.
    levels = [
        Level(
            max(0.0, (k - 0.5) * over_s / span),
            min(over_s, (k + 0.5) * over_s / span),
            first + sign * k,
        )
        for k in range(span + 1)
    ]
    levels[-1] = levels[-1]._replace(end_s=over_s + hold_s)
    return levels


def _options(args: str) -> dict[str, list[str]]:
    # Commas separate options and the values of a list (users=4,8,16).
    values: dict[str, list[str]] = {}
    key = None
    for part in (p.strip() for p in args.split(",")):
        name, eq, value = part.partition("=")
        if eq:
            key = name.strip()
            values[key] = [value.strip()]
        elif key is not None and part:
            values[key].append(part)
    return values


def _seconds(text: str) -> float:
    match = _DURATION.fullmatch(text.strip())
    if match and any(match.groups()):
        h, m, s = (float(g) if g else 0.0 for g in match.groups())
        return h * 3600 + m * 60 + s
    seconds = float(text)
    if not math.isfinite(seconds):
        raise ValueError(f"not a finite duration: {text!r}")
    return seconds


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
