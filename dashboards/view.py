"""A run as the figure builders see it: the run's reading (``sla.reading``: the window and
the per-request metrics, derived once) and the time axis.

Time axes are seconds since the run's ``started_at``; a request sits in the window of its
start (``scheduled_at`` in open loop, else ``sent_at``), as the reading places it. The
measured samples are the reading's successful measured requests, as the SLA judge and
``sla.compare`` take them. Figures show the run's own window: a reading made with an SLA
spec's extra warm-up is seen without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sla.errors import SlabenchError
from sla.files.run import Run
from sla.metrics import FloatArray
from sla.reading import Reading, read_run
from sla.spec import RESPONSE_LATENCY_METRICS

LATENCY_METRICS = RESPONSE_LATENCY_METRICS  # the latencies drawn (not the schedule lag)
METRIC_NAMES = {
    "ttft_ms": "TTFT",
    "itl_ms": "ITL",
    "tpot_ms": "TPOT",
    "latency_ms": "E2E latency",
}
TARGET_WINDOWS = 150  # default windows per run: detail without noise; always <= 300
MAX_WINDOWS = 5000  # a finer --window would make figures that no browser draws quickly
_NICE_STEPS = (1.0, 2.0, 5.0)


class DashboardError(SlabenchError, ValueError):
    """A figure option that cannot be used; str() is one line saying what and how to fix it."""


@dataclass(frozen=True, slots=True)
class Timeline:
    """The time axis of a run, in seconds since ``origin`` (the run's ``started_at``, epoch s)."""

    origin: float
    end_s: float  # ended_at (or the last done_at of a killed run)
    warmup_end_s: float | None  # measured_from; None when run.json has none
    window_s: float

    @property
    def measured_start_s(self) -> float:
        return self.warmup_end_s if self.warmup_end_s is not None else 0.0

    @property
    def n_windows(self) -> int:
        return max(1, math.ceil(self.end_s / self.window_s))


def default_window_s(duration_s: float) -> float:
    """The smallest 1-2-5 step giving at most ``TARGET_WINDOWS`` windows over ``duration_s``."""
    if not duration_s > 0 or not math.isfinite(duration_s):
        return 1.0
    raw = duration_s / TARGET_WINDOWS
    exponent = math.floor(math.log10(raw))
    for decade in (exponent, exponent + 1):
        for step in _NICE_STEPS:
            candidate = step * 10.0**decade
            if candidate >= raw * (1 - 1e-12):
                return float(f"{candidate:.12g}")  # 5e-06, not 4.9999999999999996e-06
    return 10.0 ** (exponent + 1)


@dataclass(frozen=True, eq=False)
class RunView:
    """The run's reading (its own window) and the time axis of its figures."""

    reading: Reading
    timeline: Timeline

    @staticmethod
    def of(run: Run | Reading, window_s: float | None = None) -> RunView:
        reading = (run if isinstance(run, Reading) else read_run(run)).with_warmup(0.0)
        timeline = _timeline(reading, window_s)
        return RunView(reading, timeline)

    @property
    def meta(self) -> dict[str, Any]:
        return self.reading.meta

    @property
    def rows(self) -> pd.DataFrame:
        """Every recorded row with the per-request metric columns (positional index)."""
        return self.reading.rows

    @property
    def measured_ok(self) -> pd.DataFrame:
        """The measured window's successful rows."""
        return self.reading.measured_ok

    def values(self, metric: str) -> FloatArray:
        """The measured samples of a latency metric (``itl_ms`` pools the chunk gaps), no NaN."""
        return self.reading.latency_values(metric)

    def load_profile(self) -> dict[str, Any]:
        profile = self.meta.get("load_profile")
        return profile if isinstance(profile, dict) else {}


def _timeline(reading: Reading, window_s: float | None) -> Timeline:
    """The time axis: from ``started_at`` (else the first start) to the window's end."""
    meta = reading.meta
    origin = _first_finite(meta.get("started_at"), _nanmin(reading.start), 0.0)
    end = _first_finite(reading.ended_at, origin)
    end_s = max(end - origin, 0.0)
    if window_s is None:
        window_s = default_window_s(end_s)
    _check_window(window_s, end_s)
    # Shaded only when the run had a warm-up of its own.
    warmup_s = None
    if _finite_or_none(meta.get("measured_from")) is not None and reading.measured_from is not None:
        warmup_s = reading.measured_from - origin
    return Timeline(origin, end_s, warmup_s, window_s)


def _check_window(window_s: float, end_s: float) -> None:
    if not (isinstance(window_s, int | float) and math.isfinite(window_s) and window_s > 0):
        raise DashboardError(f"window {window_s!r} must be a number of seconds > 0, e.g. 1 or 0.5")
    if end_s / window_s > MAX_WINDOWS:
        least = end_s / MAX_WINDOWS
        raise DashboardError(
            f"a {window_s:g} s window cuts this {end_s:.0f} s run into more than "
            f"{MAX_WINDOWS} windows; use a window of at least {least:.3g} s"
        )


def _finite_or_none(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _first_finite(*values: object) -> float:
    for value in values:
        number = _finite_or_none(value)
        if number is not None:
            return number
    return 0.0


def _nanmin(values: FloatArray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.min()) if len(finite) else None
