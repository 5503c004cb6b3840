from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from sla import stats
from sla.stats import (
    binomial_pmf_window,
    bootstrap_percentile,
    mean_interval,
    order_statistic_ranks,
    percentile_interval,
    rate_interval,
    samples_needed,
    wilson_interval,
    wilson_samples_needed,
    z_value,
)


def exact_ranks(n: int, q: Fraction, c: Fraction) -> tuple[int | None, int | None]:
    """The defining inequalities by direct summation, in integers: with q = a/d, each
    ``P(K = i) * d**n = comb(n, i) * a**i * (d - a)**(n - i)`` exactly."""
    a, d = q.numerator, q.denominator
    weights = [math.comb(n, i) * a**i * (d - a) ** (n - i) for i in range(n + 1)]
    total = d**n
    at_most = list(itertools.accumulate(weights))  # P(K <= j) * total
    at_least = [total - below for below in [0, *at_most[:-1]]]  # P(K >= k) * total

    def reaches(scaled: int) -> bool:
        return scaled * c.denominator >= c.numerator * total

    highs = [k for k in range(1, n + 1) if reaches(at_most[k - 1])]
    lows = [k for k in range(1, n + 1) if reaches(at_least[k])]
    return (max(lows) if lows else None), (min(highs) if highs else None)


@pytest.mark.parametrize(
    ("n", "q", "c"),
    [
        (1, "0.5", "0.95"),
        (1, "0.9", "0.9"),  # P(K >= 1) = 0.9 exactly: the tie counts
        (5, "0.5", "0.95"),
        (4, "0.5", "0.95"),
        (20, "0.9", "0.9"),
        (59, "0.95", "0.95"),
        (100, "0.5", "0.95"),
        (100, "0.99", "0.95"),
        (250, "0.75", "0.99"),
        (298, "0.99", "0.95"),
        (299, "0.99", "0.95"),
        (400, "0.01", "0.95"),
        (1000, "0.9", "0.95"),
        (1000, "0.999", "0.95"),
    ],
)
def test_order_statistic_ranks_match_direct_binomial_summation(n: int, q: str, c: str) -> None:
    assert order_statistic_ranks(n, float(q), float(c)) == exact_ranks(n, Fraction(q), Fraction(c))


def test_p99_at_95_needs_299_samples_for_an_upper_bound() -> None:
    assert order_statistic_ranks(298, 0.99, 0.95)[1] is None
    assert order_statistic_ranks(299, 0.99, 0.95)[1] == 299
    assert samples_needed(0.99, 0.95, "high") == 299
    assert samples_needed(0.999, 0.95, "high") == 2995
    assert samples_needed(0.5, 0.95, "high") == 5
    assert samples_needed(0.5, 0.95, "low") == 5
    assert samples_needed(0.01, 0.95, "low") == 299


@pytest.mark.parametrize("q", [0.5, 0.9, 0.99, 0.999])
@pytest.mark.parametrize("c", [0.9, 0.95, 0.99])
def test_samples_needed_is_where_the_bound_starts_to_exist(q: float, c: float) -> None:
    n = samples_needed(q, c, "high")
    assert order_statistic_ranks(n, q, c)[1] is not None
    assert order_statistic_ranks(n - 1, q, c)[1] is None
    n = samples_needed(q, c, "low")
    assert order_statistic_ranks(n, q, c)[0] is not None
    assert n == 1 or order_statistic_ranks(n - 1, q, c)[0] is None


def test_the_pmf_window_holds_all_the_mass_and_matches_the_formula() -> None:
    a, pmf = binomial_pmf_window(3000, 0.3)
    assert pmf.sum() == pytest.approx(1.0)
    k = 900
    expected = math.exp(
        math.lgamma(3001)
        - math.lgamma(k + 1)
        - math.lgamma(3001 - k)
        + k * math.log(0.3)
        + (3000 - k) * math.log(0.7)
    )
    assert pmf[k - a] == pytest.approx(expected, rel=1e-9)
    assert a > 0  # the far tails are not computed at all


def test_large_n_ranks_agree_with_the_normal_approximation() -> None:
    n, q, c = 10_000_000, 0.99, 0.95
    k_low, k_high = order_statistic_ranks(n, q, c)
    sigma = math.sqrt(n * q * (1 - q))
    z = z_value(c)
    assert k_high is not None and k_low is not None
    assert abs(k_high - (n * q + z * sigma + 0.5)) < 2
    assert abs(k_low - (n * q - z * sigma + 0.5)) < 2


