"""Exact figures of a run for the report's tables: counts, rates, percentiles, errors.

Everything is computed from the raw records (no histogram, no bucketing), with the same
rules as the SLA judge, from the same reading of the run (``sla.reading``): the rows of
the measured window (warm-up and requests cancelled by the end of the test excluded),
latency metrics over the successful requests that have them, ``itl_ms`` pooling every
chunk gap, rates over the requests that ended in the window (``sla.metrics.throughput``),
and percentiles as numpy's default (linear) percentile. Failures are counted by their
class (``sla.files.error_class``), each with its most frequent raw message as an example.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reports.sizes import size_mismatches
from sla.files.error_class import CLIENT_ERROR
from sla.files.run import Run
from sla.metrics import FloatArray, floats, throughput
from sla.reading import Reading, read_run
from sla.server_side import ServerSide, server_side
from sla.spec import LATENCY_METRICS

__all__ = [
    "PERCENTILES",
    "EndpointStats",
    "ErrorCount",
    "MetricStats",
    "RunSummary",
    "summarize_run",
]

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
    """The failed measured requests of one error class (``sla.files.error_class``): how
    many, their HTTP statuses (most frequent first; 0: no response), and the most frequent
    raw message among them (``HTTP <status> (no error text)`` when there was none)."""

    error_class: str
    count: int
    statuses: tuple[int, ...]
    example: str

    @property
    def statuses_text(self) -> str:
        """``HTTP 503, HTTP 500``, ``no response``, or both kinds."""
        return ", ".join("no response" if code == 0 else f"HTTP {code}" for code in self.statuses)


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
    """Every recorded row is in exactly one of ``measured``, ``warmup`` (started before
    ``measured_from``), ``cancelled`` (cut off by the end of the test, wherever it started),
    ``late`` (started after ``ended_at``) and ``unstarted`` (no start time): see
    ``accounted``. ``backoff_s`` is how long closed-loop users waited after the measured
    requests that asked them to (429/503, failed connections: the ``backoff_ms`` column),
    ``backoff_requests`` how many did. ``dropped`` comes from run.json (open-loop sends
    dropped at the in-flight bound, recorded as failed rows, so already in those counts),
    None when absent; ``run_json_requests`` is run.json ``requests`` (None when absent), of
    which ``run_json_not_written`` (run.json ``requests_not_written``, None when absent)
    could not be written when a write failed: the file holds the rest. The counts are of
    requests started in the window; the rates (``*_per_s``) of requests that ended in it
    (``sla.reading.Reading.completed``)."""

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
    errors: tuple[ErrorCount, ...]  # by class, the most frequent first, at most MAX_ERROR_ROWS
    other_errors: int  # failures whose class is not among ``errors``
    endpoints: tuple[EndpointStats, ...]  # the busiest first, at most MAX_ENDPOINT_ROWS
    other_endpoints: int  # endpoints not listed
    late: int = 0
    unstarted: int = 0
    run_json_requests: int | None = None
    run_json_not_written: int | None = None
    backoff_s: float = 0.0
    backoff_requests: int = 0
    # Sizes the server did not get as asked, one line each with the fix (reports.sizes).
    size_warnings: tuple[str, ...] = ()
    # Server timing families, energy per token, burst delivery (sla.server_side).
    server_side: ServerSide | None = None

    @property
    def accounted(self) -> int:
        """measured + warm-up + cancelled + late + unstarted: equals ``recorded``."""
        return self.measured + self.warmup + self.cancelled + self.late + self.unstarted


def summarize_run(run: Run | Reading) -> RunSummary:
    """The exact summary of ``run`` (pure), or of a reading already made of it: its window
    and metrics are not derived again (a million rows take about two seconds)."""
    reading = run if isinstance(run, Reading) else read_run(run)
    rows = reading.measured
    ok_rows = reading.measured_ok
    window_s = reading.window_s
    rates = _rates(reading.completed, window_s)
    errors, other = _errors(rows[~rows["ok"].to_numpy(dtype=bool)])
    endpoints, other_endpoints = _endpoints(rows)
    dropped, requests = reading.meta.get("dropped"), reading.meta.get("requests")
    backoff_ms = floats(rows, "backoff_ms") if "backoff_ms" in rows else np.zeros(0)
    return RunSummary(
        recorded=len(reading.rows),
        measured=len(rows),
        ok=len(ok_rows),
        failed=len(rows) - len(ok_rows),
        cancelled=int(reading.cancelled.sum()),
        warmup=reading.warmup_rows,
        dropped=_count(dropped),
        window_s=window_s,
        requests_per_s=rates["requests_per_s"],
        output_tokens_per_s=rates["output_tokens_per_s"],
        errors_per_s=rates["errors_per_s"],
        input_tokens=_int_sum(ok_rows["input_tokens"]),
        output_tokens=_int_sum(ok_rows["output_tokens"]),
        metrics=tuple(_metric_stats(m, reading.latency_values(m)) for m in LATENCY_METRICS),
        errors=errors,
        other_errors=other,
        endpoints=endpoints,
        other_endpoints=other_endpoints,
        late=reading.late_rows,
        unstarted=reading.unstarted_rows,
        run_json_requests=_count(requests),
        run_json_not_written=_count(reading.meta.get("requests_not_written")),
        backoff_s=float(np.nansum(backoff_ms)) / 1000.0,
        backoff_requests=int((backoff_ms > 0).sum()),
        size_warnings=size_mismatches(reading.meta, ok_rows),
        server_side=server_side(reading),
    )


def _count(value: object) -> int | None:
    """A count from run.json, None when absent or not an integer."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _rates(completed: pd.DataFrame, window_s: float | None) -> dict[str, float]:
    """Rates over the window of the requests that ended in it (NaN without a window)."""
    if window_s is None or not window_s > 0:
        return dict.fromkeys(("requests_per_s", "output_tokens_per_s", "errors_per_s"), math.nan)
    return throughput(completed, window_s)


def _int_sum(column: pd.Series) -> int:
    return int(pd.to_numeric(column).fillna(0).sum())


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
            "error_class": failed["error_class"].astype(object).fillna(CLIENT_ERROR).astype(str),
            "reason": failed["error"].astype(object).fillna("").astype(str),
            "status": pd.to_numeric(failed["status"]).fillna(0).astype(np.int64),
        }
    ).reset_index(drop=True)
    sizes = keys["error_class"].value_counts()
    # Most frequent first; ties in a stable, readable order (by class name).
    ranked = sorted(sizes.items(), key=lambda item: (-int(item[1]), str(item[0])))
    top = ranked[:MAX_ERROR_ROWS]
    errors = tuple(_class_count(keys[keys["error_class"] == name], str(name)) for name, _ in top)
    return errors, int(sizes.sum() - sum(int(n) for _, n in top))


def _class_count(rows: pd.DataFrame, error_class: str) -> ErrorCount:
    statuses = rows["status"].value_counts()
    by_status = sorted(statuses.items(), key=lambda item: (-int(item[1]), int(item[0])))
    messages = rows[["reason", "status"]].value_counts().reset_index(name="n")
    messages = messages.sort_values(["n", "reason", "status"], ascending=[False, True, True])
    reason, status = messages.iloc[0]["reason"], messages.iloc[0]["status"]
    return ErrorCount(
        error_class=error_class,
        count=len(rows),
        statuses=tuple(int(code) for code, _ in by_status),
        example=_reason(str(reason), int(status)),
    )


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
