"""Judge a run against an SLA spec: ``evaluate(spec, run) -> Verdict`` (pure).

How each objective is decided, at the spec's ``confidence`` c (default 0.95):

Samples. The rows judged are those of the measured window of the run's reading
(``sla.reading``: the run's warm-up and requests cancelled by the end of the test are
excluded), minus a further ``warmup`` from the spec (counted from the run's
``measured_from``, else ``started_at``), then the spec's ``filters`` (endpoint label; the
run.json ``scenario``). Latency metrics use the successful requests with a value for that
metric (``ttft_ms`` exists only for streamed responses, ``tpot_ms`` only with >= 2 output
tokens); ``itl_ms`` pools every chunk gap of those requests. ``error_rate`` and
``goodput_ratio`` count every row (an error is never good).
A request is *good* when it succeeded and every ``per_request`` limit holds for it; a metric
it lacks (NaN) fails its limit. ``per_request.itl_ms`` limits the largest gap of the request.
Rates count the requests that *ended* inside the measured window, whenever they started
(``Reading.completed``: those cut off by the end of the test would otherwise make every
rate low by about latency / window), and divide by its length: ``ended_at`` minus
``measured_from`` plus the spec's warm-up (the last ``done_at`` stands in for ``ended_at``
when a killed run has none).

Bounds (``sla.stats``). ``low``/``high`` are each a one-sided bound at confidence c:
order statistics with exact binomial ranks for percentiles (distribution-free: exact for
continuous data, conservative with ties), the CLT for a mean, Wilson score for
``error_rate``/``goodput_ratio``, a compound-Poisson normal approximation for
``throughput_rps``, ``output_tokens_per_s`` and ``goodput_rps``. The printed "95% CI lo–hi"
is this pair; as a two-sided interval it covers the true value with probability >= 2c - 1.

Status. For a ``max`` limit: PASS when ``high <= limit``, FAIL when ``low > limit``, else
INCONCLUSIVE (the interval holds the limit, or the bound does not exist yet: a p99 needs
n >= 299 at 95% before its largest sample bounds it, and the message says how many are
needed). A ``min`` limit mirrors it: PASS when ``low >= limit``, FAIL when ``high < limit``.
So PASS and FAIL are each wrong with probability at most 1 - c. A ``mean`` needs n >= 30,
else INCONCLUSIVE. ``max``/``min`` stats compare the observed extreme directly (no
interval), and so do ``error_rate`` max 0 and ``goodput_ratio`` min 1 (no error, no bad
request at all: a statement about this run, since no sample proves a rate of exactly 0).
No samples at all is INCONCLUSIVE. The observed value of a percentile is numpy's default
(linear) percentile of the samples. The bounds assume independent samples; the chunk gaps
pooled for ``itl_ms`` are not (gaps of one request move together), so its interval is
narrower than it should be.

Overall: FAIL if any objective fails, else INCONCLUSIVE if any is, else PASS.

Exit codes (``exit_code``), one per outcome, in this order of precedence:
``EXIT_FAIL`` 1 > ``EXIT_SATURATED`` 4 > ``EXIT_INCONCLUSIVE`` 3 > ``EXIT_PASS`` 0;
``EXIT_USAGE`` 2 is a bad spec or argument. A saturated load generator (run.json
``generator.saturated``) overrides PASS and INCONCLUSIVE because its run cannot be trusted:
it delivered less load than asked, so a PASS may hide a server that fails at the intended
load, and the fix for both is the same (more load-generator processes). It does not
override FAIL: a FAIL needs a person's attention either way, an error-rate failure is the
server's whatever the client's CPU, and the table and verdict.json still say that the
generator was saturated (a busy client can add delay, so re-check a latency FAIL then).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sla import stats
from sla.errors import EXIT_USAGE
from sla.files.run import Run
from sla.fmt import fmt_ci, fmt_confidence, fmt_value, op_symbol
from sla.metrics import FloatArray, floats
from sla.reading import BoolArray, Reading, read_run
from sla.spec import LATENCY_METRICS, PROPORTION_METRICS, Objective, Spec

__all__ = [
    "EXIT_FAIL",
    "EXIT_INCONCLUSIVE",
    "EXIT_PASS",
    "EXIT_SATURATED",
    "EXIT_USAGE",
    "Counts",
    "ObjectiveResult",
    "Samples",
    "Status",
    "Verdict",
    "evaluate",
    "evaluate_segments",
    "exit_code",
    "judged_samples",
]

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_INCONCLUSIVE = 3
EXIT_SATURATED = 4


class Status(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"


@dataclass(frozen=True, slots=True)
class ObjectiveResult:
    """The judgement of one objective. ``margin`` is signed so that positive is headroom
    (``limit - observed`` for a max, ``observed - limit`` for a min); ``margin_rel`` is
    ``margin / limit``. ``ci_low``/``ci_high`` are one-sided bounds at the confidence."""

    index: int
    metric: str
    stat: str | None
    op: str  # "max" (observed must be <= limit) or "min" (>=)
    limit: float
    observed: float
    margin: float
    margin_rel: float
    n: int
    ci_low: float | None
    ci_high: float | None
    status: Status
    message: str

    @property
    def label(self) -> str:
        return f"{self.stat} {self.metric}" if self.stat else self.metric

    @property
    def direct(self) -> bool:
        """Judged on the observed value alone, so it has no interval (see ``_direct``)."""
        return _direct(self.stat, self.metric, self.op, self.limit)


@dataclass(frozen=True, slots=True)
class Counts:
    """Rows recorded, in the judged window (after warm-up, cancellations and filters),
    successful, failed, and good (None without ``per_request`` limits)."""

    recorded: int
    measured: int
    ok: int
    failed: int
    good: int | None


@dataclass(frozen=True, slots=True)
class Verdict:
    spec_name: str
    spec_source: str
    run_path: str
    status: Status
    saturated: bool
    confidence: float
    window_s: float | None
    counts: Counts
    objectives: tuple[ObjectiveResult, ...]


def exit_code(verdict: Verdict, *, allow_inconclusive: bool = False) -> int:
    """The process exit code for a verdict (precedence in the module docstring)."""
    if verdict.status is Status.FAIL:
        return EXIT_FAIL
    if verdict.saturated:
        return EXIT_SATURATED
    if verdict.status is Status.INCONCLUSIVE and not allow_inconclusive:
        return EXIT_INCONCLUSIVE
    return EXIT_PASS


@dataclass(frozen=True, slots=True)
class Samples:
    """What ``evaluate`` judges: ``rows`` started in the measured window (latencies and
    proportions), ``rate_rows`` ended in it (rates: ``Reading.completed``), both with
    the per-request metric columns and the spec's filters applied; ``good`` and
    ``rate_good`` mark the good ones (None without ``per_request`` limits); ``itl`` the
    pooled chunk gaps of the successful ``rows``."""

    rows: pd.DataFrame
    good: BoolArray | None
    window_s: float | None
    rate_rows: pd.DataFrame
    rate_good: BoolArray | None
    itl: FloatArray


RunLike = Run | Reading


def reading_for(spec: Spec, run: RunLike) -> Reading:
    """The reading ``spec`` judges: ``run`` read with the spec's warm-up (a reading given
    keeps its derived rows; only its window moves)."""
    if isinstance(run, Reading):
        return run.with_warmup(spec.warmup_s)
    return read_run(run, spec.warmup_s)


def evaluate(spec: Spec, run: RunLike) -> Verdict:
    """Judge ``run`` (a run, or a reading of it) against ``spec``; pure."""
    return evaluate_segments(spec, [run])


def evaluate_segments(spec: Spec, runs: Sequence[RunLike]) -> Verdict:
    """Judge several runs as one: the segments of one load level (an extended step of a
    capacity search). Each keeps its own measured window; the samples are pooled and rates
    divide by the sum of the windows, as if the windows followed each other."""
    if not runs:
        raise ValueError("evaluate_segments needs at least one run")
    readings = [reading_for(spec, run) for run in runs]
    return judge(spec, readings, judged_samples(spec, *readings))


def judge(spec: Spec, readings: Sequence[Reading], samples: Samples) -> Verdict:
    """The verdict on ``samples``, the ``judged_samples`` of ``readings``."""
    results = tuple(_judge(obj, samples, spec.confidence) for obj in spec.objectives)
    return Verdict(
        spec_name=spec.name,
        spec_source=spec.source,
        run_path=str(readings[0].path),
        status=_overall({r.status for r in results}),
        saturated=any(reading.saturated for reading in readings),
        confidence=spec.confidence,
        window_s=samples.window_s,
        counts=_counts(readings, samples),
        objectives=results,
    )


def _overall(statuses: set[Status]) -> Status:
    if Status.FAIL in statuses:
        return Status.FAIL
    if Status.INCONCLUSIVE in statuses:
        return Status.INCONCLUSIVE
    return Status.PASS


def _counts(readings: Sequence[Reading], samples: Samples) -> Counts:
    ok = int(samples.rows["ok"].sum())
    return Counts(
        recorded=sum(len(reading.rows) for reading in readings),
        measured=len(samples.rows),
        ok=ok,
        failed=len(samples.rows) - ok,
        good=None if samples.good is None else int(samples.good.sum()),
    )


def judged_samples(spec: Spec, *runs: RunLike) -> Samples:
    """Everything ``evaluate`` judges ``run`` on (see ``Samples``); for several runs
    (segments), their samples pooled and the sum of their windows."""
    parts = [_select(spec, reading_for(spec, run)) for run in runs]
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
    )


def _pooled(masks: Sequence[BoolArray | None]) -> BoolArray | None:
    present = [m for m in masks if m is not None]
    return np.concatenate(present) if len(present) == len(masks) else None


def _select(spec: Spec, reading: Reading) -> Samples:
    kept = filter_mask(spec, reading)
    measured = reading.measured_mask & kept
    rows = reading.rows[measured]
    rate_rows = reading.rows[reading.completed_mask & kept]
    if kept.all():
        itl = reading.itl_ms()
    else:
        itl = reading.pooled_gaps(measured & reading.rows["ok"].to_numpy(dtype=bool))
    good = _good(rows, spec.per_request) if spec.per_request else None
    rate_good = _good(rate_rows, spec.per_request) if spec.per_request else None
    return Samples(rows, good, reading.window_s, rate_rows, rate_good, itl)


def filter_mask(spec: Spec, reading: Reading) -> BoolArray:
    """The rows the spec's ``filters`` keep (endpoint label; the run.json scenario)."""
    rows = reading.rows
    if spec.filters.scenarios and reading.meta.get("scenario") not in spec.filters.scenarios:
        return np.zeros(len(rows), dtype=bool)
    if spec.filters.endpoints:
        return rows["endpoint"].isin(spec.filters.endpoints).to_numpy(dtype=bool)
    return np.ones(len(rows), dtype=bool)


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


