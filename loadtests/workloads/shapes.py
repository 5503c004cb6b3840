"""Closed-loop load shapes: how many users to run at each moment of a run, and when to stop.

    shape = parse_shape("steps:users=4,8,16,step=30s")
    shape.at(45.0)            # (8, 8.0): 8 users, spawned at 8 users/s
    shape.at(90.0)            # None: the run is over
    shape.total_duration_s    # 90.0
    shape.levels()            # (Stage(0.0, 30.0, 4), Stage(30.0, 60.0, 8), Stage(60.0, 90.0, 16))

Forms (durations: ``30s``, ``2m``, ``1h30m``, ``1.5m``; a plain number is seconds):
- ``steps:users=4,8,16,step=30s[,rate=N]``: hold each user count for `step`, then stop.
- ``ramp:from=1,to=64,over=2m[,hold=30s][,rate=N]``: users change linearly from `from` to
  `to` over `over` (rounded to whole users), then stay at `to` for `hold`, then stop.
- ``spike:base=8,peak=64,at=60s,for=15s,total=3m[,rate=N]``: `base` users, `peak` users from
  `at` for `for` seconds, `base` again, stop at `total`.

`rate` is the spawn rate in users/s handed to Locust with each user count. By default it is
the largest jump in users between stages (the first counted from 0 users) or, for a ramp,
its slope in users/s rounded up if that is larger: each change completes within about a
second, so every stage runs at its stated load.
A ramp is a staircase of one-user stages, and `levels()` lists them (one per user count),
ready to be plotted as latency against load.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import NamedTuple, NoReturn, Protocol

from loadtests.errors import LoadSpecError

__all__ = ["ShapeSpec", "Stage", "StagedShape", "parse_duration_s", "parse_shape"]

FORMS = (
    "steps:users=4,8,16,step=30s[,rate=N] | ramp:from=1,to=64,over=2m[,hold=30s][,rate=N]"
    " | spike:base=8,peak=64,at=60s,for=15s,total=3m[,rate=N]"
    " (durations like 30s, 2m, 1h30m, or seconds)"
)
_NUM = r"(\d+(?:\.\d*)?|\.\d+)"
_DURATION = re.compile(rf"(?:{_NUM}h)?(?:{_NUM}m)?(?:{_NUM}s)?")


class Stage(NamedTuple):
    """A stretch of constant load: `users` from `start_s` (inclusive) to `end_s` (exclusive)."""

    start_s: float
    end_s: float
    users: int


class ShapeSpec(Protocol):
    """What a Locust `LoadTestShape` needs: the load at a run time, and the plan as a whole."""

    @property
    def total_duration_s(self) -> float: ...

    def at(self, run_time_s: float) -> tuple[int, float] | None:
        """(users, spawn rate in users/s) at `run_time_s`, or None when the run should stop."""
        ...

    def levels(self) -> tuple[Stage, ...]: ...


@dataclass(frozen=True)
class StagedShape:
    """A piecewise-constant load: consecutive, non-empty stages starting at 0."""

    spec: str
    stages: tuple[Stage, ...]
    spawn_rate: float
    _starts: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_starts", tuple(s.start_s for s in self.stages))

    @property
    def total_duration_s(self) -> float:
        return self.stages[-1].end_s

    def at(self, run_time_s: float) -> tuple[int, float] | None:
        if run_time_s >= self.total_duration_s:
            return None
        index = max(bisect.bisect_right(self._starts, run_time_s) - 1, 0)
        return self.stages[index].users, self.spawn_rate

    def levels(self) -> tuple[Stage, ...]:
        return self.stages


def run_time_s(at: float, started_at: float | None, reset_at: float) -> float:
    """How far into its shape a run is at ``at`` (seconds on slabench's clock): from the
    run's ``started_at``, the zero of its records and reports; 0 while it has not begun, or
    when ``started_at`` is an earlier test's (from before the shape was reset at
    ``reset_at``)."""
    if started_at is None or started_at < reset_at:
        return 0.0
    return at - started_at


def parse_shape(spec: str) -> StagedShape:
    """Parses one of the forms in the module docstring; raises `LoadSpecError`."""
    kind, sep, args = spec.strip().partition(":")
    builder = _BUILDERS.get(kind.strip())
    if builder is None:
        _fail(spec, f"unknown shape {kind.strip()!r}")
    if not sep:
        _fail(spec, f"options must follow '{kind.strip()}:'")
    opts = _Options(spec, _options(spec, args))
    stages, slope = builder(opts)
    merged = _merge(stages)
    rate = opts.rate()
    return StagedShape(
        spec.strip(), merged, rate if rate is not None else _default_rate(merged, slope)
    )


def parse_duration_s(text: str) -> float:
    """Seconds in ``30s``, ``2m``, ``1h30m`` or a plain number; raises `ValueError`."""
    text = text.strip()
    match = _DURATION.fullmatch(text)
    if match and any(match.groups()):
        h, m, s = (float(g) if g else 0.0 for g in match.groups())
        return h * 3600 + m * 60 + s
    seconds = float(text)  # a plain number; raises ValueError on anything else
    if not math.isfinite(seconds):
        raise ValueError(f"not a finite duration: {text!r}")
    return seconds


class _Options:
    """The key=value options of one spec, with typed getters that fail as one clear line."""

    def __init__(self, spec: str, values: dict[str, list[str]]) -> None:
        self.spec = spec
        self.values = values

    def known(self, required: set[str], optional: set[str]) -> None:
        keys = set(self.values)
        if missing := sorted(required - keys):
            _fail(self.spec, f"missing {', '.join(missing)}")
        if unknown := sorted(keys - required - optional):
            _fail(self.spec, f"unknown option {', '.join(unknown)}")
        if many := [k for k, v in self.values.items() if len(v) > 1 and k != "users"]:
            _fail(self.spec, f"{many[0]} takes one value")

    def users(self, key: str, minimum: int) -> list[int]:
        try:
            counts = [int(v) for v in self.values[key]]
        except ValueError:
            _fail(self.spec, f"{key} must be whole numbers of users")
        if any(c < minimum for c in counts):
            _fail(self.spec, f"{key} must be >= {minimum}")
        return counts

    def duration_s(self, key: str, *, default: float | None = None, zero_ok: bool = False) -> float:
        if key not in self.values and default is not None:
            return default
        try:
            seconds = parse_duration_s(self.values[key][0])
        except ValueError:
            _fail(self.spec, f"{key} is not a duration")
        if seconds < 0 or (seconds == 0 and not zero_ok):
            _fail(self.spec, f"{key} must be {'>= 0' if zero_ok else '> 0'}")
        return seconds

    def rate(self) -> float | None:
        if "rate" not in self.values:
            return None
        try:
            rate = float(self.values["rate"][0])
        except ValueError:
            rate = math.nan
        if not (math.isfinite(rate) and rate > 0):
            _fail(self.spec, "rate must be a number of users/s > 0")
        return rate


def _options(spec: str, args: str) -> dict[str, list[str]]:
    # Commas separate options and also the values of a list (users=4,8,16): a part without
    # "=" continues the previous option's list.
    values: dict[str, list[str]] = {}
    key = None
    for part in (p.strip() for p in args.split(",")):
        name, eq, value = part.partition("=")
        if eq:
            key = name.strip()
            if not key or key in values:
                _fail(spec, f"option {key!r} is empty or repeated")
            values[key] = [value.strip()]
        elif key is None or not part:
            _fail(spec, f"expected key=value, got {part!r}")
        else:
            values[key].append(part)
    return values


def _steps(opts: _Options) -> tuple[list[Stage], float]:
    opts.known({"users", "step"}, {"rate"})
    users = opts.users("users", 1)
    step_s = opts.duration_s("step")
    return [Stage(i * step_s, (i + 1) * step_s, u) for i, u in enumerate(users)], 0.0


def _ramp(opts: _Options) -> tuple[list[Stage], float]:
    opts.known({"from", "to", "over"}, {"hold", "rate"})
    (first,), (last,) = opts.users("from", 0), opts.users("to", 1)
    over_s, hold_s = opts.duration_s("over"), opts.duration_s("hold", default=0.0, zero_ok=True)
    span = abs(last - first)
    sign = 1 if last >= first else -1
    # Users at t are first + sign * floor(span * t / over + 0.5): the staircase that rounds
    # the line, so stage k spans [(k - 0.5), (k + 0.5)) * over / span, clipped to the ramp.
    stages = [
        Stage(
            max(0.0, (k - 0.5) * over_s / span) if span else 0.0,
            min(over_s, (k + 0.5) * over_s / span) if span else over_s,
            first + sign * k,
        )
        for k in range(span + 1)
    ]
    stages[-1] = stages[-1]._replace(end_s=over_s + hold_s)
    return stages, span / over_s


def _spike(opts: _Options) -> tuple[list[Stage], float]:
    opts.known({"base", "peak", "at", "for", "total"}, {"rate"})
    (base,), (peak,) = opts.users("base", 0), opts.users("peak", 1)
    at_s = opts.duration_s("at", zero_ok=True)
    for_s, total_s = opts.duration_s("for"), opts.duration_s("total")
    if at_s + for_s > total_s:
        _fail(opts.spec, "the spike must end by total (at + for <= total)")
    stages = [Stage(0.0, at_s, base), Stage(at_s, at_s + for_s, peak)]
    return [*stages, Stage(at_s + for_s, total_s, base)], 0.0


_BUILDERS: dict[str, Callable[[_Options], tuple[list[Stage], float]]] = {
    "steps": _steps,
    "ramp": _ramp,
    "spike": _spike,
}


def _merge(stages: list[Stage]) -> tuple[Stage, ...]:
    """Drops empty stages and joins neighbours with the same user count."""
    merged: list[Stage] = []
    for stage in stages:
        if stage.end_s <= stage.start_s:
            continue
        if merged and merged[-1].users == stage.users:
            merged[-1] = merged[-1]._replace(end_s=stage.end_s)
        else:
            merged.append(stage)
    return tuple(merged)


def _default_rate(stages: tuple[Stage, ...], slope: float) -> float:
    users = [0, *(s.users for s in stages)]
    jump = max(abs(b - a) for a, b in pairwise(users))
    return float(max(1, jump, math.ceil(slope)))


def _fail(spec: str, why: str) -> NoReturn:
    raise LoadSpecError(f"bad load shape {spec.strip()!r}: {why}; use {FORMS}")
