"""DynamicBatcher in process: routing, batch limits, failures reaching every caller, and
refusal when the queue is full. The batch functions are plain Python, so no model runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from reference_server.batcher import BatchSizeMismatch, DynamicBatcher
from reference_server.config import BatchingConfig, FaultConfig
from reference_server.errors import Overloaded
from reference_server.faults import FaultInjector
from reference_server.metrics import ServerMetrics, create_metrics

BatchFn = Callable[[list[int]], list[Any]]


class Recorder:
    """A batch function that remembers every batch it was given."""

    def __init__(self, answer: Callable[[list[int]], list[Any]]) -> None:
        self.batches: list[list[int]] = []
        self._answer = answer

    def __call__(self, items: list[int]) -> list[Any]:
        self.batches.append(list(items))
        return self._answer(items)


def make(
    run_batch: BatchFn, metrics: ServerMetrics | None = None, **limits: Any
) -> DynamicBatcher[int, Any]:
    config = BatchingConfig(**{"max_queue_delay_ms": 1.0, **limits})
    return DynamicBatcher(
        "test", run_batch, config, metrics or create_metrics(), FaultInjector(FaultConfig())
    )


@contextlib.asynccontextmanager
async def running(batcher: DynamicBatcher[int, Any]) -> AsyncIterator[None]:
    task = asyncio.create_task(batcher.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        batcher.close()


def test_results_reach_the_callers_that_asked_for_them() -> None:
    record = Recorder(lambda items: [x * 10 for x in items])
    batcher = make(record, max_batch_size=4)

    async def main() -> list[Any]:
        async with running(batcher):
            return await asyncio.gather(*(batcher.submit(i) for i in range(20)))

    assert asyncio.run(main()) == [i * 10 for i in range(20)]
    # All twenty were queued before the scheduler woke, so every batch is full.
    assert [len(b) for b in record.batches] == [4] * 5
    assert sorted(x for b in record.batches for x in b) == list(range(20))


def test_rows_never_exceed_max_batch_size_and_oversized_item_opens_next_batch() -> None:
    record = Recorder(lambda items: items)
    batcher = make(record, max_batch_size=4)
    rows = {10: 2, 11: 3, 12: 1, 13: 4}

    async def main() -> list[Any]:
        async with running(batcher):
            return await asyncio.gather(*(batcher.submit(i, rows=n) for i, n in rows.items()))

    assert asyncio.run(main()) == list(rows)
    assert record.batches == [[10], [11, 12], [13]]


def test_a_failing_batch_raises_in_every_caller_and_the_batcher_carries_on() -> None:
    calls = 0

    def flaky(items: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("model exploded")
        return items

    batcher = make(flaky, max_batch_size=8)

    async def main() -> tuple[list[Any], int]:
        async with running(batcher):
            first = await asyncio.gather(
                *(batcher.submit(i) for i in range(5)), return_exceptions=True
            )
            return first, await batcher.submit(99)

    failed, later = asyncio.run(main())
    assert len(failed) == 5
    assert all(isinstance(e, RuntimeError) and str(e) == "model exploded" for e in failed)
    assert later == 99


def test_a_wrong_length_result_raises_in_every_caller() -> None:
    batcher = make(lambda items: items[:-1], max_batch_size=8)

    async def main() -> list[Any]:
        async with running(batcher):
            return await asyncio.gather(
                *(batcher.submit(i) for i in range(3)), return_exceptions=True
            )

    errors = asyncio.run(main())
    assert all(isinstance(e, BatchSizeMismatch) for e in errors)
    assert "2 results for 3 items" in str(errors[0])


def test_a_full_queue_refuses_at_once() -> None:
    metrics = create_metrics()
    batcher = make(lambda items: items, metrics, max_queue_size=2)

    async def main() -> None:
        # No scheduler runs, so the first two stay queued and the third finds no room.
        waiting = [asyncio.create_task(batcher.submit(i)) for i in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(Overloaded) as refused:
            await batcher.submit(2)
        assert refused.value.status == 429 and refused.value.reason == "queue_full"
        depth = metrics.registry.get_sample_value("slabench_queue_depth", {"queue": "test"})
        assert depth == 2
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        batcher.close()

    asyncio.run(main())


def test_callers_that_gave_up_are_left_out_of_the_batch() -> None:
    record = Recorder(lambda items: items)
    batcher = make(record, max_batch_size=8)

    async def main() -> list[Any]:
        tasks = [asyncio.create_task(batcher.submit(i)) for i in range(4)]
        await asyncio.sleep(0)  # all four are queued
        tasks[1].cancel()
        async with running(batcher):
            return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(main())
    assert isinstance(results[1], asyncio.CancelledError)
    assert [results[0], results[2], results[3]] == [0, 2, 3]
    assert record.batches == [[0, 2, 3]]


def test_batch_sizes_and_queue_times_are_recorded() -> None:
    metrics = create_metrics()
    batcher = make(lambda items: items, metrics, max_batch_size=3)

    async def main() -> None:
        async with running(batcher):
            await asyncio.gather(*(batcher.submit(i) for i in range(7)))

    asyncio.run(main())
    sample = metrics.registry.get_sample_value
    assert sample("slabench_batch_size_count", {"queue": "test"}) == 3
    assert sample("slabench_batch_size_sum", {"queue": "test"}) == 7
    assert sample("slabench_queue_time_seconds_count", {"queue": "test"}) == 7
