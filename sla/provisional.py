"""An SLA judged on the live figures of a run still going (pure): each objective's standing
so far, and whether a FAIL is already settled well enough to stop the run (``--sla-stop-early``).

``judge_live(spec, endpoints, scenario=, window_s=)`` judges every objective on the
``sla.live.LiveSamples`` of each endpoint, pooled under the spec's ``filters`` and the
objective's ``where`` (endpoint and scenario; an objective filtered by ``turn`` is not
judged live: INCONCLUSIVE). The decision is ``sla.objectives``' own (PASS/FAIL/INCONCLUSIVE
from one-sided bounds at a confidence); only the bounds differ:

- Percentiles: the ranks of ``sla.stats.order_statistic_ranks`` (exact binomial, as at the
  end), their values read from the sketch and widened by its relative error ``a``: the low
  bound is ``X^(k_low) / (1 + a)``, the high bound ``X^(k_high) / (1 - a)``. The sketch's
  value of a rank is within ``a`` of the exact order statistic, so these bound it, and the
  quantile, at least as surely as the exact ones do: the sketch only widens the interval.
- Means: the CLT bound on the exact sums; max/min: the exact extremes.
- ``error_rate``/``goodput_ratio``: Wilson on exact counts; rates: the compound-Poisson
  bound on exact sums over the window so far.

As at the end, an objective whose filters keep no request has no value (INCONCLUSIVE, a
rate of nothing included), and so has ``output_tokens_per_s`` when no successful request
told its output tokens (embeddings, KServe).

Early stop (``settled_failures``). Looking again and again and stopping at the first FAIL
would be wrong far more often than ``1 - c``. So the run is allowed at most ``looks`` looks
(one per ``--live-interval``), and each look decides FAIL at ``c_look = 1 - (1 - c) / looks``
(Bonferroni): the chance that any look declares a FAIL that is not true is at most
``looks * (1 - c) / looks = 1 - c``, the spec's own error, whatever the looks' dependence.
Only objectives whose standing cannot be undone by more of the same load stop a run:
percentiles (but not of ``itl_ms``, whose live bounds treat a request's gaps as
independent: too narrow to stop a run on), means, a ``max`` stat over ``max`` (the maximum
only grows), a ``min`` stat under ``min``, ``error_rate`` and ``goodput_ratio``. Rates
never stop a run early: a rate so far is low while the load ramps up. The guarantee
assumes what every verdict assumes:
requests of the judged window are alike (a steady load), and independent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

from sla import stats
from sla.fmt import fmt_confidence
from sla.live import LiveSamples
from sla.objectives import (
    NO_TOKEN_COUNTS,
    NO_VALUE,
    ObjectiveResult,
    Status,
    no_match_reason,
    objective_result,
    proportion_interval,
)
from sla.sketch import LogHistogram
from sla.spec import LATENCY_METRICS, PROPORTION_METRICS, Filters, Objective, Spec

__all__ = ["early_confidence", "judge_live", "settled_failures", "stops_early"]


def early_confidence(confidence: float, looks: int) -> float:
    """The confidence each of ``looks`` looks decides at, so that all of them together are
    wrong with probability at most ``1 - confidence`` (Bonferroni)."""
    return 1.0 - (1.0 - confidence) / max(1, looks)


def judge_live(
    spec: Spec,
    endpoints: Mapping[str, LiveSamples],
    *,
    scenario: str,
    window_s: float | None,
    confidence: float | None = None,
) -> tuple[ObjectiveResult, ...]:
    """Every objective's standing on the live samples (at ``confidence``, default the
    spec's); each message starts with "provisional"."""
    conf = spec.confidence if confidence is None else confidence
    return tuple(
        _judge(obj, spec.filters, _select(spec, obj, endpoints, scenario), window_s, conf)
        for obj in spec.objectives
    )


def stops_early(obj: Objective) -> bool:
    """Whether a settled FAIL of ``obj`` may end a run early (see the module)."""
    if obj.metric in PROPORTION_METRICS:
        return True
    if obj.metric not in LATENCY_METRICS:
        return False
    if obj.stat in ("max", "min"):
        return obj.stat == obj.op
    # The live bounds of a percentile of itl_ms treat a request's gaps as independent (the
    # sketch keeps no request): too narrow to stop on; the end-of-run judge's are not.
    return obj.metric != "itl_ms" or obj.stat == "mean"


