"""Confidence bounds for SLA objectives (numpy and the standard library only).

Every bound here is one-sided at the given confidence ``c``: ``low`` is below the true value
with probability >= c and ``high`` is above it with probability >= c, so a decision that uses
one of them is wrong with probability <= 1 - c. Together they form a two-sided interval of
confidence >= 2c - 1.

- Percentiles: distribution-free bounds from order statistics. With ``K ~ Binomial(n, q)``
  the number of samples at or below the true q-quantile, ``P(X(k) >= x_q) = P(K <= k - 1)``.
  ``high`` = ``X(k)`` for the smallest rank k with ``P(K <= k - 1) >= c``; ``low`` = ``X(k)``
  for the largest k with ``P(K >= k) >= c``. The binomial probabilities are exact for every n:
  the pmf is built in log space by its ratio recurrence over ``nq +- (12 sigma + 50)``, where
  all but < 1e-30 of the mass lies, and normalised. No rank exists when n is too small
  (``high`` needs ``1 - q**n >= c``: n >= 299 for p99 at 95%).
- Means: the normal (CLT) approximation ``mean +- z_c * s / sqrt(n)``.
- Proportions: the Wilson score bounds with ``z_c``.
- Rates: a count over a window treated as a compound Poisson process (requests arrive as
  Poisson, each adds its weight x: 1 per request, or its output tokens), normal
  approximation: ``(sum x +- z_c * sqrt(sum x^2)) / window``, low clipped at 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
MIN_SAMPLES_MEAN = 30  # below this the CLT interval of a mean is not trusted
_TAIL_SIGMAS = 12.0
_TAIL_PAD = 50
# Rounding slack when a probability is compared with the confidence: 1 - 0.1 must reach 0.9.
_SLACK = 1e-12


@dataclass(frozen=True, slots=True)
class Interval:
    """An estimate with one-sided bounds at a confidence; None when a bound does not exist."""

    estimate: float
    low: float | None
    high: float | None


def z_value(confidence: float) -> float:
    """The one-sided standard normal quantile: 1.645 for 0.95."""
    return NormalDist().inv_cdf(confidence)


def binomial_pmf_window(n: int, q: float) -> tuple[int, FloatArray]:
    """``(a, pmf)`` with ``pmf[i] = P(K = a + i)`` for ``K ~ Binomial(n, q)``, 0 < q < 1.

    The window covers all but < 1e-30 of the mass, so ``pmf`` is normalised to sum to 1.
    """
    mean = n * q
    sigma = math.sqrt(n * q * (1.0 - q))
    a = max(0, math.floor(mean - _TAIL_SIGMAS * sigma - _TAIL_PAD))
    b = min(n, math.ceil(mean + _TAIL_SIGMAS * sigma + _TAIL_PAD))
    j = np.arange(a, b, dtype=np.float64)
    # log P(j+1) - log P(j) = log(n - j) - log(j + 1) + log(q / (1 - q))
    steps = np.log(n - j) - np.log(j + 1.0) + (math.log(q) - math.log1p(-q))
    log_pmf = np.concatenate(([0.0], np.cumsum(steps)))
    pmf = np.exp(log_pmf - log_pmf.max())
    return a, pmf / pmf.sum()


def order_statistic_ranks(n: int, q: float, confidence: float) -> tuple[int | None, int | None]:
    """1-based ranks ``(k_low, k_high)``: ``X(k_low)``/``X(k_high)`` bound the q-quantile from
    below/above at ``confidence``; None where no rank achieves it."""
    if n < 1:
        return None, None
    a, pmf = binomial_pmf_window(n, q)
    cdf = np.cumsum(pmf)  # cdf[i] = P(K <= a + i)
    tail = np.cumsum(pmf[::-1])[::-1]  # tail[i] = P(K >= a + i), no 1 - cdf cancellation
    k_high = None
    usable = cdf[: n - a]  # P(K <= j) for j <= n - 1 only: rank j + 1 must be <= n
    hits = np.flatnonzero(usable >= confidence - _SLACK)
    if hits.size:
        k_high = a + int(hits[0]) + 1
    k_low = None
    ranks_ok = np.flatnonzero(tail >= confidence - _SLACK)
    ranks_ok = ranks_ok[a + ranks_ok >= 1]
    if ranks_ok.size:
        k_low = a + int(ranks_ok[-1])
    return k_low, k_high


def samples_needed(q: float, confidence: float, side: Literal["low", "high"]) -> int:
    """The smallest n for which the ``side`` bound of the q-quantile exists.

    ``high`` exists iff ``1 - q**n >= c`` (the largest sample bounds it); ``low`` iff
    ``1 - (1 - q)**n >= c``.
    """
    p = q if side == "high" else 1.0 - q
    n = max(1, math.ceil(math.log1p(-confidence) / math.log(p)))
    while 1.0 - p**n < confidence - _SLACK:
        n += 1
    while n > 1 and 1.0 - p ** (n - 1) >= confidence - _SLACK:
        n -= 1
    return n


def percentile_interval(values: FloatArray, percent: float, confidence: float) -> Interval:
    """numpy's (linear) percentile of ``values`` with distribution-free one-sided bounds."""
    n = len(values)
    if n == 0:
        return Interval(math.nan, None, None)
    estimate = float(np.percentile(values, percent))
    k_low, k_high = order_statistic_ranks(n, percent / 100.0, confidence)
    kth = [k - 1 for k in (k_low, k_high) if k is not None]
    if not kth:
        return Interval(estimate, None, None)
    part = np.partition(values, kth)
    low = float(part[k_low - 1]) if k_low is not None else None
    high = float(part[k_high - 1]) if k_high is not None else None
    return Interval(estimate, low, high)