def _latency_values(samples: Samples, metric: str) -> FloatArray:
    if metric == "itl_ms":
        return samples.itl
    ok_rows = samples.rows[samples.rows["ok"].to_numpy(dtype=bool)]
    values = floats(ok_rows, metric)
    return values[~np.isnan(values)]


def _judge(obj: Objective, samples: Samples, confidence: float) -> ObjectiveResult:
    if obj.metric in LATENCY_METRICS:
        values = _latency_values(samples, obj.metric)
        n, interval = len(values), _latency_interval(obj, values, confidence)
    elif obj.metric in PROPORTION_METRICS:
        n = len(samples.rows)
        if obj.metric == "error_rate":
            count = n - int(samples.rows["ok"].sum())
        else:
            count = int(samples.good.sum()) if samples.good is not None else 0
        interval = stats.wilson_interval(count, n, confidence)
        if n and _direct(obj.stat, obj.metric, obj.op, obj.limit):
            interval = stats.Interval(interval.estimate, interval.estimate, interval.estimate)
    else:
        n, interval = _rate(obj.metric, samples, confidence)
    return _result(obj, interval, n, confidence)


def _direct(stat: str | None, metric: str, op: str, limit: float) -> bool:
    """Judged on the observed value alone: a max/min stat, ``error_rate`` max 0 or
    ``goodput_ratio`` min 1 (no error, no bad request allowed)."""
    if stat in ("max", "min"):
        return True
    return metric in PROPORTION_METRICS and limit == (0.0 if op == "max" else 1.0)