def test_percentile_interval_uses_numpy_and_the_ranks() -> None:
    values = np.random.default_rng(3).exponential(100.0, size=1234)
    interval = percentile_interval(values, 95.0, 0.95)
    k_low, k_high = order_statistic_ranks(1234, 0.95, 0.95)
    ordered = np.sort(values)
    assert interval.estimate == np.percentile(values, 95.0)
    assert k_low is not None and k_high is not None
    assert interval.low == ordered[k_low - 1]
    assert interval.high == ordered[k_high - 1]
    assert interval.low is not None and interval.high is not None
    assert interval.low < interval.estimate < interval.high


def test_percentile_bounds_cover_the_true_quantile_at_the_confidence() -> None:
    # Exponential(1): true p90 = ln 10. Each one-sided bound misses at most 5% of the time.
    rng = np.random.default_rng(11)
    truth = math.log(10.0)
    misses_high = misses_low = 0
    trials = 2000
    for _ in range(trials):
        interval = percentile_interval(rng.exponential(1.0, size=200), 90.0, 0.95)
        assert interval.low is not None and interval.high is not None
        misses_high += interval.high < truth
        misses_low += interval.low > truth
    assert misses_high / trials <= 0.05 + 0.015
    assert misses_low / trials <= 0.05 + 0.015


def test_mean_interval_is_the_clt_bound() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    interval = mean_interval(values, 0.95)
    half = 1.6448536269514722 * math.sqrt(2.5) / math.sqrt(5)
    assert interval.estimate == 3.0
    assert interval.low == pytest.approx(3.0 - half)
    assert interval.high == pytest.approx(3.0 + half)
    assert mean_interval(np.array([7.0]), 0.95).low is None


def test_wilson_interval_by_hand() -> None:
    # 5 of 100 at 95% one-sided: z = 1.6449.
    z = 1.6448536269514722
    p = 0.05
    centre = (p + z * z / 200) / (1 + z * z / 100)
    half = z / (1 + z * z / 100) * math.sqrt(p * (1 - p) / 100 + z * z / 40000)
    interval = wilson_interval(5, 100, 0.95)
    assert interval.estimate == 0.05
    assert interval.low == pytest.approx(centre - half)
    assert interval.high == pytest.approx(centre + half)
    assert wilson_interval(0, 100, 0.95).high == pytest.approx(z * z / (100 + z * z))
    assert wilson_interval(0, 100, 0.95).low == 0.0


def test_wilson_samples_needed() -> None:
    z2 = z_value(0.95) ** 2
    needed = wilson_samples_needed(0.0, 0.01, "max", 0.95)
    assert needed == math.ceil(z2 * 0.99 / 0.01)
    assert needed is not None
    assert wilson_interval(0, needed, 0.95).high is not None
    assert wilson_samples_needed(0.02, 0.01, "max", 0.95) is None
    assert wilson_samples_needed(0.99, 0.95, "min", 0.95) is not None


def test_rate_interval_is_compound_poisson() -> None:
    interval = rate_interval(total=400.0, total_sq=400.0, window_s=20.0, confidence=0.95)
    assert interval.estimate == 20.0
    assert interval.low == pytest.approx((400 - z_value(0.95) * 20) / 20)
    assert interval.high == pytest.approx((400 + z_value(0.95) * 20) / 20)
    assert rate_interval(0.0, 0.0, 10.0, 0.95).low == 0.0


def test_z_value() -> None:
    assert z_value(0.95) == pytest.approx(1.6448536, abs=1e-6)
    assert z_value(0.975) == pytest.approx(1.9599640, abs=1e-6)


@pytest.mark.parametrize("percent", [50.0, 90.0, 99.0, 37.3])
def test_bootstrap_percentile_matches_resampling_every_point(percent: float) -> None:
    sample = np.sort(np.random.default_rng(5).lognormal(0.0, 1.0, size=300))
    fast = bootstrap_percentile(sample, percent, 20_000, np.random.default_rng(1))
    rng = np.random.default_rng(2)
    naive = np.percentile(rng.choice(sample, size=(20_000, 300)), percent, axis=1)
    for level in (0.025, 0.25, 0.5, 0.75, 0.975):
        assert np.quantile(fast, level) == pytest.approx(np.quantile(naive, level), rel=0.03)
    assert fast.std() == pytest.approx(naive.std(), rel=0.05)


