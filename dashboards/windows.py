"""Per-window aggregates of a run: the points every time-axis figure is drawn from.

A request belongs to the window of its start (``scheduled_at`` in open loop, else
``sent_at``), the time ``sla.reading`` measures it by. Per window, with the same
definitions as the SLA package:

- percentiles: numpy's default (linear) percentile of the successful requests that have the
  metric, as ``sla.stats.percentile_interval`` estimates it;
- rates: ``sla.metrics.throughput`` of the window's rows over the window's length
  (successful requests, their output tokens, and failures, per second).

Requests cancelled by the end of the test are left out, as the SLA leaves them out. Work is
vectorised over requests; only the (at most a few thousand) windows are looped over.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt
import pandas as pd

from sla.metrics import FloatArray, not_cancelled, with_request_metrics

IntArray = npt.NDArray[np.int64]
PERCENTS = (50.0, 90.0, 99.0)


@dataclass(frozen=True, slots=True)
class WindowStats:
    """One window; ``window_stats`` returns a frame whose columns are these fields."""

    start_s: float  # seconds since the run start
    end_s: float
    n: int  # requests started in the window (cancelled ones excluded)
    n_ok: int
    latency_p50_ms: float  # NaN when no successful request started in the window
    latency_p90_ms: float
    latency_p99_ms: float
    ttft_p50_ms: float
    ttft_p90_ms: float
    ttft_p99_ms: float
    requests_per_s: float  # successful requests / window
    output_tokens_per_s: float  # output tokens of successful requests / window
    errors_per_s: float  # failed requests / window


WINDOW_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(WindowStats))


def window_stats(df: pd.DataFrame, *, start: float, window_s: float) -> pd.DataFrame:
    """One row per window of ``window_s`` seconds from ``start`` (epoch s) to the last start.

    ``df`` is ``requests.parquet`` as loaded, with or without the columns of
    ``sla.metrics.with_request_metrics``. Windows run from ``start`` (or the earliest
    request, if earlier) to the last request; windows with no request have ``n`` = 0, NaN
    percentiles and zero rates.
    """
    if not window_s > 0:
        raise ValueError(f"window_s must be > 0, got {window_s}")
    rows = df if "latency_ms" in df.columns else with_request_metrics(df)
    t = rows["start"].to_numpy(dtype=np.float64)
    keep = not_cancelled(rows) & np.isfinite(t)
    index = np.floor((t[keep] - start) / window_s).astype(np.int64)
    if not len(index):
        return pd.DataFrame({name: [] for name in WINDOW_COLUMNS}).astype(_dtypes())
    first = min(int(index.min()), 0)
    index -= first
    count = int(index.max()) + 1
    ok = rows["ok"].to_numpy(dtype=bool)[keep]
    tokens = pd.to_numeric(rows["output_tokens"]).to_numpy(np.float64, na_value=np.nan)[keep]
    n = np.bincount(index, minlength=count)
    n_ok = np.bincount(index[ok], minlength=count)
    token_sum = np.bincount(index[ok], weights=np.nan_to_num(tokens[ok]), minlength=count)
    starts = (np.arange(count) + first) * window_s
    out = {
        "start_s": starts,
        "end_s": starts + window_s,
        "n": n,
        "n_ok": n_ok,
        "requests_per_s": n_ok / window_s,
        "output_tokens_per_s": token_sum / window_s,
        "errors_per_s": (n - n_ok) / window_s,
    }
    for metric, prefix in (("latency_ms", "latency"), ("ttft_ms", "ttft")):
        values = rows[metric].to_numpy(dtype=np.float64)[keep]
        table = grouped_percentiles(index[ok], values[ok], count, PERCENTS)
        for column, percent in enumerate(PERCENTS):
            out[f"{prefix}_p{percent:g}_ms"] = table[:, column]
    return pd.DataFrame(out, columns=list(WINDOW_COLUMNS)).astype(_dtypes())


def grouped_percentiles(
    group: IntArray, values: FloatArray, n_groups: int, percents: tuple[float, ...]
) -> FloatArray:
    """``out[g, j]`` = numpy's percentile ``percents[j]`` of the non-NaN ``values`` of group
    ``g`` (NaN for an empty group): one sort by group, then one call per group."""
    finite = ~np.isnan(values)
    group, values = group[finite], values[finite]
    order = np.argsort(group, kind="stable")
    group, values = group[order], values[order]
    bounds = np.searchsorted(group, np.arange(n_groups + 1))
    out = np.full((n_groups, len(percents)), np.nan)
    for g in np.flatnonzero(np.diff(bounds)):
        out[g] = np.percentile(values[bounds[g] : bounds[g + 1]], percents)
    return out


@dataclass(frozen=True, slots=True)
class InflightSteps:
    """The number of requests in flight as a step function: ``counts[i]`` from ``times[i]``
    until ``times[i + 1]``; zero before ``times[0]`` and from the last time on."""

    times: FloatArray
    counts: IntArray


def inflight_steps(starts: FloatArray, ends: FloatArray) -> InflightSteps:
    """Sweep over the sorted start (+1) and end (-1) events of the ``[start, end)`` intervals.

    A request ending at the instant another starts is not counted together with it.
    Intervals with a NaN bound or ``end < start`` are ignored.
    """
    valid = np.isfinite(starts) & np.isfinite(ends) & (ends >= starts)
    times = np.concatenate((starts[valid], ends[valid]))
    deltas = np.concatenate(
        (np.ones(int(valid.sum()), np.int64), -np.ones(int(valid.sum()), np.int64))
    )
    order = np.lexsort((deltas, times))  # by time; at one instant, ends (-1) first
    times, counts = times[order], np.cumsum(deltas[order])
    # Several events at one instant: the count after the last of them holds from there.
    last = np.r_[times[1:] != times[:-1], True] if len(times) else np.zeros(0, dtype=bool)
    return InflightSteps(times[last], counts[last])


def inflight_per_window(steps: InflightSteps, edges: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Time-averaged and largest in-flight count over each ``[edges[w], edges[w + 1])``."""
    m = len(steps.times)
    if m == 0:
        zeros = np.zeros(len(edges) - 1)
        return zeros, zeros.copy()
    times = np.r_[-np.inf, steps.times]
    counts = np.r_[0.0, steps.counts.astype(np.float64)]
    # area[j]: the integral of the count up to times[j] (nothing is in flight before).
    area = np.zeros(m + 1)
    area[2:] = np.cumsum(counts[1:-1] * np.diff(steps.times))
    at = np.searchsorted(times, edges, side="right") - 1  # the step holding at each edge
    offset = np.where(at > 0, edges - times[at], 0.0)
    integral = area[at] + counts[at] * offset
    mean = np.diff(integral) / np.diff(edges)
    # The largest count in a window: the step holding at its start or one starting inside.
    last_inside = np.searchsorted(times, edges[1:], side="left") - 1
    bounds = np.ravel(np.column_stack((at[:-1], last_inside + 1)))
    largest = np.maximum.reduceat(np.r_[counts, 0.0], bounds)[::2]
    return mean, largest


def _dtypes() -> dict[str, str]:
    return {name: "int64" if name in ("n", "n_ok") else "float64" for name in WINDOW_COLUMNS}
