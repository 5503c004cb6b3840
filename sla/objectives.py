"""One objective of a spec, judged on the samples of a run: ``judge_objective`` (pure).

Each objective is decided at the spec's ``confidence`` c (default 0.95) on the samples of
``sla.samples``.

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
No samples at all is INCONCLUSIVE: also for a rate when no request matched the filters (a
rate of nothing is no rate, not 0/s, so never a PASS or a FAIL), and for
``output_tokens_per_s`` when no successful request has a token count (embeddings, KServe:
their rate of tokens is unknown, not 0). The observed value of a percentile is numpy's default
(linear) percentile of the samples. The bounds assume independent samples; the chunk gaps
pooled for ``itl_ms`` are not (gaps of one request move together), so a percentile of
``itl_ms`` takes the wider of those bounds and a bootstrap's that resamples whole requests,
and has a bound only with as many requests as the percentile needs samples
(``sla.stats.clustered_percentile_interval``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import numpy as np

from sla import stats
from sla.fmt import fmt_ci, fmt_confidence, fmt_value, op_symbol
from sla.metrics import FloatArray, floats
from sla.samples import Samples
from sla.spec import LATENCY_METRICS, PROPORTION_METRICS, Filters, Objective


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
    where: str = ""  # the objective's own filter (``Filters.text``); "" judges every request

    @property
    def label(self) -> str:
        base = f"{self.stat} {self.metric}" if self.stat else self.metric
        return f"{base} [{self.where}]" if self.where else base

    @property
    def direct(self) -> bool:
        """Judged on the observed value alone, so it has no interval (see ``_direct``)."""
        return _direct(self.stat, self.metric, self.op, self.limit)


NO_VALUE = stats.Interval(math.nan, None, None)
# Why an output_tokens_per_s objective has no value on a run whose answers carry no count.
NO_TOKEN_COUNTS = (
    "no token counts: no successful request in the judged window has output_tokens "
    "(embeddings and KServe answers carry none), so its rate of tokens is unknown, not 0"
)


def judge_objective(obj: Objective, samples: Samples, confidence: float) -> ObjectiveResult:
    """``obj`` judged on ``samples`` at ``confidence`` (see the module)."""
    if not len(samples.rows) and not len(samples.rate_rows):
        # No request matched (a filter that keeps none, a window with none in it): nothing
        # was measured, so never a PASS or a FAIL, whatever a rate of nothing (0/s) says.
        why = samples.empty or no_match_reason(obj.where or samples.filters)
        return _result(obj, NO_VALUE, 0, confidence, why)
    if obj.metric == "itl_ms" and obj.percentile is not None:
        # A request's gaps move together: bounds that hold for whole requests resampled.
        n = len(samples.itl)
        interval = stats.clustered_percentile_interval(
            samples.itl, samples.itl_requests, obj.percentile, confidence
        )
    elif obj.metric in LATENCY_METRICS:
        values = _latency_values(samples, obj.metric)
        n, interval = len(values), _latency_interval(obj, values, confidence)
    elif obj.metric in PROPORTION_METRICS:
        n = len(samples.rows)
        if obj.metric == "error_rate":
            count = n - int(samples.rows["ok"].sum())
        else:
            count = int(samples.good.sum()) if samples.good is not None else 0
        interval = proportion_interval(obj, count, n, confidence)
    elif obj.metric == "output_tokens_per_s" and not _tokens_counted(samples):
        return _result(obj, NO_VALUE, 0, confidence, NO_TOKEN_COUNTS)
    else:
        n, interval = _rate(obj.metric, samples, confidence)
    return _result(obj, interval, n, confidence)


def no_match_reason(filters: Filters) -> str:
    """Why an objective has no sample at all when no request matched: ``filters`` names
    the objective's ``where`` (which narrows the spec's), else the spec's ``filters``."""
    if filters == Filters():
        return "no samples: no request in the judged window"
    why = f"no samples: no request in the judged window matches {filters.text}"
    if filters.turns:
        why += " (requests of single-turn traffic have no turn)"
    return why


def proportion_interval(obj: Objective, count: int, n: int, confidence: float) -> stats.Interval:
    """``count / n`` with its Wilson bounds, pinned at 0 and 1 where the count is none or
    all of ``n`` (the bound there is exact: arithmetic would leave noise such as 3e-18, which
    prints as a lower bound of "0.0000000000000003%"); judged on its value alone when
    ``_direct``."""
    interval = stats.wilson_interval(count, n, confidence)
    if not n:
        return interval
    if _direct(obj.stat, obj.metric, obj.op, obj.limit):
        return stats.Interval(interval.estimate, interval.estimate, interval.estimate)
    low = 0.0 if count == 0 else interval.low
    high = 1.0 if count == n else interval.high
    return stats.Interval(interval.estimate, low, high)


