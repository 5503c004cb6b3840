"""Per-request server timings: where a request's time went inside the server.

The admission middleware stamps a request's arrival (``RequestClock``); the schedulers stamp
each sequence or batch item as it moves (admission, first token, last token; batch start and
end). From these, ``generation_timings`` and ``batch_timings`` build a ``ServerTimings``, sent
as a W3C ``Server-Timing`` header on non-streamed answers and as a ``timings`` object in the
final chunk of a stream. Only ``time.monotonic()`` stamps and integer sums on the hot path.

Components (milliseconds), for one request:

- ``queue``: arrival to admission into a batch. It holds the injected latency
  (``--fault-latency``) and the simulated capacity's wait (``capacity_rps``), which happen in
  the admission middleware before the request reaches a scheduler, the scheduler's waiting
  queue, a stall (``stall_every_s``) that holds admission, and for dynamic batching the wait
  for the batch to fill (``--max-queue-delay-ms``) or for the model to be free.
- ``prefill`` (generation): admission to the first token, the step that prefilled it.
- ``decode`` (generation): first token to last token. A stall or ``token_delay_ms`` while it
  decodes lands here.
- ``compute`` (embeddings, KServe): the batch's run on the model.
- ``total``: arrival to the moment the server writes these timings (just before the body of a
  non-streamed answer; the final chunk of a stream), so the components add up to at most it.

With several prompts (or embedding inputs) in one request the components run to the last of
them: queue to the last admission, prefill to the last first token, decode to the last token.
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass, field
from typing import Any

HEADER = "Server-Timing"


@dataclass(slots=True)
class RequestClock:
    arrived_at: float = field(default_factory=time.monotonic)


# The RequestClock of the inference request this task handles: set by the admission
# middleware, read by the handler it awaits (same task, so the same context).
_CLOCK: contextvars.ContextVar[RequestClock] = contextvars.ContextVar("slabench_request_clock")


def start_clock() -> None:
    _CLOCK.set(RequestClock())


def request_clock() -> RequestClock:
    """This request's arrival stamp (a fresh one if a handler runs outside the middleware)."""
    clock = _CLOCK.get(None)
    return clock if clock is not None else RequestClock()


@dataclass(slots=True)
class BatchStamp:
    """One dynamically batched item's passage through the model, stamped by the batcher."""

    started_at: float = 0.0  # the batch began to run on the model thread
    finished_at: float = 0.0
    batch_rows: int = 0  # rows in the batch it ran in