def test_bootstrap_percentile_is_seeded_and_handles_one_sample() -> None:
    sample = np.arange(10.0)
    first = bootstrap_percentile(sample, 50.0, 100, np.random.default_rng(0))
    again = bootstrap_percentile(sample, 50.0, 100, np.random.default_rng(0))
    assert np.array_equal(first, again)
    assert np.all(bootstrap_percentile(np.array([4.0]), 99.0, 10, np.random.default_rng(0)) == 4.0)


@pytest.mark.parametrize("percent", [0.0, 50.0, 90.0, 99.0, 100.0])
def test_clustered_bootstrap_is_resampling_whole_clusters(percent: float) -> None:
    rng = np.random.default_rng(3)
    sizes = rng.integers(1, 40, size=60)
    values = rng.gamma(2.0, 5.0, size=int(sizes.sum()))
    clusters = np.repeat(np.arange(60) * 7 + 3, sizes)  # any labels, in any order
    order = rng.permutation(len(values))
    values, clusters = values[order], clusters[order]
    got = stats.bootstrap_clustered_percentile(values, clusters, percent, 200,
                                               np.random.default_rng(9))  # fmt: skip
    draw = np.random.default_rng(9)
    groups = [values[clusters == label] for label in np.unique(clusters)]
    for b in range(200):
        counts = np.bincount(draw.integers(0, 60, size=60), minlength=60)
        pooled = np.concatenate([np.repeat(g, k) for g, k in zip(groups, counts, strict=True)])
        assert got[b] == np.percentile(pooled, percent)


def test_the_clustered_bootstrap_spreads_as_much_as_runs_do() -> None:
    # Requests whose gaps share a scale drawn per request: the p50 of the pooled gaps varies
    # from run to run by what resampling whole requests says, and by about three times what
    # resampling the gaps one by one says.
    rng = np.random.default_rng(5)

    def run() -> tuple[np.ndarray, np.ndarray]:
        scale = rng.lognormal(0.0, 0.5, size=300)
        gaps = rng.gamma(25.0, 1.0, size=(300, 20)) * scale[:, None]
        return gaps.ravel(), np.repeat(np.arange(300), 20)

    spread = np.std([np.percentile(run()[0], 50) for _ in range(300)])
    values, clusters = run()
    clustered = np.std(stats.bootstrap_clustered_percentile(values, clusters, 50, 2000, rng))
    independent = np.std(stats.bootstrap_percentile(np.sort(values), 50, 2000, rng))
    assert 0.75 < clustered / spread < 1.33
    assert independent / spread < 0.5


def test_the_clustered_interval_covers_a_pooled_percentile_as_often_as_it_says() -> None:
    # Requests of 10 gaps sharing a scale drawn per request; the true p90 of the pooled gaps
    # from a million of them. The order-statistic bound alone (gaps as if independent) is
    # above it in ~3/4 of the runs where 95% is promised; the clustered one in ~95%.
    rng = np.random.default_rng(11)

    def run(requests: int) -> tuple[np.ndarray, np.ndarray]:
        scale = rng.lognormal(0.0, 0.5, size=requests)
        gaps = rng.gamma(25.0, 1.0, size=(requests, 10)) * scale[:, None]
        return gaps.ravel(), np.repeat(np.arange(requests), 10)

    truth = np.percentile(run(100_000)[0], 90)
    clustered = independent = 0
    for _ in range(200):
        values, requests = run(120)
        high = stats.clustered_percentile_interval(values, requests, 90.0, 0.95, n_boot=400).high
        assert high is not None
        clustered += high >= truth
        independent += (stats.percentile_interval(values, 90.0, 0.95).high or 0.0) >= truth
    assert clustered / 200 >= 0.90
    assert independent / 200 <= 0.85


def test_a_clustered_bound_needs_as_many_clusters_as_an_independent_one_needs_values() -> None:
    values = np.random.default_rng(2).gamma(25.0, 1.0, size=400)
    few = stats.clustered_percentile_interval(values, np.repeat(np.arange(20), 20), 90.0, 0.95)
    assert few.estimate == np.percentile(values, 90)
    assert few.low is not None and few.high is None  # p90's high bound needs 29 requests
    many = stats.clustered_percentile_interval(values, np.arange(400), 90.0, 0.95)
    assert many.low is not None and many.high is not None
