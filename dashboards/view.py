"""A run as the figure builders see it: the per-request metrics once, the time axis, and the
samples of the measured window that the SLA judges.

Time axes are seconds since the run's ``started_at``; a request sits in the window of its
start (``scheduled_at`` in open loop, else ``sent_at``), as ``sla.metrics.measured`` places
it. The measured samples are those of ``sla.metrics.measured`` (warm-up and requests
cancelled by the end of the test excluded) that succeeded, as ``sla.compare`` takes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sla.metrics import FloatArray, itl_ms, measured, with_request_metrics
from sla.records import Run

LATENCY_METRICS = ("ttft_ms", "itl_ms", "tpot_ms", "latency_ms")
METRIC_NAMES = {
    "ttft_ms": "TTFT",
    "itl_ms": "ITL",
    "tpot_ms": "TPOT",
    "latency_ms": "E2E latency",
}
TARGET_WINDOWS = 150  # default windows per run: detail without noise; always <= 300
MAX_WINDOWS = 5000  # a finer --window would make figures that no browser draws quickly
_NICE_STEPS = (1.0, 2.0, 5.0)


class DashboardError(ValueError):
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
    """The metric columns of every row, the measured successful rows, and the time axis."""

    meta: dict[str, Any]
    rows: pd.DataFrame  # with_request_metrics of every recorded row
    measured_ok: pd.DataFrame  # the measured window's successful rows, without chunk gaps
    timeline: Timeline
    _cache: dict[str, FloatArray] = field(default_factory=dict, repr=False)

    @staticmethod
    def of(run: Run, window_s: float | None = None) -> RunView:
        # A positional index, so that the measured rows' labels are their positions.
        rows = with_request_metrics(run.requests).reset_index(drop=True)
        meta = dict(run.meta)
        starts = rows["start"].to_numpy(dtype=np.float64)
        done = rows["done_at"].to_numpy(dtype=np.float64)
        origin = _first_finite(meta.get("started_at"), _nanmin(starts), 0.0)
        end = _first_finite(meta.get("ended_at"), _nanmax(done), origin)
        warmup = _finite_or_none(meta.get("measured_from"))
        # As sla.compare does: a run without measured_from is measured from its start.
        meta["measured_from"] = warmup if warmup is not None else origin
        meta["ended_at"] = end
        # Without the chunk gaps: copying a list column of millions of gaps costs seconds.
        kept = measured(rows.drop(columns=["chunk_gaps_ms"]), meta)
        measured_ok = kept[kept["ok"].to_numpy(dtype=bool)]
        end_s = max(end - origin, 0.0)
        if window_s is None:
            window_s = default_window_s(end_s)
        _check_window(window_s, end_s)
        warmup_s = None if warmup is None else warmup - origin
        return RunView(meta, rows, measured_ok, Timeline(origin, end_s, warmup_s, window_s))

    def values(self, metric: str) -> FloatArray:
        """The measured samples of a latency metric (``itl_ms`` pools the chunk gaps), no NaN."""
        if metric not in self._cache:
            if metric == "itl_ms":
                gaps = self.rows[["chunk_gaps_ms", "status", "error"]]
                values = itl_ms(gaps.iloc[self.measured_ok.index.to_numpy()], only_ok=False)
            else:
                values = self.measured_ok[metric].to_numpy(dtype=np.float64)
            self._cache[metric] = values[~np.isnan(values)]
        return self._cache[metric]

    def load_profile(self) -> dict[str, Any]:
        profile = self.meta.get("load_profile")
        return profile if isinstance(profile, dict) else {}


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


def _nanmax(values: FloatArray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.max()) if len(finite) else None
