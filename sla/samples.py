"""What a verdict judges: the samples of a run (or of several, pooled) under a spec (pure).

The rows judged are those of the measured window of the run's reading (``sla.reading``: the
run's warm-up and requests cancelled by the end of the test are excluded), minus a further
``warmup`` from the spec (counted from the run's ``measured_from``, else ``started_at``),
then the spec's ``filters`` (endpoint label; the run.json ``scenario``; the ``turn``) and, for
an objective with a ``where``, that filter too (``judged_samples(..., where=...)``: the
same samples, narrowed; the rate window stays the run's). Latency metrics use
the successful requests with a value for that metric (``ttft_ms`` exists only for streamed
responses, ``tpot_ms`` only with >= 2 output tokens); ``itl_ms`` pools every chunk gap of
those requests. ``error_rate`` and ``goodput_ratio`` count every row (an error is never
good). A request is *good* when it succeeded and every ``per_request`` limit holds for it; a
metric it lacks (NaN) fails its limit. ``per_request.itl_ms`` limits the largest gap of the
request. Rates count the requests that *ended* inside the measured window, whenever they
started (``Reading.completed``: those cut off by the end of the test would otherwise make
every rate low by about latency / window), and divide by its length: ``ended_at`` minus
``measured_from`` plus the spec's warm-up (the last ``done_at`` stands in for ``ended_at``
when a killed run has none).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sla.files.run import Run
from sla.metrics import FloatArray, floats
from sla.reading import BoolArray, Reading, read_run
from sla.spec import Filters, Spec


@dataclass(frozen=True, slots=True)
class Samples:
    """What ``evaluate`` judges: ``rows`` started in the measured window (latencies and
    proportions), ``rate_rows`` ended in it (rates: ``Reading.completed``), both with
    the per-request metric columns and the spec's filters applied; ``good`` and
    ``rate_good`` mark the good ones (None without ``per_request`` limits); ``itl`` the
    pooled chunk gaps of the successful ``rows``; ``filters`` the spec's, which selected
    them; ``empty`` why the window holds nothing at all ("" unless the spec's warm-up
    outlasts the run: its length is then 0, never negative)."""

    rows: pd.DataFrame
    good: BoolArray | None
    window_s: float | None
    rate_rows: pd.DataFrame
    rate_good: BoolArray | None
    itl: FloatArray
    itl_requests: npt.NDArray[np.int64]  # the request of each of ``itl``'s gaps
    filters: Filters
    empty: str = ""


RunLike = Run | Reading


def reading_for(spec: Spec, run: RunLike) -> Reading:
    """The reading ``spec`` judges: ``run`` read with the spec's warm-up (a reading given
    keeps its derived rows; only its window moves)."""
    if isinstance(run, Reading):
        return run.with_warmup(spec.warmup_s)
    return read_run(run, spec.warmup_s)


def judged_samples(spec: Spec, *runs: RunLike, where: Filters | None = None) -> Samples:
    """Everything ``evaluate`` judges ``run`` on (see ``Samples``); for several runs
    (segments), their samples pooled and the sum of their windows. ``where``: an
    objective's own filter, on top of the spec's."""
    parts = [_select(spec, reading_for(spec, run), where) for run in runs]
    if len(parts) == 1:
        return parts[0]
    windows = [p.window_s for p in parts]
    return Samples(
        rows=pd.concat([p.rows for p in parts], ignore_index=True),
        good=_pooled([p.good for p in parts]),
        window_s=None if None in windows else float(sum(w or 0.0 for w in windows)),
        rate_rows=pd.concat([p.rate_rows for p in parts], ignore_index=True),
        rate_good=_pooled([p.rate_good for p in parts]),
        itl=np.concatenate([p.itl for p in parts]),
        # A segment's rows are numbered from 0: offset so that requests stay apart.
        itl_requests=np.concatenate([p.itl_requests + i * (1 << 40) for i, p in enumerate(parts)]),
        filters=spec.filters,
        empty=parts[0].empty if all(p.empty for p in parts) else "",
    )


def _pooled(masks: Sequence[BoolArray | None]) -> BoolArray | None:
    present = [m for m in masks if m is not None]
    return np.concatenate(present) if len(present) == len(masks) else None


def _select(spec: Spec, reading: Reading, where: Filters | None) -> Samples:
    kept = filter_mask(spec, reading)
    if where is not None:
        kept &= rows_kept(where, reading)
    measured = reading.measured_mask & kept
    rows = reading.rows[measured]
    rate_rows = reading.rows[reading.completed_mask & kept]
    itl, itl_requests = reading.itl_ms(), reading.itl_requests()
    if not kept.all():
        keep = kept[itl_requests]
        itl, itl_requests = itl[keep], itl_requests[keep]
    good = _good(rows, spec.per_request) if spec.per_request else None
    rate_good = _good(rate_rows, spec.per_request) if spec.per_request else None
    window, empty = reading.window_s, ""
    if window is not None and window < 0:  # its start moved past its end: nothing is left
        empty = (
            f"no samples: the spec's warm-up ({spec.warmup_s:g} s) is longer than the run's "
            f"measured window ({window + spec.warmup_s:.1f} s); shorten it or run longer"
        )
        window = 0.0
    return Samples(rows, good, window, rate_rows, rate_good, itl, itl_requests, spec.filters, empty)


def filter_mask(spec: Spec, reading: Reading) -> BoolArray:
    """The rows the spec's ``filters`` keep (endpoint label; the run.json scenario; turn)."""
    return rows_kept(spec.filters, reading)


_COMPARE = {
    "==": np.equal,
    "!=": np.not_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "<": np.less,
    "<=": np.less_equal,
}


def rows_kept(filters: Filters, reading: Reading) -> BoolArray:
    """The rows ``filters`` keep; a row without a turn meets no turn condition."""
    rows = reading.rows
    if filters.scenarios and reading.meta.get("scenario") not in filters.scenarios:
        return np.zeros(len(rows), dtype=bool)
    keep = np.ones(len(rows), dtype=bool)
    if filters.endpoints:
        keep &= rows["endpoint"].isin(filters.endpoints).to_numpy(dtype=bool)
    if filters.turns:
        turn = floats(rows, "turn") if "turn" in rows else np.full(len(rows), np.nan)
        for op, number in filters.turns:
            with np.errstate(invalid="ignore"):
                keep &= _COMPARE[op](turn, float(number)) & ~np.isnan(turn)
    return keep


def _good(rows: pd.DataFrame, limits: tuple[tuple[str, float], ...]) -> BoolArray:
    good = rows["ok"].to_numpy(dtype=bool).copy()
    for metric, limit in limits:
        values = _largest_gap_ms(rows) if metric == "itl_ms" else floats(rows, metric)
        good &= values <= limit  # NaN compares False: a missing metric fails its limit
    return good


def _largest_gap_ms(rows: pd.DataFrame) -> FloatArray:
    lists = pa.array(rows["chunk_gaps_ms"], type=pa.list_(pa.float64()))
    flat = pc.list_flatten(lists).to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    out = np.full(len(rows), np.nan)
    np.fmax.at(out, parents, flat)  # fmax ignores the NaN start value
    return out
