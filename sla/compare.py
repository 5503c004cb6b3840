"""Regression check of a candidate run against a baseline run (pure).

For each metric, ``change = candidate / baseline - 1`` with a two-sided confidence interval:

- Percentiles (of the successful requests in each run's measured window; ``itl_ms`` pools
  chunk gaps): a percentile bootstrap, ``n_boot`` replicates, each run resampled
  independently, seeded (``seed`` and the metric's position) so that reruns agree. A
  replicate draws only the two order statistics numpy's linear percentile interpolates
  between, from their exact joint distribution under resampling
  (``sla.stats.bootstrap_percentile``): the same distribution as resampling every point,
  in O(n_boot) memory, so big runs need no cap on the resample size. Each run needs the
  n at which the percentile has a one-sided order-statistic bound at the confidence
  (299 for p99 at 95%), else "inconclusive". ``itl_ms`` resamples whole requests with
  their gaps (``sla.stats.bootstrap_clustered_percentile``: the gaps of one request are
  not independent), and needs that n of requests as well as of gaps.
- Rates (``throughput_rps``, ``output_tokens_per_s``, of the successful requests that ended
  in the window, as ``sla check`` counts them): each run's count over its window as a
  compound Poisson process; the log of the ratio has the delta-method variance
  ``sum x_b^2 / (sum x_b)^2 + sum x_c^2 / (sum x_c)^2``; the interval is
  ``exp(log ratio +- z * se) - 1``. A candidate with no successful request at all is
  compared through the exact Poisson bound of a count of 0; a run without token counts
  (embeddings, KServe) has no ``output_tokens_per_s`` ("inconclusive").
- ``error_rate`` (failed share of the measured requests): the change is the difference in
  points, ``candidate - baseline``, with Newcombe's hybrid score interval (from the two
  Wilson intervals), which holds at 0 errors; it regressed when the relative change
  exceeds the tolerance (any rise from a baseline of 0) and the interval excludes 0.

Lower is better for latencies, higher for rates. With "worse" the change in the bad
direction, a metric is:
"regressed" when worse > ``max_regression`` and the interval excludes no change;
"inconclusive" when worse > ``max_regression`` but the interval includes no change, or a
run has too few samples; "improved" when better and the interval excludes no change;
"no significant change" otherwise (a change within the tolerance included).
Exit code (the precedence of ``sla.verdict.exit_code``): 1 when any metric regressed; else
4 when a run's load generator was saturated; else 3 when a run is incomplete (killed, or
stopped early) or its load generator was disturbed, or the runs have nothing to compare (a
baseline without a successful request, no endpoint in common): such a comparison is no
evidence of "no regression"; else 0. Runs of different scenarios and endpoints missing
from one run are warned about (``warnings``).

Caveat: the metrics are judged one by one, each at the confidence; with 15 of them the
chance that one of an unchanged pair's metrics shows a change beyond the tolerance is
higher than any one's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from statistics import NormalDist
from typing import Any

import numpy as np

from sla import stats
from sla.files.run import Run
from sla.fmt import fmt_value
from sla.metrics import FloatArray, floats, ok_mask
from sla.reading import Reading, read_run
from sla.spec import LATENCY_METRICS, percentile_of

COMPARE_RATES = ("throughput_rps", "output_tokens_per_s")
DEFAULT_METRICS: tuple[tuple[str, str | None], ...] = (
    *(
        (m, p)
        for m in ("ttft_ms", "tpot_ms", "itl_ms", "latency_ms")
        for p in ("p50", "p90", "p99")
    ),
    ("throughput_rps", None),
    ("output_tokens_per_s", None),
    ("error_rate", None),
)
N_BOOT = 2000
EXIT_REGRESSED, EXIT_UNTRUSTED, EXIT_SATURATED = 1, 3, 4


class Change(StrEnum):
    REGRESSED = "regressed"
    IMPROVED = "improved"
    NO_CHANGE = "no significant change"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True, slots=True)
class MetricChange:
    """One metric: values in each run, relative change and its two-sided interval."""

    metric: str
    stat: str | None
    baseline: float
    candidate: float
    change_rel: float  # candidate / baseline - 1
    ci_low: float | None
    ci_high: float | None
    n_baseline: int
    n_candidate: int
    verdict: Change
    message: str
    # "relative" (ci_low/ci_high: relative changes) or "points" (error_rate: the interval
    # of the difference of the two shares, in fractions)
    ci_kind: str = "relative"

    @property
    def label(self) -> str:
        return f"{self.stat} {self.metric}" if self.stat else self.metric

    @property
    def change_text(self) -> str:
        """The change as printed: ``+12.3%``, or ``+1.50 pts`` for a difference of shares."""
        if self.ci_kind == "points":
            return _points(self.candidate - self.baseline)
        return _signed(self.change_rel)

    @property
    def ci_text(self) -> str:
        if self.ci_low is None or self.ci_high is None:
            return "-"
        show = _points if self.ci_kind == "points" else _signed
        return f"{show(self.ci_low)} to {show(self.ci_high)}"


@dataclass(frozen=True, slots=True)
class Comparison:
    baseline_path: str
    candidate_path: str
    max_regression: float
    confidence: float
    baseline_saturated: bool
    candidate_saturated: bool
    changes: tuple[MetricChange, ...]
    baseline_disturbed: tuple[str, ...] = ()  # Run.disturbed: its timings are late
    candidate_disturbed: tuple[str, ...] = ()
    baseline_incomplete: tuple[str, ...] = ()  # Run.incomplete: it lacks data
    candidate_incomplete: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # what makes the two runs hard to compare
    unmatched: tuple[str, ...] = ()  # why the two runs cannot be compared at all

    @property
    def regressed(self) -> tuple[MetricChange, ...]:
        return tuple(c for c in self.changes if c.verdict is Change.REGRESSED)

    @property
    def untrusted(self) -> tuple[str, ...]:
        """Why the comparison cannot say "no regression" (an incomplete run, a disturbed
        load generator, runs with nothing to compare); empty when it can."""
        return (
            tuple(
                f"the {role} run{kind}: {reason}"
                for role, kind, reasons in (
                    ("baseline", " is incomplete", self.baseline_incomplete),
                    ("candidate", " is incomplete", self.candidate_incomplete),
                    ("baseline", "'s load generator was disturbed", self.baseline_disturbed),
                    ("candidate", "'s load generator was disturbed", self.candidate_disturbed),
                )
                for reason in reasons
            )
            + self.unmatched
        )

    @property
    def exit_code(self) -> int:
        if self.regressed:
            return EXIT_REGRESSED
        if self.baseline_saturated or self.candidate_saturated:
            return EXIT_SATURATED
        if self.untrusted:
            return EXIT_UNTRUSTED
        return 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "exit_code": self.exit_code}


def parse_max_regression(text: str) -> float:
    """``"10%"`` or ``"0.1"`` -> 0.1; ValueError (one line) for anything else."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value >= 1 and not raw.endswith("%")):
        hint = f"; did you mean {raw}%?" if math.isfinite(value) and value >= 1 else ""
        raise ValueError(f"max regression {text!r} must be a percentage like 10% or 0.1{hint}")
    return value


