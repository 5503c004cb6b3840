"""Open-loop send schedules: when each request is due, independent of when others finish.

    spec = parse_arrival("gamma", rate_rps=20.0, burstiness=0.5, seed=7)
    mine = for_worker(spec, index=worker_index, count=worker_count)
    for offset_s in send_offsets(mine):
        ...  # send at t0 + offset_s (t0 shared by all workers), late or not

Kinds, each with mean rate `rate_rps`:
- ``constant``: offsets ``start_s + k / rate_rps`` exactly, k = 0, 1, ...: computed per k,
  never summed, so the millionth send has no accumulated float drift.
- ``poisson``: exponential gaps; the first send comes one gap after t0.
- ``gamma``: gaps ~ Gamma(shape=burstiness, scale=1 / (rate_rps * burstiness)), the vLLM
  convention: the mean rate is `rate_rps` for every burstiness, the gaps' coefficient of
  variation is 1/sqrt(burstiness); 1 is Poisson, below 1 burstier, above 1 more regular.

Splitting across workers: `for_worker` gives each of `count` workers `rate_rps / count`.
Constant workers are phase-shifted (worker i starts at i / total rate), so their merged
schedule is as evenly spaced as one worker's would be. Random workers get distinct seeds
(``seed * count + index``); the superposition of independent Poisson streams is Poisson
at the total rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Literal, cast, get_args

import numpy as np

from loadtests.errors import LoadSpecError

__all__ = ["ArrivalKind", "ArrivalSpec", "for_worker", "parse_arrival", "send_offsets"]

ArrivalKind = Literal["constant", "poisson", "gamma"]
_KINDS: tuple[str, ...] = get_args(ArrivalKind)


@dataclass(frozen=True)
class ArrivalSpec:
    """An open-loop schedule. `start_s` is the first constant-mode send (worker phase)."""

    rate_rps: float
    kind: ArrivalKind
    burstiness: float = 1.0
    seed: int = 0
    start_s: float = 0.0


def parse_arrival(kind: str, rate_rps: float, burstiness: float, seed: int) -> ArrivalSpec:
    """Validates user-given arrival options; raises `LoadSpecError` with a one-line fix."""
    if kind not in _KINDS:
        raise LoadSpecError(f"unknown arrival kind {kind!r}; use one of {', '.join(_KINDS)}")
    if not (math.isfinite(rate_rps) and rate_rps > 0):
        raise LoadSpecError(f"arrival rate must be a number > 0 requests/s, got {rate_rps}")
    if not (math.isfinite(burstiness) and burstiness > 0):
        raise LoadSpecError(f"burstiness must be > 0 (1 = Poisson, < 1 burstier), got {burstiness}")
    if kind != "gamma" and burstiness != 1.0:
        raise LoadSpecError(
            f"burstiness {burstiness} only applies to gamma arrivals; use kind gamma or leave it 1"
        )
    if seed < 0:
        raise LoadSpecError(f"arrival seed must be >= 0, got {seed}")
    return ArrivalSpec(rate_rps, cast(ArrivalKind, kind), burstiness, seed)


def for_worker(spec: ArrivalSpec, index: int, count: int) -> ArrivalSpec:
    """Worker `index` of `count`'s share: the rate split evenly, its own phase and seed."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"for_worker needs 0 <= index < count, got index={index}, count={count}")
    if count == 1:
        return spec
    start_s = spec.start_s + index / spec.rate_rps if spec.kind == "constant" else spec.start_s
    return replace(
        spec, rate_rps=spec.rate_rps / count, seed=spec.seed * count + index, start_s=start_s
    )


def send_offsets(spec: ArrivalSpec, block: int = 4096) -> Iterator[float]:
    """Endless, nondecreasing send offsets in seconds from t0, made `block` at a time."""
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    if spec.kind == "constant":
        return _constant(spec, block)
    return _random(spec, block)


def _constant(spec: ArrivalSpec, block: int) -> Iterator[float]:
    first = 0
    while True:
        k = np.arange(first, first + block, dtype=np.float64)
        yield from (spec.start_s + k / spec.rate_rps).tolist()
        first += block


def _random(spec: ArrivalSpec, block: int) -> Iterator[float]:
    rng = np.random.default_rng(spec.seed)
    shape = spec.burstiness if spec.kind == "gamma" else 1.0
    scale = 1.0 / (spec.rate_rps * shape)
    last_s = spec.start_s
    while True:
        # Gamma with shape 1 is the exponential: one code path for both kinds.
        offsets = last_s + np.cumsum(rng.gamma(shape, scale, size=block))
        last_s = float(offsets[-1])
        yield from offsets.tolist()