def cluster_replicates(clusters: int, n_boot: int = 2000) -> int:
    """How many clustered-bootstrap replicates to draw: ``n_boot``, fewer for runs of over
    20,000 requests (a replicate costs O(requests); their intervals are narrow), never
    under 400: an ITL bound over 100,000 requests of 100 gaps took 3.8 s (5.6 with 2,000)."""
    return max(min(n_boot, 400), min(n_boot, int(4e7 / max(clusters, 1))))


def clustered_percentile_interval(
    values: FloatArray,
    clusters: npt.NDArray[np.int64],
    percent: float,
    confidence: float,
    n_boot: int = 2000,
) -> Interval:
    """numpy's percentile of ``values`` pooled from clusters (a request's chunk gaps), with
    one-sided bounds that hold when the values of a cluster move together: each bound is
    the wider of the order-statistic bound (``percentile_interval``, exact for independent
    values) and the ``1 - c`` / ``c`` quantile of a seeded bootstrap that resamples whole
    clusters (``bootstrap_clustered_percentile``). A bound exists only where there are as
    many clusters as ``samples_needed`` asks of values: 299 requests for a p99 at 95%,
    however many gaps they have. ``n_boot`` replicates, fewer for big runs
    (``cluster_replicates``)."""
    independent = percentile_interval(values, percent, confidence)
    if independent.low is None and independent.high is None:
        return independent
    m = len(np.unique(clusters))
    q = percent / 100.0
    replicates = cluster_replicates(m, n_boot)
    boot = bootstrap_clustered_percentile(
        values, clusters, percent, replicates, np.random.default_rng(0)
    )
    low_q, high_q = np.quantile(boot, [1.0 - confidence, confidence])
    low = high = None
    if independent.low is not None and m >= samples_needed(q, confidence, "low"):
        low = min(independent.low, float(low_q))
    if independent.high is not None and m >= samples_needed(q, confidence, "high"):
        high = max(independent.high, float(high_q))
    return Interval(independent.estimate, low, high)


