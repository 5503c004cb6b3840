"""Dynamic batching for request/response models (embeddings, KServe V2 tensors).

Each submitted item gets one future. The scheduler takes the first waiting item, collects
more until the batch holds ``max_batch_size`` rows or ``max_queue_delay_ms`` has passed,
then runs the batch function once on the model thread. Every waiting caller gets its
result or the batch's failure: nobody is left hanging. A full queue refuses at once (429).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from reference_server.config import BatchingConfig
from reference_server.errors import Overloaded
from reference_server.faults import FaultInjector
from reference_server.metrics import ServerMetrics

T = TypeVar("T")
R = TypeVar("R")


class BatchSizeMismatch(RuntimeError):
    pass


@dataclass(eq=False, slots=True)
class _Pending(Generic[T, R]):
    item: T
    rows: int
    future: asyncio.Future[R]
    enqueued_at: float


class DynamicBatcher(Generic[T, R]):
    def __init__(
        self,
        name: str,
        run_batch: Callable[[list[T]], list[R]],
        limits: BatchingConfig,
        metrics: ServerMetrics,
        faults: FaultInjector,
    ) -> None:
        self.name = name
        self._run_batch = run_batch
        self._limits = limits
        self._metrics = metrics
        self._faults = faults
        self._queue: asyncio.Queue[_Pending[T, R]] = asyncio.Queue(limits.max_queue_size)
        self._carry: _Pending[T, R] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def submit(self, item: T, rows: int = 1) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Pending(item, rows, future, time.monotonic()))
        except asyncio.QueueFull:
            raise Overloaded(f"{self.name} queue is full; retry later") from None
        self._metrics.queue_depth.labels(self.name).set(self._queue.qsize())
        return await future

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            await self._faults.wait_if_stalled()
            batch = [p for p in batch if not p.future.done()]  # callers that gave up
            if not batch:
                continue
            self._observe(batch)
            try:
                results = await loop.run_in_executor(
                    self._executor, self._checked_run, [p.item for p in batch]
                )
            except Exception as exc:
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            for p, result in zip(batch, results, strict=True):
                if not p.future.done():
                    p.future.set_result(result)

    def _checked_run(self, items: list[T]) -> list[R]:
        results = self._run_batch(items)
        if len(results) != len(items):
            raise BatchSizeMismatch(f"{self.name}: {len(results)} results for {len(items)} items")
        return results

    async def _collect(self) -> list[_Pending[T, R]]:
        first = self._carry or await self._queue.get()
        self._carry = None
        batch, rows = [first], first.rows
        deadline = time.monotonic() + self._limits.max_queue_delay_ms / 1000.0
        while rows < self._limits.max_batch_size:
            try:
                nxt = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    nxt = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if rows + nxt.rows > self._limits.max_batch_size:
                self._carry = nxt  # too big for this batch: it opens the next one
                break
            batch.append(nxt)
            rows += nxt.rows
        self._metrics.queue_depth.labels(self.name).set(self._queue.qsize())
        return batch

    def _observe(self, batch: list[_Pending[T, R]]) -> None:
        now = time.monotonic()
        for p in batch:
            self._metrics.queue_time.labels(self.name).observe(now - p.enqueued_at)
        self._metrics.batch_size.labels(self.name).observe(sum(p.rows for p in batch))
