"""Dynamic batching for request/response models (embeddings, KServe V2 tensors).

Each submitted item gets one future. The scheduler takes the first waiting item, collects
more until the batch holds ``max_batch_size`` rows or ``max_queue_delay_ms`` has passed
since that item arrived, then runs the batch function once on the model thread. While
the model is busy, requests accumulate; a full batch is queued right behind the running
one, so that under saturation the model thread never waits for the event loop between
batches. Every waiting caller gets its result or the batch's failure: nobody is left
hanging. A full queue refuses at once (429).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from reference_server.config import BatchingConfig
from reference_server.errors import Overloaded, Unavailable
from reference_server.faults import FaultInjector
from reference_server.metrics import ServerMetrics
from reference_server.timings import BatchStamp

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
    stamp: BatchStamp | None


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
        self._waiting_rows = 0  # rows in the queue and the carry
        self._full = asyncio.Event()  # set when a full batch is waiting
        self._inflight: list[asyncio.Future[list[R]]] = []  # handed to the model thread
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def submit(self, item: T, rows: int = 1, stamp: BatchStamp | None = None) -> R:
        """The item's result; ``stamp``, if given, gets its batch's start, end and size."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Pending(item, rows, future, time.monotonic(), stamp))
        except asyncio.QueueFull:
            raise Overloaded(f"{self.name} queue is full; retry later") from None
        self._waiting_rows += rows
        if self._waiting_rows >= self._limits.max_batch_size:
            self._full.set()
        self._metrics.queue_depth.labels(self.name).set(self._queue.qsize())
        return await future

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def run(self) -> None:
        while True:
            await self._model_ready()
            batch = await self._collect()
            await self._faults.wait_if_stalled()
            batch = [p for p in batch if not p.future.done()]  # callers that gave up
            if batch:
                self._start(batch)

    async def _model_ready(self) -> None:
        """Return when the next batch should be formed: the model thread is idle, or busy
        with one batch while a full one waits. The full one is then queued right behind,
        so that the model thread goes on without a hop through the event loop between
        batches; a batch that is not full keeps filling until the model is free."""
        if len(self._inflight) > 1:
            await asyncio.wait(self._inflight[:1])
        if not self._inflight or self._waiting_rows >= self._limits.max_batch_size:
            return
        self._full.clear()
        full: asyncio.Future[Any] = asyncio.ensure_future(self._full.wait())
        either: list[asyncio.Future[Any]] = [self._inflight[-1], full]
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            full.cancel()

    def _start(self, batch: list[_Pending[T, R]]) -> None:
        loop = asyncio.get_running_loop()
        done = loop.run_in_executor(self._executor, self._checked_run, batch)
        self._inflight.append(done)
        done.add_done_callback(self._inflight.remove)
        done.add_done_callback(functools.partial(self._deliver, batch))

    def _checked_run(self, batch: list[_Pending[T, R]]) -> list[R]:
        """Runs on the model thread."""
        self._observe(batch)
        results = self._run_batch([p.item for p in batch])
        if len(results) != len(batch):
            raise BatchSizeMismatch(f"{self.name}: {len(results)} results for {len(batch)} items")
        now = time.monotonic()
        for p in batch:
            if p.stamp is not None:
                p.stamp.finished_at = now
        return results

    def _deliver(self, batch: list[_Pending[T, R]], done: asyncio.Future[list[R]]) -> None:
        """Every caller gets its result or the batch's failure: nobody is left hanging."""
        if done.cancelled():
            error: BaseException = Unavailable(f"{self.name} stopped before the batch ran")
        elif (exc := done.exception()) is not None:
            error = exc
        else:
            for p, result in zip(batch, done.result(), strict=True):
                if not p.future.done():
                    p.future.set_result(result)
            return
        for p in batch:
            if not p.future.done():
                p.future.set_exception(error)

    async def _collect(self) -> list[_Pending[T, R]]:
        first = self._carry or await self._queue.get()
        self._carry = None
        batch, rows = [first], first.rows
        # The delay counts from the oldest request's arrival (as Triton's does): requests
        # that already waited out a busy model are not held back any longer.
        deadline = first.enqueued_at + self._limits.max_queue_delay_ms / 1000.0
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
        self._waiting_rows -= rows
        self._metrics.queue_depth.labels(self.name).set(self._queue.qsize())
        return batch

    def _observe(self, batch: list[_Pending[T, R]]) -> None:
        now = time.monotonic()
        rows = sum(p.rows for p in batch)
        for p in batch:
            self._metrics.queue_time.labels(self.name).observe(now - p.enqueued_at)
            if p.stamp is not None:
                p.stamp.started_at, p.stamp.batch_rows = now, rows
        self._metrics.batch_size.labels(self.name).observe(rows)