def _latency_interval(obj: Objective, values: FloatArray, confidence: float) -> stats.Interval:
    if obj.stat == "mean":
        return stats.mean_interval(values, confidence)
    if obj.stat in ("max", "min"):
        if not len(values):
            return stats.Interval(math.nan, None, None)
        extreme = float(np.max(values) if obj.stat == "max" else np.min(values))
        return stats.Interval(extreme, extreme, extreme)  # no sampling error to bound
    return stats.percentile_interval(values, obj.percentile or 50.0, confidence)


def _rate(metric: str, samples: Samples, confidence: float) -> tuple[int, stats.Interval]:
    ok = samples.rate_rows["ok"].to_numpy(dtype=bool)
    if metric == "goodput_rps" and samples.rate_good is not None:
        weights = samples.rate_good[samples.rate_good].astype(np.float64)
    elif metric == "output_tokens_per_s":
        weights = np.nan_to_num(floats(samples.rate_rows, "output_tokens")[ok])
    else:
        weights = ok[ok].astype(np.float64)
    window = samples.window_s
    if window is None or not window > 0:
        return len(weights), stats.Interval(math.nan, None, None)
    total = float(weights.sum())
    return len(weights), stats.rate_interval(
        total, float(np.square(weights).sum()), window, confidence
    )


def _result(obj: Objective, interval: stats.Interval, n: int, confidence: float) -> ObjectiveResult:
    observed = interval.estimate
    status, why = _decide(obj, interval, n, confidence)
    margin = obj.limit - observed if obj.op == "max" else observed - obj.limit
    extreme = _direct(obj.stat, obj.metric, obj.op, obj.limit)
    return ObjectiveResult(
        index=obj.index,
        metric=obj.metric,
        stat=obj.stat,
        op=obj.op,
        limit=obj.limit,
        observed=observed,
        margin=margin,
        margin_rel=margin / obj.limit if obj.limit else math.nan,
        n=n,
        ci_low=None if extreme else interval.low,
        ci_high=None if extreme else interval.high,
        status=status,
        message=_message(obj, interval, n, confidence, status, why),
    )


def _decide(obj: Objective, iv: stats.Interval, n: int, confidence: float) -> tuple[Status, str]:
    """The status, and for INCONCLUSIVE the reason (a clause for the message)."""
    if math.isnan(iv.estimate):
        if obj.metric in LATENCY_METRICS:
            why = f"no samples: no successful request in the judged window has {obj.metric}"
        elif obj.metric in PROPORTION_METRICS:
            why = "no samples: no request in the judged window"
        else:
            why = "the measured window is empty (check run.json ended_at)"
        return Status.INCONCLUSIVE, why
    if obj.stat == "mean" and n < stats.MIN_SAMPLES_MEAN:
        return Status.INCONCLUSIVE, f"a mean needs n ≥ {stats.MIN_SAMPLES_MEAN} (n={n})"
    low, high, limit = iv.low, iv.high, obj.limit
    if obj.op == "max":
        if high is not None and high <= limit:
            return Status.PASS, ""
        if low is not None and low > limit:
            return Status.FAIL, ""
    else:
        if low is not None and low >= limit:
            return Status.PASS, ""
        if high is not None and high < limit:
            return Status.FAIL, ""
    deciding = high if obj.op == "max" else low
    percentile = obj.percentile
    if deciding is None and percentile is not None:
        side: Literal["low", "high"] = "high" if obj.op == "max" else "low"
        needs = stats.samples_needed(percentile / 100.0, confidence, side)
        return Status.INCONCLUSIVE, (
            f"n={n} is too few to bound {obj.stat} at {fmt_confidence(confidence)} confidence; "
            f"needs n ≥ {needs}"
        )
    ci = fmt_ci(obj.metric, low, high)
    why = f"the {fmt_confidence(confidence)} CI {ci} includes the limit (n={n})"
    if obj.metric in PROPORTION_METRICS:
        needs_n = stats.wilson_samples_needed(iv.estimate, limit, obj.op, confidence)
        if needs_n is not None:
            why += f"; about {needs_n} requests would settle it at this rate"
    return Status.INCONCLUSIVE, why


def _message(
    obj: Objective, iv: stats.Interval, n: int, confidence: float, status: Status, why: str
) -> str:
    limit = f"{op_symbol(obj.op, True)} {fmt_value(obj.metric, obj.limit)}"
    if math.isnan(iv.estimate):
        return f"[{obj.label}] INCONCLUSIVE: {why} (limit {limit})"
    holds = iv.estimate <= obj.limit if obj.op == "max" else iv.estimate >= obj.limit
    head = f"[{obj.label}] {fmt_value(obj.metric, iv.estimate)} {op_symbol(obj.op, holds)} "
    head += fmt_value(obj.metric, obj.limit)
    if status is Status.INCONCLUSIVE:
        return f"{head}, INCONCLUSIVE: {why}"
    if _direct(obj.stat, obj.metric, obj.op, obj.limit):
        return f"{head} (n={n})"
    ci = fmt_ci(obj.metric, iv.low, iv.high)
    return f"{head} (n={n}, {fmt_confidence(confidence)} CI {ci})"
