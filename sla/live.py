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

from sla.sketch import RELATIVE_ERROR, LogHistogram

__all__ = ["LIVE_METRICS", "LiveSamples", "Tally"]

# The latency metrics the live view keeps (every latency metric a spec may name).
LIVE_METRICS = ("ttft_ms", "ttfot_ms", "itl_ms", "tpot_ms", "latency_ms", "schedule_lag_ms")


class Tally:
    """One metric's values: the sketch (quantiles within ``relative_error``) and exact
    ``n``, ``total``, ``total_sq``, ``low`` (minimum) and ``high`` (maximum)."""

    __slots__ = ("high", "low", "sketch", "total", "total_sq")

    def __init__(self, relative_error: float = RELATIVE_ERROR) -> None:
        self.sketch = LogHistogram(relative_error)
        self.total = 0.0
        self.total_sq = 0.0
        self.low = math.inf
        self.high = -math.inf

    @property
    def n(self) -> int:
        return self.sketch.n

    def add(self, value: float) -> None:
        if value != value:  # NaN: the request has no such value
            return
        self.sketch.add(value)
        self.total += value
        self.total_sq += value * value
        if value < self.low:
            self.low = value
        if value > self.high:
            self.high = value

    def add_all(self, values: Iterable[float]) -> None:
        for value in values:
            self.add(value)

    def merge(self, other: Tally) -> None:
        self.sketch.merge(other.sketch)
        self.total += other.total
        self.total_sq += other.total_sq
        self.low = min(self.low, other.low)
        self.high = max(self.high, other.high)

    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    def std(self) -> float:
        """The sample standard deviation (ddof=1); NaN below 2 values."""
        n = self.n
        if n < 2:
            return math.nan
        var = (self.total_sq - self.total * self.total / n) / (n - 1)
        return math.sqrt(max(0.0, var))


@dataclass(slots=True)
class LiveSamples:
    """A set of requests as the live view keeps it.

    - ``latency``: a ``Tally`` per metric of ``LIVE_METRICS``, over the successful requests
      that started in the measured window (``itl_ms`` pools their chunk gaps).
    - ``n``/``failed``/``good``: requests started in the window (not cancelled), those that
      failed, those good under the spec's ``per_request`` limits (proportions).
    - ``done_ok``/``done_tokens``/``done_tokens_sq``/``done_good``: successful requests that
      ended in the window, their output tokens (and squares), the good ones (rates).
    - ``errors``: failures by error class; ``dropped``: open-loop sends not made.
    """

    latency: dict[str, Tally] = field(default_factory=lambda: {m: Tally() for m in LIVE_METRICS})
    n: int = 0
    failed: int = 0
    good: int = 0
    done_ok: int = 0
    done_tokens: float = 0.0
    done_tokens_sq: float = 0.0
    done_good: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    dropped: int = 0

    def merge(self, other: LiveSamples) -> None:
        for metric, tally in other.latency.items():
            self.latency[metric].merge(tally)
        self.n += other.n
        self.failed += other.failed
        self.good += other.good
        self.done_ok += other.done_ok
        self.done_tokens += other.done_tokens
        self.done_tokens_sq += other.done_tokens_sq
        self.done_good += other.done_good
        for name, count in other.errors.items():
            self.errors[name] = self.errors.get(name, 0) + count
        self.dropped += other.dropped

    @classmethod
    def pooled(cls, parts: Iterable[LiveSamples]) -> LiveSamples:
        out = cls()
        for part in parts:
            out.merge(part)
        return out