@dataclass(frozen=True, slots=True)
class ServerTimings:
    queue_ms: float
    total_ms: float
    prefill_ms: float | None = None  # generation
    decode_ms: float | None = None  # generation
    compute_ms: float | None = None  # embeddings, KServe
    prefill_batch: int | None = None  # sequences prefilled in the step it was prefilled in
    decode_batch_mean: float | None = None  # mean sequences per decode step it ran in
    decode_batch_max: int | None = None
    batch: int | None = None  # rows in the dynamic batch (embeddings, KServe)
    prompt_tokens: int | None = None
    cached_tokens: int | None = None  # prompt tokens taken from the prefix cache
    generated_tokens: int | None = None

    def header(self) -> str:
        """The ``Server-Timing`` value: durations as ``dur`` (ms), counts as ``desc``."""
        parts = [f"queue;dur={self.queue_ms:.3f}"]
        for name, ms in (
            ("prefill", self.prefill_ms),
            ("decode", self.decode_ms),
            ("compute", self.compute_ms),
        ):
            if ms is not None:
                parts.append(f"{name};dur={ms:.3f}")
        parts.append(f"total;dur={self.total_ms:.3f}")
        for name, count in self._counts():
            parts.append(f"{name};desc={count}")
        return ", ".join(parts)

    def _counts(self) -> list[tuple[str, str]]:
        counts: list[tuple[str, int | float | None]] = [
            ("prefill_batch", self.prefill_batch),
            ("decode_batch_mean", self.decode_batch_mean),
            ("decode_batch_max", self.decode_batch_max),
            ("batch", self.batch),
            ("cached_tokens", self.cached_tokens),
        ]
        return [
            (name, f"{value:.2f}" if isinstance(value, float) else str(value))
            for name, value in counts
            if value is not None
        ]

    def as_json(self) -> dict[str, Any]:
        """The ``timings`` object of a stream's final chunk. Also llama.cpp's field names
        with their meaning there: ``prompt_n`` (prompt tokens computed, not cached),
        ``cache_n``, ``prompt_ms``, ``predicted_n``, ``predicted_ms``."""
        out: dict[str, Any] = {"queue_ms": round(self.queue_ms, 3)}
        for name in ("prefill_ms", "decode_ms", "compute_ms"):
            value = getattr(self, name)
            if value is not None:
                out[name] = round(value, 3)
        out["total_ms"] = round(self.total_ms, 3)
        for name in ("prefill_batch", "decode_batch_mean", "decode_batch_max", "batch"):
            value = getattr(self, name)
            if value is not None:
                out[name] = round(value, 3) if isinstance(value, float) else value
        if self.prompt_tokens is not None and self.cached_tokens is not None:
            out["cached_tokens"] = self.cached_tokens
            out["prompt_n"] = self.prompt_tokens - self.cached_tokens
            out["cache_n"] = self.cached_tokens
            out["prompt_ms"] = out.get("prefill_ms", 0.0)
        if self.generated_tokens is not None:
            out["predicted_n"] = self.generated_tokens
            out["predicted_ms"] = out.get("decode_ms", 0.0)
        return out


def _ms(start: float, end: float) -> float:
    return max(0.0, (end - start) * 1000.0)


@dataclass(slots=True)
class SequenceStamps:
    """What the generation engine stamps on a sequence (``Sequence.stamps``)."""

    admitted_at: float = 0.0
    first_token_at: float = 0.0  # end of its prefill step
    last_token_at: float = 0.0  # end of the step of its last generated token
    prefill_batch: int = 0
    decode_steps: int = 0
    decode_batch_sum: int = 0
    decode_batch_max: int = 0


def generation_timings(
    clock: RequestClock,
    stamps: list[SequenceStamps],
    *,
    prompt_tokens: int,
    cached_tokens: int,
    generated_tokens: int,
) -> ServerTimings:
    """The timings of a generation request whose sequences carry ``stamps``, now."""
    now = time.monotonic()
    start = clock.arrived_at
    admitted = max((s.admitted_at for s in stamps), default=start) or now
    first = max((s.first_token_at for s in stamps), default=admitted) or now
    last = max([first, *(s.last_token_at for s in stamps)])
    steps = sum(s.decode_steps for s in stamps)
    return ServerTimings(
        queue_ms=_ms(start, admitted),
        prefill_ms=_ms(admitted, first),
        decode_ms=_ms(first, last),
        total_ms=_ms(start, now),
        prefill_batch=max((s.prefill_batch for s in stamps), default=0),
        decode_batch_mean=sum(s.decode_batch_sum for s in stamps) / steps if steps else 0.0,
        decode_batch_max=max((s.decode_batch_max for s in stamps), default=0),
        prompt_tokens=prompt_tokens,
        cached_tokens=cached_tokens,
        generated_tokens=generated_tokens,
    )


def batch_timings(clock: RequestClock, stamps: list[BatchStamp]) -> ServerTimings:
    """The timings of an embeddings or KServe request whose items carry ``stamps``, now."""
    now = time.monotonic()
    start = clock.arrived_at
    began = max((s.started_at for s in stamps), default=start)
    ended = max([began, *(s.finished_at for s in stamps)])
    return ServerTimings(
        queue_ms=_ms(start, began),
        compute_ms=_ms(began, ended),
        total_ms=_ms(start, now),
        batch=max((s.batch_rows for s in stamps), default=0),
    )
