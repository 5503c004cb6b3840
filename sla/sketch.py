"""A mergeable, log-bucketed histogram of positive values with a stated relative error
(DDSketch-style): the live figures of a run in bounded memory (pure; the standard library).

A value ``x > 0`` goes to bucket ``i = ceil(log(x) / log(gamma))`` with
``gamma = (1 + a) / (1 - a)``; a bucket stands for ``2 gamma**i / (gamma + 1)``, which is
within ``a`` (relative) of every value in it. So the value the sketch gives for a rank is
within a factor ``1 +- a`` of the exact order statistic of that rank: ``RELATIVE_ERROR``
(1%) for every quantile, however many values it holds. Values at or below ``ZERO_MS`` (and
negative ones, e.g. a schedule lag a hair below zero) count as 0. Memory is one counter per
bucket used: ``ln(10) / ln(gamma)`` = 115 buckets per decade of values at 1%, a few hundred
in all for latencies from 0.1 ms to minutes, whatever the number of values.

Two sketches with the same ``gamma`` merge by adding counts (``merge``), so per-second
sketches add up to any window of seconds, and workers' sketches add up to the run's; a
sliding window takes the second that leaves it out again (``subtract``).

``rank_value(k)`` is the estimate of the k-th smallest value (1-based): ``X(k)`` exactly up
to the factor. ``quantile(q)`` interpolates between the two ranks numpy's linear percentile
uses, so it estimates ``numpy.percentile`` of the same values within ``a``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

__all__ = ["RELATIVE_ERROR", "ZERO_MS", "LogHistogram"]

RELATIVE_ERROR = 0.01
ZERO_MS = 1e-6  # at or below this a value counts as 0 (no latency is this short)


class LogHistogram:
    """Counts of values in logarithmic buckets; ``add``, ``merge``, ``rank_value``."""

    __slots__ = ("_inv_log_gamma", "counts", "gamma", "n", "relative_error", "zeros")

    def __init__(self, relative_error: float = RELATIVE_ERROR) -> None:
        if not 0.0 < relative_error < 1.0:
            raise ValueError(f"relative_error must be in (0, 1), got {relative_error}")
        self.relative_error = relative_error
        self.gamma = (1.0 + relative_error) / (1.0 - relative_error)
        self._inv_log_gamma = 1.0 / math.log(self.gamma)
        self.counts: dict[int, int] = {}
        self.zeros = 0
        self.n = 0

    def add(self, value: float) -> None:
        """Count one value (NaN is ignored: a metric the request does not have)."""
        if value != value:  # NaN
            return
        self.n += 1
        if value <= ZERO_MS:
            self.zeros += 1
            return
        i = math.ceil(math.log(value) * self._inv_log_gamma)
        counts = self.counts
        counts[i] = counts.get(i, 0) + 1

    def add_all(self, values: Iterable[float]) -> None:
        for value in values:
            self.add(value)

    def add_array(self, values: npt.NDArray[np.float64]) -> None:
        """Count many values at once (NaN ignored): the buckets of ``add``, computed with
        numpy, for a fraction of the per-value cost."""
        values = values[~np.isnan(values)]
        positive = values[values > ZERO_MS]
        self.n += len(values)
        self.zeros += len(values) - len(positive)
        if not len(positive):
            return
        buckets = np.ceil(np.log(positive) * self._inv_log_gamma).astype(np.int64)
        found, times = np.unique(buckets, return_counts=True)
        counts = self.counts
        for i, c in zip(found.tolist(), times.tolist(), strict=True):
            counts[i] = counts.get(i, 0) + c

    def merge(self, other: LogHistogram) -> None:
        """Add ``other``'s counts to this one (same relative error)."""
        if other.gamma != self.gamma:
            raise ValueError("only sketches of the same relative error merge")
        counts = self.counts
        for i, c in other.counts.items():
            counts[i] = counts.get(i, 0) + c
        self.zeros += other.zeros
        self.n += other.n

    def subtract(self, other: LogHistogram) -> None:
        """Take ``other``'s counts out of this one; ``other`` must have been merged into it
        (a sliding window drops the second that left it). Nothing changes on a count this
        sketch does not hold (``ValueError``)."""
        if other.gamma != self.gamma:
            raise ValueError("only sketches of the same relative error subtract")
        counts = self.counts
        if (
            other.n > self.n
            or other.zeros > self.zeros
            or any(counts.get(i, 0) < c for i, c in other.counts.items())
        ):
            raise ValueError("subtracting counts this sketch does not hold")
        for i, c in other.counts.items():
            left = counts[i] - c
            if left:
                counts[i] = left
            else:
                del counts[i]
        self.zeros -= other.zeros
        self.n -= other.n

    def copy(self) -> LogHistogram:
        out = LogHistogram(self.relative_error)
        out.merge(self)
        return out

    def _value(self, i: int) -> float:
        return 2.0 * self.gamma**i / (self.gamma + 1.0)

    def rank_values(self, ranks: Iterable[int]) -> list[float]:
        """The estimates of ``X(k)`` for each 1-based rank k (clamped to 1..n); NaN when
        the sketch is empty. One pass over the sorted buckets for all of them."""
        wanted = [min(max(int(k), 1), self.n) for k in ranks]
        if not self.n:
            return [math.nan for _ in wanted]
        order = sorted(range(len(wanted)), key=wanted.__getitem__)
        out = [0.0] * len(wanted)
        seen = self.zeros
        buckets = iter(sorted(self.counts.items()))
        value = 0.0
        for j in order:
            while seen < wanted[j]:
                i, c = next(buckets)
                seen += c
                value = self._value(i)
            out[j] = value
        return out

    def rank_value(self, k: int) -> float:
        return self.rank_values([k])[0]

    def quantiles(self, qs: Iterable[float]) -> list[float]:
        """numpy's linear percentile at each fraction q (0..1), estimated; NaN if empty."""
        qs = list(qs)
        if not self.n:
            return [math.nan for _ in qs]
        ranks: list[int] = []
        fracs: list[float] = []
        for q in qs:
            h = (self.n - 1) * q
            lower = math.floor(h)
            ranks += [lower + 1, min(lower + 2, self.n)]
            fracs.append(h - lower)
        values = self.rank_values(ranks)
        return [
            values[2 * j] + fracs[j] * (values[2 * j + 1] - values[2 * j]) for j in range(len(qs))
        ]

    def quantile(self, q: float) -> float:
        return self.quantiles([q])[0]