def mean_interval(values: FloatArray, confidence: float) -> Interval:
    """The mean with CLT bounds (None for n < 2; callers require ``MIN_SAMPLES_MEAN``)."""
    n = len(values)
    if n == 0:
        return Interval(math.nan, None, None)
    mean = float(np.mean(values))
    if n < 2:
        return Interval(mean, None, None)
    half = z_value(confidence) * float(np.std(values, ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half)


def wilson_interval(count: int, n: int, confidence: float) -> Interval:
    """``count / n`` with one-sided Wilson score bounds."""
    if n == 0:
        return Interval(math.nan, None, None)
    p = count / n
    low, high = _wilson(p, n, z_value(confidence))
    return Interval(p, low, high)


def _wilson(p: float, n: float, z: float) -> tuple[float, float]:
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def wilson_samples_needed(p: float, limit: float, op: str, confidence: float) -> int | None:
    """About how many samples would settle a proportion objective if ``p`` held; None when no
    number would (``p`` on the wrong side of the limit)."""
    if (op == "max" and p >= limit) or (op == "min" and p <= limit):
        return None
    z = z_value(confidence)

    def settles(n: float) -> bool:
        low, high = _wilson(p, n, z)
        return high <= limit if op == "max" else low >= limit

    return _smallest(settles)


def rate_interval(total: float, total_sq: float, window_s: float, confidence: float) -> Interval:
    """``total / window_s`` with compound-Poisson normal bounds (see the module docstring)."""
    half = z_value(confidence) * math.sqrt(total_sq)
    return Interval(total / window_s, max(0.0, total - half) / window_s, (total + half) / window_s)


def bootstrap_percentile(
    sorted_values: FloatArray, percent: float, n_boot: int, rng: np.random.Generator
) -> FloatArray:
    """``n_boot`` bootstrap replicates of numpy's linear percentile, in O(n_boot) memory.

    A resample of size n from the sample has the order statistics ``X(ceil(n U(j)))`` where
    ``U(j)`` are those of n uniforms, ``U(j) ~ Beta(j, n - j + 1)`` and
    ``U(j+1) = U(j) + (1 - U(j)) Beta(1, n - j)``. Drawing just the two that the percentile
    interpolates between gives exactly the distribution of resampling every point, at any n.
    """
    n = len(sorted_values)
    h = (n - 1) * percent / 100.0
    j = math.floor(h) + 1  # 1-based rank of the lower neighbour
    frac = h - (j - 1)
    u_j = rng.beta(j, n - j + 1, size=n_boot)
    lower = _quantile_of(sorted_values, u_j)
    if j >= n or frac == 0.0:
        return lower
    u_next = u_j + (1.0 - u_j) * rng.beta(1, n - j, size=n_boot)
    upper = _quantile_of(sorted_values, u_next)
    return lower + frac * (upper - lower)


def bootstrap_clustered_percentile(
    values: FloatArray,
    clusters: npt.NDArray[np.int64],
    percent: float,
    n_boot: int,
    rng: np.random.Generator,
) -> FloatArray:
    """``n_boot`` replicates of numpy's linear percentile of ``values`` pooled from clusters
    (``clusters[i]``: the cluster of ``values[i]``; a request's chunk gaps), resampling the
    clusters, not the values: a replicate draws as many clusters as there are, with
    replacement, and pools every value of each drawn cluster once per draw.

    The gaps of one request move together (one slow decode step slows them all), so
    resampling them one by one, as if independent, gives an interval several times too
    narrow: random halves of one run then "differ" far more often than the confidence
    allows. Resampling whole requests keeps that dependence.

    Exact and cheap: the values are sorted once, and a replicate's percentile is found from
    the cumulative draw counts of the sorted values, counted only over a band of ranks
    around the percentile (the counts below it come from a per-cluster tally); a replicate
    whose percentile falls outside the band is counted over every value."""
    n = len(values)
    if n == 0 or n_boot <= 0:
        return np.full(max(n_boot, 0), math.nan)
    order = np.argsort(values, kind="stable")
    sorted_values = np.asarray(values, dtype=np.float64)[order]
    _, member = np.unique(clusters, return_inverse=True)
    member = member.reshape(-1)[order]
    m = int(member.max()) + 1
    sizes = np.bincount(member, minlength=m)
    q = percent / 100.0
    # The band: the percentile's rank +- many standard errors of a cluster-level proportion
    # (the spread of the pooled share below it across resamples), at least 1% of the ranks.
    spread = 10.0 * math.sqrt(max(q * (1.0 - q), 1e-4) / m) * float(sizes.max() / sizes.mean())
    lo = max(0, math.floor((q - spread - 0.01) * n))
    hi = min(n, math.ceil((q + spread + 0.01) * n) + 1)
    below = np.bincount(member[:lo], minlength=m)
    band = member[lo:hi]
    out = np.empty(n_boot)
    for b in range(n_boot):
        draws = np.bincount(rng.integers(0, m, size=m), minlength=m)
        total = int(draws @ sizes)
        h = (total - 1) * q
        r1 = math.floor(h)
        ranks = (r1, min(r1 + 1, total - 1))
        start = int(draws @ below)
        cum = start + np.cumsum(draws[band])
        if start <= ranks[0] and ranks[1] < (cum[-1] if len(cum) else start):
            picked = sorted_values[lo + np.searchsorted(cum, ranks, side="right")]
        else:  # outside the band: count over every value
            cum = np.cumsum(draws[member])
            picked = sorted_values[np.searchsorted(cum, ranks, side="right")]
        out[b] = picked[0] + (h - r1) * (picked[1] - picked[0])
    return out


def _quantile_of(sorted_values: FloatArray, u: FloatArray) -> FloatArray:
    n = len(sorted_values)
    index = np.clip(np.ceil(n * u).astype(np.int64) - 1, 0, n - 1)
    return sorted_values[index]


def _smallest(ok: Callable[[float], bool], ceiling: int = 10**12) -> int | None:
    """The smallest n in [1, ceiling] with ok(n), for ok monotone in n."""
    if not ok(ceiling):
        return None
    lo, hi = 1, ceiling
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo
