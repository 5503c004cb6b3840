"""Fault injection: added latency, error rate, periodic stalls, slow start, and a fixed
service capacity.

The injector is the one mutable piece of configuration: the admin endpoint swaps its
``FaultConfig`` at run time. Everything reads it through the methods below.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reference_server.config import FaultConfig
from reference_server.errors import Overloaded

LATENCY_FORMS = "fixed:MS, uniform:LO,HI, normal:MEAN,STD, lognormal:MEDIAN,SIGMA or exp:MEAN"
MAX_LATENCY_MS = 3_600_000.0  # an hour: any longer is a typo, and sleeps must stay finite
MAX_LOGNORMAL_SIGMA = 10.0  # exp(sigma * z) overflows a float for large sigma


def parse_latency(spec: str) -> Callable[[random.Random], float]:
    """Parse a latency distribution (milliseconds); return a sampler of seconds."""
    kind, _, args = spec.partition(":")
    try:
        values = [float(a) for a in args.split(",")] if args else []
    except ValueError:
        raise ValueError(f"latency {spec!r}: numbers expected; use {LATENCY_FORMS}") from None
    arity = {"fixed": 1, "uniform": 2, "normal": 2, "lognormal": 2, "exp": 1}
    if arity.get(kind) != len(values) or any(
        not math.isfinite(v) or not 0 <= v <= MAX_LATENCY_MS for v in values
    ):
        raise ValueError(
            f"latency {spec!r} is not valid; use {LATENCY_FORMS} (ms from 0 to {MAX_LATENCY_MS:g})"
        )
    a, b = [*values, 0.0][:2]
    if kind == "lognormal" and b > MAX_LOGNORMAL_SIGMA:
        raise ValueError(f"latency {spec!r}: SIGMA must be at most {MAX_LOGNORMAL_SIGMA:g}")
    samplers: dict[str, Callable[[random.Random], float]] = {
        "fixed": lambda r: a,
        "uniform": lambda r: r.uniform(a, b),
        "normal": lambda r: max(0.0, r.gauss(a, b)),
        "lognormal": lambda r: r.lognormvariate(0.0, b) * a,
        "exp": lambda r: r.expovariate(1.0 / a) if a > 0 else 0.0,
    }
    pick = samplers[kind]
    return lambda r: min(pick(r), MAX_LATENCY_MS) / 1000.0


def validate(config: FaultConfig) -> FaultConfig:
    if config.latency:
        parse_latency(config.latency)
    if not 0.0 <= config.error_rate <= 1.0:
        raise ValueError(f"error_rate {config.error_rate} must be between 0 and 1")
    for name in (
        "stall_every_s",
        "stall_duration_s",
        "slow_start_s",
        "token_delay_ms",
        "capacity_rps",
    ):
        value = getattr(config, name)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0")
    if config.stall_duration_s and config.stall_duration_s >= config.stall_every_s:
        raise ValueError("stall_duration_s must be shorter than stall_every_s")
    return config


def from_mapping(base: FaultConfig, changes: dict[str, Any]) -> FaultConfig:
    """Apply a JSON object of changes to ``base``; ValueError names a bad field."""
    fields = {f.name: f for f in dataclasses.fields(FaultConfig)}
    clean: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in fields:
            raise ValueError(f"unknown fault {key!r}; known: {', '.join(sorted(fields))}")
        if key == "latency":
            if value is not None and not isinstance(value, str):
                raise ValueError("latency must be a string such as 'fixed:50' or null")
        elif key == "seed":
            whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
            if isinstance(value, bool) or not whole:  # 3.0 is fine; Infinity and 3.5 are not
                raise ValueError("seed must be a whole number")
            value = int(value)
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key} must be a number")
        elif not math.isfinite(value):
            raise ValueError(f"{key} must be a finite number >= 0")
        clean[key] = value
    return validate(dataclasses.replace(base, **clean))


@dataclass(frozen=True, slots=True)
class CapacitySlot:
    """A request's place in the simulated single-server queue of ``capacity_rps``."""

    queued_s: float  # waiting for the slots booked before it
    service_s: float  # its own slot, 1 / capacity_rps

    @property
    def wait_s(self) -> float:
        return self.queued_s + self.service_s


class CapacityGate:
    """A single-server FIFO queue with a deterministic service time (D/D/1 under constant
    arrivals): a request arriving at ``now`` gets the slot ``[start, start + service_s)``
    with ``start = max(now, end of the last booked slot)``. O(1) per request.

    A booked slot is never given back, not even when its client goes away: the server
    then completes exactly one request per ``service_s`` while busy, never more.
    """

    __slots__ = ("_free_at",)

    def __init__(self) -> None:
        self._free_at = -math.inf  # end of the last booked slot

    def predict(self, now: float, service_s: float) -> CapacitySlot:
        return CapacitySlot(max(0.0, self._free_at - now), service_s)

    def book(self, now: float, service_s: float) -> CapacitySlot:
        slot = self.predict(now, service_s)
        self._free_at = now + slot.wait_s
        return slot


class FaultInjector:
    def __init__(self, config: FaultConfig, *, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self.started_at = clock()
        # Outlives config swaps: a backlog booked under the old capacity still has to drain.
        self._gate = CapacityGate()
        self.config = validate(config)

    @property
    def config(self) -> FaultConfig:
        return self._config

    @config.setter
    def config(self, config: FaultConfig) -> None:
        self._config = config
        self._rng = random.Random(config.seed)
        self._latency = parse_latency(config.latency) if config.latency else None

    def starting(self) -> bool:
        return self._clock() - self.started_at < self._config.slow_start_s

    def should_fail(self) -> bool:
        return self._config.error_rate > 0 and self._rng.random() < self._config.error_rate

    def book_capacity(self, max_wait_s: float) -> CapacitySlot | None:
        """Book this request's slot under ``capacity_rps``; None when that fault is off.

        Raises Overloaded, booking nothing, when the wait would exceed ``max_wait_s`` (the
        request timeout): the simulated queue is bounded like the real ones.
        """
        rps = self._config.capacity_rps
        if rps <= 0:
            return None
        now, service_s = self._clock(), 1.0 / rps
        predicted = self._gate.predict(now, service_s)
        if predicted.wait_s > max_wait_s:
            raise Overloaded(
                f"simulated capacity of {rps:g} requests/s is saturated: this request would "
                f"wait {predicted.wait_s:.3g}s, over the {max_wait_s:g}s request timeout; "
                "retry later"
            )
        return self._gate.book(now, service_s)

    def added_latency_s(self) -> float:
        return self._latency(self._rng) if self._latency else 0.0

    def stall_remaining_s(self) -> float:
        every, duration = self._config.stall_every_s, self._config.stall_duration_s
        if not every or not duration:
            return 0.0
        phase = (self._clock() - self.started_at) % every
        # The stall sits at the end of each period so that a server is healthy at start-up.
        if phase < every - duration:
            return 0.0
        return every - phase

    async def wait_if_stalled(self) -> None:
        remaining = self.stall_remaining_s()
        if remaining > 0:
            await asyncio.sleep(remaining)

    async def token_delay(self) -> None:
        if self._config.token_delay_ms > 0:
            await asyncio.sleep(self._config.token_delay_ms / 1000.0)
