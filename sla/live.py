"""What the live view of a run keeps of it, in bounded memory (pure): per metric a ``Tally``
(a ``sla.sketch.LogHistogram`` for its quantiles plus the exact count, sum, sum of squares,
minimum and maximum), and per set of requests a ``LiveSamples`` (the tallies of the latency
metrics, the counts the proportions need, the sums the rates need). Both merge by adding,
so per-endpoint and per-second pieces add up to whatever is judged or shown.

The exact figures of a run are still the end-of-run ones (``sla.reading``); these are the
figures shown while it runs and the ones ``sla.provisional`` judges provisionally.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from sla.sketch import RELATIVE_ERROR, LogHistogram

__all__ = ["BATCH", "LIVE_METRICS", "LiveSamples", "Tallies", "Tally"]

BATCH = 4096  # values a Tally buffers at most before it counts them
# Up to this many buffered values are counted one by one: numpy's dozen calls cost more
# than the loop for a handful of values (a per-second, per-endpoint tally holds a few).
SMALL = 64

# The latency metrics the live view keeps (every latency metric a spec may name).
LIVE_METRICS = ("ttft_ms", "ttfot_ms", "itl_ms", "tpot_ms", "latency_ms", "schedule_lag_ms")


class Tally:
    """One metric's values: the sketch (quantiles within ``relative_error``) and exact
    ``n``, ``total``, ``total_sq``, ``low`` (minimum) and ``high`` (maximum).

    ``add`` only appends to a buffer, which goes into the sketch and the sums with numpy
    when a figure is read (or when it holds ``BATCH`` values): a request's dozen values
    cost a few list appends on the load generator's hot path, not a dozen logarithms."""

    __slots__ = ("_high", "_low", "_pending", "_sketch", "_total", "_total_sq")

    def __init__(self, relative_error: float = RELATIVE_ERROR) -> None:
        self._sketch = LogHistogram(relative_error)
        self._total = 0.0
        self._total_sq = 0.0
        self._low = math.inf
        self._high = -math.inf
        self._pending: list[float] = []

    def add(self, value: float) -> None:
        pending = self._pending
        pending.append(value)
        if len(pending) >= BATCH:
            self.flush()

    def add_all(self, values: Iterable[float]) -> None:
        pending = self._pending
        pending.extend(values)
        if len(pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        """Count the buffered values (NaN: a request without the metric, left out)."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        if len(pending) <= SMALL:
            self._count_each(pending)
            return
        values = np.asarray(pending, dtype=np.float64)
        values = values[~np.isnan(values)]
        if not len(values):
            return
        self._sketch.add_array(values)
        self._total += float(values.sum())
        self._total_sq += float(np.dot(values, values))
        self._low = min(self._low, float(values.min()))
        self._high = max(self._high, float(values.max()))

    def _count_each(self, values: list[float]) -> None:
        add = self._sketch.add
        total, total_sq, low, high = self._total, self._total_sq, self._low, self._high
        for v in values:
            if v != v:  # NaN
                continue
            add(v)
            total += v
            total_sq += v * v
            low = v if v < low else low
            high = v if v > high else high
        self._total, self._total_sq, self._low, self._high = total, total_sq, low, high

    @property
    def sketch(self) -> LogHistogram:
        self.flush()
        return self._sketch

    @property
    def n(self) -> int:
        return self.sketch.n

    @property
    def total(self) -> float:
        self.flush()
        return self._total

    @property
    def total_sq(self) -> float:
        self.flush()
        return self._total_sq

    @property
    def low(self) -> float:
        self.flush()
        return self._low

    @property
    def high(self) -> float:
        self.flush()
        return self._high

    def merge(self, other: Tally) -> None:
        self.flush()
        other.flush()
        self._sketch.merge(other._sketch)
        self._total += other._total
        self._total_sq += other._total_sq
        self._low = min(self._low, other._low)
        self._high = max(self._high, other._high)

    def absorb(self, other: Tally) -> None:
        """``merge``, lazily: ``other``'s buffered values are buffered here too (a list
        extend), to be counted with this tally's next batch; ``other`` keeps them buffered
        (a sliding window's second, to be subtracted later)."""
        if other._sketch.n:
            self.merge(other)
            return
        pending = self._pending
        pending.extend(other._pending)
        if len(pending) >= BATCH:
            self.flush()

    def subtract(self, other: Tally) -> None:
        """Take out the values of ``other``, which were merged into this tally (a sliding
        window's second leaving it). ``low`` and ``high`` stay as they were: after a
        subtraction they bound the values held, no longer exactly."""
        self.flush()
        other.flush()
        self._sketch.subtract(other._sketch)
        self._total -= other._total
        self._total_sq -= other._total_sq

    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    def std(self) -> float:
        """The sample standard deviation (ddof=1); NaN below 2 values."""
        n = self.n
        if n < 2:
            return math.nan
        var = (self.total_sq - self.total * self.total / n) / (n - 1)
        return math.sqrt(max(0.0, var))


class Tallies(dict[str, Tally]):
    """A ``Tally`` per metric of ``LIVE_METRICS``, made when first asked for: a set of
    requests without a metric (no schedule lag in a closed loop) costs nothing for it."""

    def __missing__(self, metric: str) -> Tally:
        if metric not in LIVE_METRICS:
            raise KeyError(metric)
        tally = self[metric] = Tally()
        return tally


@dataclass(slots=True)
class LiveSamples:
    """A set of requests as the live view keeps it.

    - ``latency``: a ``Tally`` per metric of ``LIVE_METRICS``, over the successful requests
      that started in the measured window (``itl_ms`` pools their chunk gaps).
    - ``n``/``failed``/``good``: requests started in the window (not cancelled), those that
      failed, those good under the spec's ``per_request`` limits (proportions).
    - ``done_ok``/``done_tokens``/``done_tokens_sq``/``done_good``: successful requests that
      ended in the window, their output tokens (and squares), the good ones (rates);
      ``done_counted``: those of them that told their output tokens (an embedding tells
      none: its rate of tokens is unknown, not 0).
    - ``errors``: failures by error class; ``dropped``: open-loop sends not made.
    """

    latency: Tallies = field(default_factory=Tallies)
    n: int = 0
    failed: int = 0
    good: int = 0
    done_ok: int = 0
    done_tokens: float = 0.0
    done_tokens_sq: float = 0.0
    done_good: int = 0
    done_counted: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    dropped: int = 0

    def merge(self, other: LiveSamples) -> None:
        for metric, tally in other.latency.items():
            self.latency[metric].merge(tally)
        self._add_counts(other)

    def _add_counts(self, other: LiveSamples, sign: int = 1) -> None:
        """Add (``sign`` 1) or take out (-1) ``other``'s counts and sums."""
        self.n += sign * other.n
        self.failed += sign * other.failed
        self.good += sign * other.good
        self.done_ok += sign * other.done_ok
        self.done_tokens += sign * other.done_tokens
        self.done_tokens_sq += sign * other.done_tokens_sq
        self.done_good += sign * other.done_good
        self.done_counted += sign * other.done_counted
        for name, count in other.errors.items():
            left = self.errors.get(name, 0) + sign * count
            if left:
                self.errors[name] = left
            else:
                self.errors.pop(name, None)
        self.dropped += sign * other.dropped

    def absorb(self, other: LiveSamples) -> None:
        """``merge``, with each metric's values absorbed (see ``Tally.absorb``)."""
        for metric, tally in other.latency.items():
            self.latency[metric].absorb(tally)
        self._add_counts(other)

    def subtract(self, other: LiveSamples) -> None:
        """Take out ``other``, which was merged into this one (see ``Tally.subtract``)."""
        for metric, tally in other.latency.items():
            self.latency[metric].subtract(tally)
        self._add_counts(other, -1)

    @classmethod
    def pooled(cls, parts: Iterable[LiveSamples]) -> LiveSamples:
        out = cls()
        for part in parts:
            out.merge(part)
        return out
