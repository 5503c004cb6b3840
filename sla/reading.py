"""The one reading of a run: its measured window and its per-request metrics, derived once.

    reading = read_run(load_run("runs/x"))            # warm-up: the run's own
    judged = reading.with_warmup(spec.warmup_s)       # the same derived rows, a later start

Every consumer (the SLA judge, comparisons, capacity steps, the run summary, the figures)
takes its samples from a ``Reading``; nothing else works out a window.

The window. It begins at run.json ``measured_from`` (the end of the run's warm-up), else
``started_at``, else the first request's start, plus ``warmup_s`` (an SLA spec's own
warm-up); it ends at ``ended_at``, or at the last ``done_at`` for a run killed before it
was closed. ``window_s`` is its length (None when the run has no bound at all).

The rows. ``rows`` is every recorded request with the columns of
``sla.metrics.with_request_metrics`` (a positional index). ``measured`` are the rows that
*started* in the window (latencies and proportions); ``completed`` the rows that *ended*
in it (rates). Requests
cancelled by the end of the test are in neither. ``itl_ms()`` pools the chunk gaps of the
successful measured requests; the flattened gaps are computed once per run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sla.files.run import Run
from sla.metrics import FloatArray, floats, not_cancelled, window_mask, with_request_metrics

__all__ = ["BoolArray", "Reading", "read_run"]

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class _Derived:
    """What does not depend on the window: shared by every reading of one run."""

    rows: pd.DataFrame
    start: FloatArray
    done: FloatArray
    cancelled: BoolArray
    ok: BoolArray
    _gaps: dict[str, npt.NDArray[Any]] = field(default_factory=dict, repr=False)

    @staticmethod
    def of(run: Run) -> _Derived:
        rows = with_request_metrics(run.requests).reset_index(drop=True)
        return _Derived(
            rows=rows,
            start=rows["start"].to_numpy(dtype=np.float64),
            done=floats(rows, "done_at"),
            cancelled=~not_cancelled(rows),
            ok=rows["ok"].to_numpy(dtype=bool),
        )

    def gaps(self) -> tuple[FloatArray, npt.NDArray[np.int64]]:
        """Every chunk gap of every row, flattened, and the row of each gap."""
        if not self._gaps:
            lists = pa.array(self.rows["chunk_gaps_ms"], type=pa.list_(pa.float64()))
            flat = pc.list_flatten(lists).to_numpy(zero_copy_only=False)
            parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
            self._gaps["flat"] = np.asarray(flat, dtype=np.float64)
            self._gaps["parents"] = np.asarray(parents, dtype=np.int64)
        return self._gaps["flat"], self._gaps["parents"]


@dataclass(frozen=True, eq=False)
class Reading:
    """A run seen through its measured window (see the module docstring)."""

    run: Run
    warmup_s: float
    measured_from: float | None
    ended_at: float | None
    _derived: _Derived = field(repr=False)

    @property
    def meta(self) -> dict[str, Any]:
        return self.run.meta

    @property
    def path(self) -> Path:
        return self.run.path

    @property
    def saturated(self) -> bool:
        """The load generator was saturated (run.json): the timings are not trustworthy."""
        return self.run.saturated

    @property
    def incomplete(self) -> tuple[str, ...]:
        """Why the run lacks data (``Run.incomplete``); empty when it is complete."""
        return self.run.incomplete

    @property
    def disturbed(self) -> tuple[str, ...]:
        """Why the load generator was disturbed (``Run.disturbed``); empty when it was not."""
        return self.run.disturbed

    @property
    def rows(self) -> pd.DataFrame:
        """Every recorded row with the per-request metric columns (positional index)."""
        return self._derived.rows

    @property
    def start(self) -> FloatArray:
        """The start of every row (``scheduled_at`` in open loop, else ``sent_at``)."""
        return self._derived.start

    @property
    def cancelled(self) -> BoolArray:
        """Rows cut off by the end of the test (``CANCELLED_ERRORS``)."""
        return self._derived.cancelled

    @property
    def window_s(self) -> float | None:
        if self.measured_from is None or self.ended_at is None:
            return None
        return self.ended_at - self.measured_from

    @cached_property
    def started_in_window(self) -> BoolArray:
        """Rows whose start lies in the window, cancelled ones included (arrivals)."""
        return window_mask(self.start, self.measured_from, self.ended_at)

    @cached_property
    def measured_mask(self) -> BoolArray:
        """Rows that started in the window and were not cancelled."""
        return self.started_in_window & ~self.cancelled

    @cached_property
    def completed_mask(self) -> BoolArray:
        """Rows that ended in the window and were not cancelled."""
        done = self._derived.done
        in_window = window_mask(done, self.measured_from, self.ended_at)
        return ~np.isnan(done) & in_window & ~self.cancelled

    @cached_property
    def measured(self) -> pd.DataFrame:
        """The rows that started in the window (latencies, proportions)."""
        return self.rows[self.measured_mask]

    @cached_property
    def completed(self) -> pd.DataFrame:
        """The rows that ended in the window (rates)."""
        return self.rows[self.completed_mask]

    @cached_property
    def measured_ok(self) -> pd.DataFrame:
        """The successful measured rows: the samples of every latency metric."""
        return self.rows[self.measured_mask & self._derived.ok]

    @cached_property
    def warmup_rows(self) -> int:
        """Rows that started before the window (cancelled ones are counted as cancelled)."""
        if self.measured_from is None:
            return 0
        return int(((self.start < self.measured_from) & ~self.cancelled).sum())

    @cached_property
    def late_rows(self) -> int:
        """Rows that started after the window's end and were not cancelled (a worker stops a
        moment after the master stamps ``ended_at``)."""
        if self.ended_at is None:
            return 0
        return int(((self.start > self.ended_at) & ~self.cancelled).sum())

    @cached_property
    def unstarted_rows(self) -> int:
        """Rows without a start time that were not cancelled (in no window)."""
        return int((np.isnan(self.start) & ~self.cancelled).sum())

    def pooled_gaps(self, keep: BoolArray) -> FloatArray:
        """The chunk gaps of the rows where ``keep`` holds, pooled in row order, no NaN."""
        flat, parents = self._derived.gaps()
        values = flat[keep[parents]]
        return values[~np.isnan(values)]

    @cached_property
    def _itl(self) -> FloatArray:
        return self.pooled_gaps(self.measured_mask & self._derived.ok)

    def itl_ms(self) -> FloatArray:
        """``itl_ms``: every chunk gap of the successful measured requests, no NaN."""
        return self._itl

    def itl_requests(self) -> npt.NDArray[np.int64]:
        """The row of each of ``itl_ms()``'s gaps (aligned with it): a request's gaps are
        not independent samples (``sla.stats.bootstrap_clustered_percentile``)."""
        flat, parents = self._derived.gaps()
        keep = (self.measured_mask & self._derived.ok)[parents] & ~np.isnan(flat)
        return parents[keep]

    def latency_values(self, metric: str) -> FloatArray:
        """The samples of a latency metric (successful measured requests), no NaN."""
        if metric == "itl_ms":
            return self.itl_ms()
        values = floats(self.measured_ok, metric)
        return values[~np.isnan(values)]

    def with_warmup(self, warmup_s: float) -> Reading:
        """The same run with ``warmup_s`` more excluded after its own warm-up (the derived
        rows are shared, not derived again)."""
        if warmup_s == self.warmup_s:
            return self
        begin = _window_begin(self.run.meta, self.start)
        return replace(
            self, warmup_s=warmup_s, measured_from=None if begin is None else begin + warmup_s
        )


def read_run(run: Run, warmup_s: float = 0.0) -> Reading:
    """Read ``run``: resolve its window (plus ``warmup_s``) and derive its metrics once."""
    derived = _Derived.of(run)
    begin = _window_begin(run.meta, derived.start)
    end = run.meta.get("ended_at")
    if end is None and (~np.isnan(derived.done)).any():
        end = float(np.nanmax(derived.done))  # a killed run: its last completion
    return Reading(
        run=run,
        warmup_s=warmup_s,
        measured_from=None if begin is None else begin + warmup_s,
        ended_at=None if end is None else float(end),
        _derived=derived,
    )


def _window_begin(meta: dict[str, Any], start: FloatArray) -> float | None:
    """run.json ``measured_from``, else ``started_at``, else the first request's start."""
    for key in ("measured_from", "started_at"):
        if meta.get(key) is not None:
            return float(meta[key])
    finite = start[~np.isnan(start)]
    return float(finite.min()) if len(finite) else None