def settled_failures(
    spec: Spec,
    endpoints: Mapping[str, LiveSamples],
    *,
    scenario: str,
    window_s: float | None,
    looks: int,
) -> list[str]:
    """The objectives whose FAIL is settled at the per-look confidence (one line each,
    saying how): empty unless the run may stop now."""
    conf = early_confidence(spec.confidence, looks)
    results = judge_live(spec, endpoints, scenario=scenario, window_s=window_s, confidence=conf)
    return [
        f"{r.label} FAIL settled at {fmt_confidence(conf)} per look ({looks} looks, "
        f"{fmt_confidence(spec.confidence)} overall): {r.message.removeprefix('provisional ')}"
        for obj, r in zip(spec.objectives, results, strict=True)
        if r.status is Status.FAIL and stops_early(obj)
    ]


def _select(
    spec: Spec, obj: Objective, endpoints: Mapping[str, LiveSamples], scenario: str
) -> LiveSamples | None:
    """The pooled samples ``obj`` judges; None when its filters cannot be applied live."""
    filters: Sequence[Filters] = (spec.filters,) if obj.where is None else (spec.filters, obj.where)
    if any(f.turns for f in filters):
        return None
    if any(f.scenarios and scenario not in f.scenarios for f in filters):
        return LiveSamples()
    kept = [
        samples
        for name, samples in endpoints.items()
        if all(not f.endpoints or name in f.endpoints for f in filters)
    ]
    return LiveSamples.pooled(kept)


def _judge(
    obj: Objective,
    filters: Filters,
    samples: LiveSamples | None,
    window_s: float | None,
    conf: float,
) -> ObjectiveResult:
    """``obj`` on the samples its filters keep (``filters``: the spec's); as at the end, no
    request matched, or a rate of tokens without token counts, has no value."""
    if samples is None:
        result = objective_result(obj, NO_VALUE, 0, conf)
        why = "a turn filter is judged at the end only"
        return _provisional(result, f"[{obj.label}] INCONCLUSIVE: {why}")
    if not samples.n:
        result = objective_result(obj, NO_VALUE, 0, conf, no_match_reason(obj.where or filters))
    elif obj.metric == "output_tokens_per_s" and samples.done_ok and not samples.done_counted:
        result = objective_result(obj, NO_VALUE, 0, conf, NO_TOKEN_COUNTS)
    else:
        n, interval = _interval(obj, samples, window_s, conf)
        result = objective_result(obj, interval, n, conf)
    return _provisional(result, result.message)


def _provisional(result: ObjectiveResult, message: str) -> ObjectiveResult:
    return replace(result, message=f"provisional {message}")


def _interval(
    obj: Objective, s: LiveSamples, window_s: float | None, conf: float
) -> tuple[int, stats.Interval]:
    if obj.metric in LATENCY_METRICS:
        tally = s.latency[obj.metric]
        n = tally.n
        if not n:
            return 0, stats.Interval(math.nan, None, None)
        if obj.stat in ("max", "min"):
            extreme = tally.high if obj.stat == "max" else tally.low
            return n, stats.Interval(extreme, extreme, extreme)
        if obj.stat == "mean":
            mean = tally.mean()
            if n < 2:
                return n, stats.Interval(mean, None, None)
            half = stats.z_value(conf) * tally.std() / math.sqrt(n)
            return n, stats.Interval(mean, mean - half, mean + half)
        return n, _percentile(tally.sketch, n, (obj.percentile or 50.0) / 100.0, conf)
    if obj.metric in PROPORTION_METRICS:
        count = s.failed if obj.metric == "error_rate" else s.good
        return s.n, proportion_interval(obj, count, s.n, conf)
    return _rate(obj.metric, s, window_s, conf)


def _percentile(sketch: LogHistogram, n: int, q: float, conf: float) -> stats.Interval:
    a = sketch.relative_error
    estimate = sketch.quantile(q)
    k_low, k_high = stats.order_statistic_ranks(n, q, conf)
    ranks = [k for k in (k_low, k_high) if k is not None]
    values = dict(zip(ranks, sketch.rank_values(ranks), strict=True))
    low = values[k_low] / (1.0 + a) if k_low is not None else None
    high = values[k_high] / (1.0 - a) if k_high is not None else None
    return stats.Interval(estimate, low, high)


def _rate(
    metric: str, s: LiveSamples, window_s: float | None, conf: float
) -> tuple[int, stats.Interval]:
    if metric == "goodput_rps":
        count, total, total_sq = s.done_good, float(s.done_good), float(s.done_good)
    elif metric == "output_tokens_per_s":
        count, total, total_sq = s.done_ok, s.done_tokens, s.done_tokens_sq
    else:
        count, total, total_sq = s.done_ok, float(s.done_ok), float(s.done_ok)
    if window_s is None or not window_s > 0:
        return count, stats.Interval(math.nan, None, None)
    return count, stats.rate_interval(total, total_sq, window_s, conf)
