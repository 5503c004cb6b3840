"""Exact figures of a run for the report's tables: counts, rates, percentiles, errors.

Everything is computed from the raw records (no histogram, no bucketing), with the same
rules as the SLA judge: the rows of the measured window (``sla.metrics.measured``: warm-up
and requests cancelled by the end of the test excluded), latency metrics over the
successful requests that have them, ``itl_ms`` pooling every chunk gap, and percentiles
as numpy's default (linear) percentile. A run killed before it was closed has no
``ended_at``; its last ``done_at`` stands in, as in ``sla.verdict``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sla.metrics import FloatArray, completed, measured, with_request_metrics
from sla.records import CANCELLED_ERROR, Run

__all__ = [
    "PERCENTILES",
    "SUMMARY_METRICS",
    "EndpointStats",
    "ErrorCount",
    "MetricStats",
    "RunSummary",
    "summarize_run",
]

SUMMARY_METRICS = ("ttft_ms", "itl_ms", "tpot_ms", "latency_ms", "schedule_lag_ms")
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
MAX_ERROR_ROWS = 20
MAX_ENDPOINT_ROWS = 30


@dataclass(frozen=True, slots=True)
class MetricStats:
    """One metric over the successful measured requests; NaN everywhere when ``n == 0``."""

    metric: str
    n: int
    mean: float
    p50: float
    p90: float
    p99: float
    p99_9: float
    max: float


@dataclass(frozen=True, slots=True)
class ErrorCount:
    """Failed measured requests with one error text and HTTP status (0: no response)."""

    reason: str
    status: int
    count: int


@dataclass(frozen=True, slots=True)
class EndpointStats:
    endpoint: str
    requests: int
    ok: int
    failed: int
    latency_p50_ms: float
    latency_p99_ms: float


@dataclass(frozen=True, slots=True)
class RunSummary:
    """``warmup`` counts rows that started before ``measured_from``; ``dropped`` comes
    from run.json (open-loop sends dropped at the in-flight bound), None when absent. The
    counts are of requests started in the window; the rates (``*_per_s``) of requests that
    ended in it (``sla.metrics.completed``)."""

    recorded: int
    measured: int
    ok: int
    failed: int
    cancelled: int
    warmup: int
    dropped: int | None
    window_s: float | None
    requests_per_s: float
    output_tokens_per_s: float
    errors_per_s: float
    input_tokens: int
    output_tokens: int
    metrics: tuple[MetricStats, ...]
    errors: tuple[ErrorCount, ...]  # the most frequent first, at most MAX_ERROR_ROWS
    other_errors: int  # failures whose reason is not among ``errors``
    endpoints: tuple[EndpointStats, ...]  # the busiest first, at most MAX_ENDPOINT_ROWS
    other_endpoints: int  # endpoints not listed


def summarize_run(run: Run) -> RunSummary:
    """The exact summary of ``run`` (pure; a million rows take about two seconds)."""
    # Row selection copies every column it keeps: leave out the ids and the gap lists
    # (16 million values in a big run) and pick the gaps by position instead.
    slim = run.requests.drop(columns=["request_id", "worker", "chunk_gaps_ms"], errors="ignore")
    df = with_request_metrics(slim).assign(_pos=np.arange(len(slim)))
    meta = _window_meta(run.meta, df)
    rows = measured(df, meta)
    ok_mask = rows["ok"].to_numpy(dtype=bool)
    ok_rows = rows[ok_mask]
    gaps = _gaps_ms(run.requests, ok_rows["_pos"].to_numpy(dtype=np.int64))
    window_s = _window_s(meta)
    n_ok = int(ok_mask.sum())
    out_tokens = _int_sum(ok_rows["output_tokens"])
    per_s = 1.0 / window_s if window_s is not None and window_s > 0 else math.nan
    # Rates count the requests that ended in the window (sla.metrics.completed).
    ended = completed(df, meta)
    ended_ok = ended["ok"].to_numpy(dtype=bool)
    cancelled = int((df["error"] == CANCELLED_ERROR).to_numpy(dtype=bool, na_value=False).sum())
    warmup = 0
    if meta.get("measured_from") is not None:
        warmup = int((df["start"].to_numpy(dtype=np.float64) < meta["measured_from"]).sum())
    errors, other = _errors(rows[~ok_mask])
    endpoints, other_endpoints = _endpoints(rows)
    dropped = run.meta.get("dropped")
    return RunSummary(
        recorded=len(df),
        measured=len(rows),
        ok=n_ok,
        failed=len(rows) - n_ok,
        cancelled=cancelled,
        warmup=warmup,
        dropped=dropped if isinstance(dropped, int) and not isinstance(dropped, bool) else None,
        window_s=window_s,
        requests_per_s=int(ended_ok.sum()) * per_s,
        output_tokens_per_s=_int_sum(ended[ended_ok]["output_tokens"]) * per_s,
        errors_per_s=int((~ended_ok).sum()) * per_s,
        input_tokens=_int_sum(ok_rows["input_tokens"]),
        output_tokens=out_tokens,
        metrics=tuple(
            _metric_stats(m, gaps if m == "itl_ms" else _values(ok_rows, m))
            for m in SUMMARY_METRICS
        ),
        errors=errors,
        other_errors=other,
        endpoints=endpoints,
        other_endpoints=other_endpoints,
    )


def _window_meta(meta: dict[str, Any], df: pd.DataFrame) -> dict[str, Any]:
    out = dict(meta)
    if out.get("measured_from") is None:
        out["measured_from"] = out.get("started_at")
    done = df["done_at"].dropna()
    if out.get("ended_at") is None and len(done):
        out["ended_at"] = float(done.max())
    return out


def _window_s(meta: dict[str, Any]) -> float | None:
    begin, end = meta.get("measured_from"), meta.get("ended_at")
    if begin is None or end is None:
        return None
    return float(end) - float(begin)


def _int_sum(column: pd.Series) -> int:
    return int(pd.to_numeric(column).fillna(0).sum())


def _values(ok_rows: pd.DataFrame, metric: str) -> FloatArray:
    values = pd.to_numeric(ok_rows[metric]).to_numpy(dtype=np.float64, na_value=np.nan)
    return values[~np.isnan(values)]


def _gaps_ms(requests: pd.DataFrame, positions: npt.NDArray[np.int64]) -> FloatArray:
    """Every chunk gap of the rows at ``positions`` (``sla.metrics.itl_ms`` of those rows)."""
    lists = pa.array(requests["chunk_gaps_ms"], type=pa.list_(pa.float64()))
    flat = pc.list_flatten(lists).to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    keep = np.zeros(len(requests), dtype=bool)
    keep[positions] = True
    values = np.asarray(flat[keep[parents]], dtype=np.float64)
    return values[~np.isnan(values)]


def _metric_stats(metric: str, values: FloatArray) -> MetricStats:
    if not len(values):
        nan = math.nan
        return MetricStats(metric, 0, nan, nan, nan, nan, nan, nan)
    p50, p90, p99, p99_9 = (float(x) for x in np.percentile(values, PERCENTILES))
    return MetricStats(
        metric=metric,
        n=len(values),
        mean=float(values.mean()),
        p50=p50,
        p90=p90,
        p99=p99,
        p99_9=p99_9,
        max=float(values.max()),
    )


def _errors(failed: pd.DataFrame) -> tuple[tuple[ErrorCount, ...], int]:
    if failed.empty:
        return (), 0
    keys = pd.DataFrame(
        {
            "reason": failed["error"].astype(object).fillna("").astype(str).to_numpy(),
            "status": pd.to_numeric(failed["status"]).fillna(0).astype(np.int64).to_numpy(),
        }
    )
    counts = keys.value_counts().rename("count").reset_index()
    reasons = zip(counts["reason"], counts["status"], strict=True)
    counts["reason"] = [_reason(str(reason), int(status)) for reason, status in reasons]
    # Most frequent first; ties in a stable, readable order (by text, then status).
    counts = counts.sort_values(["count", "reason", "status"], ascending=[False, True, True])
    top = counts.iloc[:MAX_ERROR_ROWS]
    errors = tuple(
        ErrorCount(reason=str(reason), status=int(status), count=int(n))
        for reason, status, n in top[["reason", "status", "count"]].itertuples(index=False)
    )
    return errors, int(counts["count"].sum() - top["count"].sum())


def _reason(text: str, status: int) -> str:
    return text if text else f"HTTP {status} (no error text)"


def _endpoints(rows: pd.DataFrame) -> tuple[tuple[EndpointStats, ...], int]:
    if rows.empty:
        return (), 0
    codes, names = pd.factorize(rows["endpoint"].astype(object).fillna("").astype(str))
    sizes = np.bincount(codes, minlength=len(names))
    ok_all = rows["ok"].to_numpy(dtype=bool)
    latency_all = rows["latency_ms"].to_numpy(dtype=np.float64)
    busiest = np.argsort(-sizes, kind="stable")[:MAX_ENDPOINT_ROWS]
    out = []
    for code in busiest:
        in_group = codes == code
        ok = ok_all & in_group
        latency = latency_all[ok]
        latency = latency[~np.isnan(latency)]
        p50, p99 = np.percentile(latency, [50, 99]) if len(latency) else (math.nan, math.nan)
        n, n_ok = int(sizes[code]), int(ok.sum())
        out.append(EndpointStats(str(names[code]), n, n_ok, n - n_ok, float(p50), float(p99)))
    return tuple(out), len(names) - len(busiest)