def _direct(stat: str | None, metric: str, op: str, limit: float) -> bool:
    """Judged on the observed value alone: a max/min stat, ``error_rate`` max 0 or
    ``goodput_ratio`` min 1 (no error, no bad request allowed)."""
    if stat in ("max", "min"):
        return True
    return metric in PROPORTION_METRICS and limit == (0.0 if op == "max" else 1.0)


def _latency_values(samples: Samples, metric: str) -> FloatArray:
    if metric == "itl_ms":
        return samples.itl
    ok_rows = samples.rows[samples.rows["ok"].to_numpy(dtype=bool)]
    values = floats(ok_rows, metric)
    return values[~np.isnan(values)]


def _latency_interval(obj: Objective, values: FloatArray, confidence: float) -> stats.Interval:
    if obj.stat == "mean":
        return stats.mean_interval(values, confidence)
    if obj.stat in ("max", "min"):
        if not len(values):
            return stats.Interval(math.nan, None, None)
        extreme = float(np.max(values) if obj.stat == "max" else np.min(values))
        return stats.Interval(extreme, extreme, extreme)  # no sampling error to bound
    return stats.percentile_interval(values, obj.percentile or 50.0, confidence)


def _tokens_counted(samples: Samples) -> bool:
    """Whether the successful requests ended in the window carry output token counts (any
    of them; none succeeded counts too: their tokens delivered are 0, truly)."""
    ok = samples.rate_rows["ok"].to_numpy(dtype=bool)
    return not ok.any() or bool(samples.rate_rows["output_tokens"][ok].notna().any())


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


def objective_result(
    obj: Objective, interval: stats.Interval, n: int, confidence: float, why: str = ""
) -> ObjectiveResult:
    """``obj`` decided on an ``interval`` of ``n`` samples already computed (the live
    judge, ``sla.provisional``, computes its own from a sketch); ``why`` says why an
    interval without a value has none."""
    return _result(obj, interval, n, confidence, why)


def _result(
    obj: Objective, interval: stats.Interval, n: int, confidence: float, why: str = ""
) -> ObjectiveResult:
    observed = interval.estimate
    status, why = _decide(obj, interval, n, confidence, why)
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
        where=obj.where.text if obj.where is not None else "",
    )


def _decide(
    obj: Objective, iv: stats.Interval, n: int, confidence: float, why: str
) -> tuple[Status, str]:
    """The status, and for INCONCLUSIVE the reason (a clause for the message; ``why``, when
    given, is the reason an interval without a value has none)."""
    if math.isnan(iv.estimate):
        return Status.INCONCLUSIVE, why or _no_value(obj.metric)
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
    return Status.INCONCLUSIVE, _undecided(obj, iv, n, confidence)


def _no_value(metric: str) -> str:
    """Why an objective on requests that matched has no value."""
    if metric in LATENCY_METRICS:
        return f"no samples: no successful request in the judged window has {metric}"
    if metric in PROPORTION_METRICS:
        return "no samples: no request in the judged window"
    return "the measured window is empty (check run.json ended_at)"


def _undecided(obj: Objective, iv: stats.Interval, n: int, confidence: float) -> str:
    """Why an objective with samples is INCONCLUSIVE: no bound yet, or the limit inside."""
    deciding = iv.high if obj.op == "max" else iv.low
    percentile = obj.percentile
    if deciding is None and percentile is not None:
        side: Literal["low", "high"] = "high" if obj.op == "max" else "low"
        needs = stats.samples_needed(percentile / 100.0, confidence, side)
        if obj.metric == "itl_ms" and n >= needs:  # enough gaps, too few requests
            return (
                f"n={n} gaps are too few requests to bound {obj.stat} at "
                f"{fmt_confidence(confidence)} confidence; needs ≥ {needs} requests (a "
                "request's gaps move together)"
            )
        return (
            f"n={n} is too few to bound {obj.stat} at {fmt_confidence(confidence)} confidence; "
            f"needs n ≥ {needs}"
        )
    ci = fmt_ci(obj.metric, iv.low, iv.high)
    why = f"the {fmt_confidence(confidence)} CI {ci} includes the limit (n={n})"
    if obj.metric in PROPORTION_METRICS:
        needs_n = stats.wilson_samples_needed(iv.estimate, obj.limit, obj.op, confidence)
        if needs_n is not None:
            why += f"; about {needs_n} requests would settle it at this rate"
    return why


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