def compare(
    baseline: Run | Reading,
    candidate: Run | Reading,
    *,
    max_regression: float = 0.10,
    confidence: float = 0.95,
    metrics: Sequence[tuple[str, str | None]] = DEFAULT_METRICS,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> Comparison:
    """Compare ``candidate`` with ``baseline`` metric by metric (see the module docstring);
    each a run or a reading of it (its window as read, without an SLA spec's warm-up)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    base, cand = _Samples(_reading(baseline)), _Samples(_reading(candidate))
    changes = []
    for index, (metric, stat) in enumerate(metrics):
        if metric in COMPARE_RATES and stat is None:
            change = _rate_change(metric, base, cand, confidence)
        elif metric == "error_rate" and stat is None:
            change = _error_rate_change(base, cand, confidence)
        elif metric in LATENCY_METRICS and (percent := percentile_of(stat)) is not None:
            rng = np.random.default_rng([seed, index])
            change = _percentile_change(metric, percent, base, cand, confidence, n_boot, rng)
        else:
            raise ValueError(f"cannot compare {stat} {metric}: use a latency percentile or a rate")
        changes.append(_judged(change, max_regression, confidence))
    return Comparison(
        baseline_path=str(baseline.path),
        candidate_path=str(candidate.path),
        max_regression=max_regression,
        confidence=confidence,
        baseline_saturated=baseline.saturated,
        candidate_saturated=candidate.saturated,
        changes=tuple(changes),
        baseline_disturbed=baseline.disturbed,
        candidate_disturbed=candidate.disturbed,
        baseline_incomplete=baseline.incomplete,
        candidate_incomplete=candidate.incomplete,
        warnings=_warnings(base.reading, cand.reading),
        unmatched=_unmatched(base.reading, cand.reading),
    )


def _unmatched(base: Reading, cand: Reading) -> tuple[str, ...]:
    """Why nothing the two runs measured can be compared."""
    out = []
    if len(base.measured) and not ok_mask(base.measured).any():
        out.append("the baseline run has no successful request: it is no baseline")
    endpoints = _endpoints(base), _endpoints(cand)
    if endpoints[0] and endpoints[1] and not endpoints[0] & endpoints[1]:
        out.append("the runs have no endpoint in common")
    return tuple(out)


def _endpoints(reading: Reading) -> set[str]:
    return set(reading.measured["endpoint"].dropna().astype(str))


def _warnings(base: Reading, cand: Reading) -> tuple[str, ...]:
    out = []
    scenarios = (base.meta.get("scenario"), cand.meta.get("scenario"))
    if scenarios[0] != scenarios[1]:
        out.append(
            f"the runs are of different scenarios ({scenarios[0] or 'n/a'} and "
            f"{scenarios[1] or 'n/a'}): their metrics may not be comparable"
        )
    endpoints = _endpoints(base), _endpoints(cand)
    for role, only in (("baseline", endpoints[0] - endpoints[1]),
                       ("candidate", endpoints[1] - endpoints[0])):  # fmt: skip
        if only and endpoints[0] & endpoints[1]:
            out.append(f"endpoints only in the {role} run: {', '.join(sorted(only))}")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class _Samples:
    reading: Reading
    # Sorted samples per metric: p50, p90 and p99 of 10^7 pooled gaps share one sort.
    sorted_cache: dict[str, FloatArray] = field(default_factory=dict)

    @property
    def window_s(self) -> float | None:
        return self.reading.window_s

    def latency(self, metric: str) -> FloatArray:
        if metric not in self.sorted_cache:
            self.sorted_cache[metric] = np.sort(self.reading.latency_values(metric))
        return self.sorted_cache[metric]

    def rate_weights(self, metric: str) -> FloatArray | None:
        """One weight per successful request that ended in the window (as ``sla check``
        counts rates); None for tokens when no such request has a token count."""
        done = self.reading.completed
        done_ok = done[ok_mask(done)]
        if metric == "throughput_rps":
            return np.ones(len(done_ok))
        tokens = floats(done_ok, "output_tokens")
        if len(tokens) and np.isnan(tokens).all():
            return None
        return np.nan_to_num(tokens)


@dataclass(frozen=True, slots=True)
class _Raw:
    metric: str
    stat: str | None
    baseline: float
    candidate: float
    ci: tuple[float, float] | None
    n_baseline: int
    n_candidate: int
    too_few: str  # why there is no interval; "" when there is one
    ci_kind: str = "relative"  # or "points": ci is the difference of two shares


def _percentile_change(
    metric: str,
    percent: float,
    base: _Samples,
    cand: _Samples,
    confidence: float,
    n_boot: int,
    rng: np.random.Generator,
) -> _Raw:
    stat = f"p{percent:g}"
    xb, xc = base.latency(metric), cand.latency(metric)
    needs = stats.samples_needed(percent / 100.0, confidence, "high")
    vb = float(np.percentile(xb, percent)) if len(xb) else math.nan
    vc = float(np.percentile(xc, percent)) if len(xc) else math.nan
    raw = _Raw(metric, stat, vb, vc, None, len(xb), len(xc), "")
    if min(len(xb), len(xc)) < needs:
        return _with(raw, f"{stat} needs n ≥ {needs} in each run")
    clustered = metric == "itl_ms"
    if clustered:
        rb, rc = base.reading.itl_requests(), cand.reading.itl_requests()
        requests = len(np.unique(rb)), len(np.unique(rc))
        if min(requests) < needs:
            why = f"{stat} itl_ms needs ≥ {needs} requests in each run (their gaps move together)"
            return _with(raw, why)
    if not vb > 0:
        return _with(raw, "the baseline value is not positive")
    if clustered:
        gaps_b, gaps_c = base.reading.itl_ms(), cand.reading.itl_ms()
        n = stats.cluster_replicates(max(requests), n_boot)
        boot_b = stats.bootstrap_clustered_percentile(gaps_b, rb, percent, n, rng)
        boot_c = stats.bootstrap_clustered_percentile(gaps_c, rc, percent, n, rng)
    else:
        boot_b = stats.bootstrap_percentile(xb, percent, n_boot, rng)
        boot_c = stats.bootstrap_percentile(xc, percent, n_boot, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = boot_c / boot_b - 1.0
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(rel, [tail, 1.0 - tail])
    return _Raw(metric, stat, vb, vc, (float(low), float(high)), len(xb), len(xc), "")


def _rate_change(metric: str, base: _Samples, cand: _Samples, confidence: float) -> _Raw:
    wb, wc = base.rate_weights(metric), cand.rate_weights(metric)
    if wb is None or wc is None:
        raw = _Raw(metric, None, math.nan, math.nan, None, 0, 0, "")
        return _with(raw, "a run has no output token counts")
    sb, sc = float(wb.sum()), float(wc.sum())
    if base.window_s is None or cand.window_s is None or min(base.window_s, cand.window_s) <= 0:
        raw = _Raw(metric, None, math.nan, math.nan, None, len(wb), len(wc), "")
        return _with(raw, "a run has no measured window")
    vb, vc = sb / base.window_s, sc / cand.window_s
    raw = _Raw(metric, None, vb, vc, None, len(wb), len(wc), "")
    if sb <= 0:
        return _with(raw, "the baseline has no successful requests")
    if sc <= 0:
        # Nothing succeeded: the exact two-sided Poisson upper bound of a count of 0 requests
        # (-ln((1 - c) / 2): 3.69 at 95%), each worth the baseline's mean weight.
        bound = -math.log((1.0 - confidence) / 2.0) * (sb / len(wb)) / cand.window_s
        return replace(raw, ci=(-1.0, bound / vb - 1.0))
    se = math.sqrt(float(np.square(wb).sum()) / sb**2 + float(np.square(wc).sum()) / sc**2)
    z = NormalDist().inv_cdf((1.0 + confidence) / 2.0)
    log_ratio = math.log(vc / vb)
    ci = (math.expm1(log_ratio - z * se), math.expm1(log_ratio + z * se))
    return _Raw(metric, None, vb, vc, ci, len(wb), len(wc), "")


def _error_rate_change(base: _Samples, cand: _Samples, confidence: float) -> _Raw:
    """The failed share of each run's measured requests; the interval is of the difference
    (Newcombe's hybrid score method: each share's two-sided Wilson interval)."""
    counts = []
    for s in (base, cand):
        rows = s.reading.measured
        counts.append((int((~ok_mask(rows)).sum()), len(rows)))
    (eb, nb), (ec, nc) = counts
    pb = eb / nb if nb else math.nan
    pc = ec / nc if nc else math.nan
    raw = _Raw("error_rate", None, pb, pc, None, nb, nc, "", "points")
    if not nb or not nc:
        return _with(raw, "a run has no measured requests")
    one_sided = (1.0 + confidence) / 2.0  # each Wilson bound one-sided at this
    wb, wc = stats.wilson_interval(eb, nb, one_sided), stats.wilson_interval(ec, nc, one_sided)
    lb, ub, lc, uc = wb.low or 0.0, wb.high or 0.0, wc.low or 0.0, wc.high or 0.0
    d = pc - pb
    low = d - math.sqrt((pc - lc) ** 2 + (ub - pb) ** 2)
    high = d + math.sqrt((uc - pc) ** 2 + (pb - lb) ** 2)
    return replace(raw, ci=(low, high))


def _with(raw: _Raw, why: str) -> _Raw:
    return replace(raw, ci=None, too_few=why)


def _judged(raw: _Raw, max_regression: float, confidence: float) -> MetricChange:
    rel = raw.candidate / raw.baseline - 1.0 if raw.baseline else math.nan
    if raw.ci_kind == "points" and raw.baseline == 0 and raw.candidate == raw.candidate:
        rel = math.inf if raw.candidate > 0 else 0.0  # errors where there were none
    sign = 1.0 if raw.metric in LATENCY_METRICS or raw.ci_kind == "points" else -1.0
    verdict, note = Change.INCONCLUSIVE, raw.too_few
    if raw.ci is not None:
        worse = sign * rel
        worse_low, worse_high = sorted((sign * raw.ci[0], sign * raw.ci[1]))
        if worse > max_regression:
            verdict = Change.REGRESSED if worse_low > 0 else Change.INCONCLUSIVE
            note = "" if worse_low > 0 else "the interval includes no change; run longer"
        elif worse < 0 and worse_high < 0:
            verdict = Change.IMPROVED
        else:
            verdict = Change.NO_CHANGE
            note = f"within the {_pct(max_regression)} tolerance" if worse > 0 else ""
    return MetricChange(
        metric=raw.metric,
        stat=raw.stat,
        baseline=raw.baseline,
        candidate=raw.candidate,
        change_rel=rel,
        ci_low=raw.ci[0] if raw.ci else None,
        ci_high=raw.ci[1] if raw.ci else None,
        n_baseline=raw.n_baseline,
        n_candidate=raw.n_candidate,
        verdict=verdict,
        message=_message(raw, rel, verdict, note, confidence),
        ci_kind=raw.ci_kind,
    )


def _message(raw: _Raw, rel: float, verdict: Change, note: str, confidence: float) -> str:
    label = f"{raw.stat} {raw.metric}" if raw.stat else raw.metric
    show = _points if raw.ci_kind == "points" else _signed
    change = show(raw.candidate - raw.baseline) if raw.ci_kind == "points" else _signed(rel)
    head = f"[{label}] {fmt_value(raw.metric, raw.baseline)} → "
    head += f"{fmt_value(raw.metric, raw.candidate)}: {change}"
    if raw.ci is not None:
        head += f" ({confidence * 100:g}% CI {show(raw.ci[0])} to {show(raw.ci[1])})"
    return f"{head}, {verdict}" + (f" ({note})" if note else "")


def _pct(fraction: float) -> str:
    return f"{fraction * 100:g}%"


def _points(diff: float | None) -> str:
    """A difference of two shares in percentage points: ``+1.50 pts``."""
    if diff is None or not math.isfinite(diff):
        return "n/a"
    return f"{diff * 100:+.2f} pts"


def _signed(rel: float | None) -> str:
    if rel is None or not math.isfinite(rel):
        return "n/a"
    return f"{rel * 100:+.1f}%"


def _reading(run: Run | Reading) -> Reading:
    return run.with_warmup(0.0) if isinstance(run, Reading) else read_run(run)


def format_comparison(comparison: Comparison) -> str:
    """The terminal table: one row per metric, then the messages of regressions."""
    lines = [
        f"compare {comparison.candidate_path} against baseline {comparison.baseline_path} "
        f"(max regression {_pct(comparison.max_regression)}, "
        f"{comparison.confidence * 100:g}% confidence)",
    ]
    rows = [("metric", "baseline", "candidate", "change", "CI", "n (base/cand)", "verdict")]
    for c in comparison.changes:
        rows.append(
            (
                c.label,
                fmt_value(c.metric, c.baseline),
                fmt_value(c.metric, c.candidate),
                c.change_text,
                c.ci_text,
                f"{c.n_baseline}/{c.n_candidate}",
                str(c.verdict),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for name, flag in (
        ("baseline", comparison.baseline_saturated),
        ("candidate", comparison.candidate_saturated),
    ):
        if flag:
            lines.append(
                f"WARNING: the {name} run's load generator was saturated; "
                "its timings are not trustworthy"
            )
    lines.extend(f"WARNING: {reason}" for reason in comparison.untrusted)
    lines.extend(f"WARNING: {warning}" for warning in comparison.warnings)
    lines.extend(c.message for c in comparison.changes if c.verdict is not Change.NO_CHANGE)
    return "\n".join(lines)
