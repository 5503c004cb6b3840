from __future__ import annotations

import math
from itertools import islice

import numpy as np
import numpy.typing as npt
import pytest

from loadtests.errors import LoadSpecError
from loadtests.workloads.arrivals import ArrivalSpec, for_worker, parse_arrival, send_offsets

N = 100_000


def _offsets(spec: ArrivalSpec, n: int = N, block: int = 4096) -> npt.NDArray[np.float64]:
    return np.fromiter(islice(send_offsets(spec, block), n), dtype=np.float64, count=n)


def _gaps(spec: ArrivalSpec, n: int = N) -> npt.NDArray[np.float64]:
    return np.diff(_offsets(spec, n), prepend=0.0)  # the first gap runs from t0


def test_constant_offsets_are_exactly_k_over_rate_even_after_a_million() -> None:
    spec = parse_arrival("constant", 7.0, 1.0, 0)
    offsets = _offsets(spec, 1_000_003, block=1000)
    k = np.arange(1_000_003, dtype=np.float64)
    assert offsets[0] == 0.0
    assert np.array_equal(offsets, k / 7.0)
    assert offsets[1_000_000] == 1_000_000 / 7.0


@pytest.mark.parametrize(
    ("kind", "burstiness"), [("poisson", 1.0), ("gamma", 0.25), ("gamma", 1.0), ("gamma", 4.0)]
)
def test_mean_rate_matches_within_five_standard_errors(kind: str, burstiness: float) -> None:
    rate = 50.0
    gaps = _gaps(parse_arrival(kind, rate, burstiness, seed=11))
    # Gaps are Gamma(k, 1/(rate*k)): mean 1/rate, standard deviation 1/(rate*sqrt(k)).
    standard_error = 1 / (rate * math.sqrt(burstiness)) / math.sqrt(N)
    assert abs(gaps.mean() - 1 / rate) < 5 * standard_error


@pytest.mark.parametrize("burstiness", [0.25, 1.0, 4.0])
def test_gap_coefficient_of_variation_is_one_over_sqrt_burstiness(burstiness: float) -> None:
    gaps = _gaps(parse_arrival("gamma", 10.0, burstiness, seed=3))
    cv = gaps.std() / gaps.mean()
    # Standard error of a sample std: sigma * sqrt((kurtosis - 1) / (4N)); gamma kurtosis 3 + 6/k.
    relative_se = math.sqrt((2 + 6 / burstiness) / (4 * N))
    assert abs(cv * math.sqrt(burstiness) - 1) < 5 * relative_se


def test_poisson_and_gamma_one_give_the_same_stream() -> None:
    poisson = _offsets(parse_arrival("poisson", 5.0, 1.0, seed=9), 1000)
    gamma = _offsets(parse_arrival("gamma", 5.0, 1.0, seed=9), 1000)
    assert np.array_equal(poisson, gamma)


@pytest.mark.parametrize("kind", ["poisson", "gamma"])
def test_random_offsets_are_nondecreasing_and_start_after_t0(kind: str) -> None:
    offsets = _offsets(parse_arrival(kind, 1000.0, 0.1 if kind == "gamma" else 1.0, seed=1))
    assert offsets[0] > 0
    assert np.all(np.diff(offsets) >= 0)
    # Across block boundaries too: the 4096th offset continues the first block.
    assert offsets[4096] >= offsets[4095]


def test_random_offsets_are_determined_by_the_seed_and_not_the_block_size() -> None:
    spec = parse_arrival("gamma", 20.0, 0.5, seed=42)
    first = _offsets(spec, 10_000)
    assert np.array_equal(first, _offsets(spec, 10_000))
    assert np.allclose(first, _offsets(spec, 10_000, block=7), rtol=1e-12)
    assert not np.allclose(first, _offsets(parse_arrival("gamma", 20.0, 0.5, seed=43), 10_000))


def test_worker_shares_split_the_rate_with_distinct_seeds() -> None:
    spec = parse_arrival("poisson", 120.0, 1.0, seed=5)
    shares = [for_worker(spec, i, 4) for i in range(4)]
    assert [s.rate_rps for s in shares] == [30.0] * 4
    assert len({s.seed for s in shares}) == 4
    assert for_worker(spec, 0, 1) == spec
    merged = np.sort(np.concatenate([_offsets(s, 25_000) for s in shares]))
    horizon_s = min(_offsets(s, 25_000)[-1] for s in shares)
    within = merged[merged <= horizon_s]
    expected = 120.0 * horizon_s
    assert abs(len(within) - expected) < 5 * math.sqrt(expected)  # Poisson count: sd = sqrt(mean)


def test_merged_constant_worker_schedules_are_evenly_spaced() -> None:
    spec = parse_arrival("constant", 100.0, 1.0, seed=0)
    merged = np.sort(np.concatenate([_offsets(for_worker(spec, i, 3), 10_000) for i in range(3)]))
    assert merged[0] == 0.0
    assert np.allclose(np.diff(merged), 0.01, rtol=1e-9, atol=0)
    assert np.allclose(merged, np.arange(30_000) / 100.0, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("uniform", 10.0, 1.0, 0), "unknown arrival kind 'uniform'; use one of constant,"),
        (("poisson", 0.0, 1.0, 0), "arrival rate must be a number > 0 requests/s, got 0.0"),
        (("poisson", -3.0, 1.0, 0), "arrival rate must be a number > 0"),
        (("constant", math.inf, 1.0, 0), "arrival rate must be a number > 0"),
        (("gamma", math.nan, 1.0, 0), "arrival rate must be a number > 0"),
        (("gamma", 10.0, 0.0, 0), "burstiness must be > 0"),
        (("gamma", 10.0, -1.0, 0), "burstiness must be > 0"),
        (("gamma", 10.0, math.nan, 0), "burstiness must be > 0"),
        (("poisson", 10.0, 0.5, 0), "only applies to gamma arrivals"),
        (("constant", 10.0, 2.0, 0), "only applies to gamma arrivals"),
        (("gamma", 10.0, 1.0, -1), "arrival seed must be >= 0"),
    ],
)
def test_bad_arrival_values_are_rejected_in_one_line(
    args: tuple[str, float, float, int], expected: str
) -> None:
    with pytest.raises(LoadSpecError) as caught:
        parse_arrival(*args)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_programming_errors_stay_plain_value_errors() -> None:
    spec = parse_arrival("constant", 1.0, 1.0, 0)
    for index, count in [(2, 2), (-1, 2), (0, 0)]:
        with pytest.raises(ValueError, match="0 <= index < count"):
            for_worker(spec, index, count)
    with pytest.raises(ValueError, match="block must be >= 1"):
        send_offsets(spec, block=0)
