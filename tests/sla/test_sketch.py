"""The live view's sketch: every rank within its stated relative error, merging = one sketch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sla.sketch import RELATIVE_ERROR, LogHistogram


def _within(estimate: float, exact: float, a: float = RELATIVE_ERROR) -> bool:
    return abs(estimate - exact) <= a * abs(exact) + 1e-9


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=1e-3, max_value=1e6), min_size=1, max_size=300))
def test_every_rank_is_within_the_relative_error(values: list[float]) -> None:
    sketch = LogHistogram()
    sketch.add_all(values)
    exact = sorted(values)
    ranks = list(range(1, len(values) + 1))
    for k, estimate in zip(ranks, sketch.rank_values(ranks), strict=True):
        assert _within(estimate, exact[k - 1]), (k, estimate, exact[k - 1])


def test_quantiles_match_numpy_on_a_heavy_tail_within_the_error() -> None:
    rng = np.random.default_rng(7)
    values = rng.lognormal(mean=4.0, sigma=1.5, size=50_000)  # ~55 ms median, long tail
    sketch = LogHistogram()
    sketch.add_all(values.tolist())
    qs = [0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0]
    exact = np.percentile(values, [100 * q for q in qs])
    for q, estimate, want in zip(qs, sketch.quantiles(qs), exact, strict=True):
        assert _within(estimate, float(want)), (q, estimate, want)
    assert len(sketch.counts) < 1500  # bounded: buckets, not values


def test_merged_per_second_sketches_equal_one_sketch_of_everything() -> None:
    rng = np.random.default_rng(3)
    chunks = [rng.exponential(20.0, size=200).tolist() for _ in range(10)]
    whole, merged = LogHistogram(), LogHistogram()
    for chunk in chunks:
        whole.add_all(chunk)
        part = LogHistogram()
        part.add_all(chunk)
        merged.merge(part)
    assert merged.counts == whole.counts and merged.n == whole.n == 2000


def test_zeros_nan_and_an_empty_sketch() -> None:
    sketch = LogHistogram()
    assert np.isnan(sketch.quantile(0.5))
    sketch.add_all([0.0, -0.2, float("nan"), 5.0])
    assert sketch.n == 3  # NaN is no value
    assert sketch.rank_values([1, 2, 3])[:2] == [0.0, 0.0]
    assert _within(sketch.rank_value(3), 5.0)


def test_add_array_counts_as_add_does() -> None:
    """The batched path (numpy) puts every value in the bucket the one-by-one path does."""
    rng = np.random.default_rng(11)
    values = np.concatenate([rng.lognormal(2.0, 1.5, 5000), [0.0, -0.3, 1e-9, np.nan, 1.0]])
    one, batch = LogHistogram(), LogHistogram()
    one.add_all(values.tolist())
    batch.add_array(values)
    assert (batch.n, batch.zeros, batch.counts) == (one.n, one.zeros, one.counts)


def test_subtracting_a_merged_part_leaves_the_rest_and_refuses_what_it_lacks() -> None:
    """A sliding window merges each second in and subtracts it as it leaves: what remains is
    the sketch of the other seconds, bucket for bucket; an empty bucket is gone, not 0."""
    rng = np.random.default_rng(5)
    early, late = [*rng.exponential(30.0, 300).tolist(), 0.0], rng.exponential(3.0, 200).tolist()
    window, first, second, only_late = (LogHistogram() for _ in range(4))
    first.add_all(early)
    second.add_all(late)
    only_late.add_all(late)
    window.merge(first)
    window.merge(second)
    window.subtract(first)
    assert (window.n, window.zeros, window.counts) == (only_late.n, 0, only_late.counts)
    before = dict(window.counts)
    with pytest.raises(ValueError, match="does not hold"):
        window.subtract(first)  # already out: nothing changes
    assert window.counts == before and window.n == 200
