"""Send one prepared request and record exactly what happened.

Timestamps come from ``loadtests.client.clock.now`` at the moments that define the metrics:
``sent_at`` just before the request leaves, ``first_token_at`` at the read that completed
the first token-bearing SSE event (not at the response headers), ``first_output_at`` at the
read that completed the first visible output (``loadtests.client.openai_stream`` says which
chunks are which), ``done_at`` when the body is complete. ``cached_tokens`` and
``reasoning_tokens`` come from the server's usage (streamed or not), None when it has none.
The server's own timings (``server_*_ms``, ``server_timing_source``) come from a stream's
final ``timings`` object, or from a non-streamed answer's body ``timings`` or its headers
(``loadtests.client.server_timings``). ``client_processing_ms`` is the load generator's own
time after the last byte: parsing the last read (a stream: with the reads held before it,
see ``_holds``; not the wait for the connection's end after ``[DONE]``), finishing the
result and handing the reply on, up to building the record (NaN for a failed request).
Errors of every kind become a record with a one-line reason, never an exception: the
caller always gets a ``RequestRecord``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import gevent
from geventhttpclient.response import HTTPParseError, HTTPSocketPoolResponse

from loadtests.client.backoff import RATE_LIMIT_STATUSES, parse_retry_after
from loadtests.client.clock import now
from loadtests.client.failures import connection_failure
from loadtests.client.openai_stream import StreamAccumulator, StreamResult
from loadtests.client.protocols import PreparedRequest, read_answer
from loadtests.client.server_timings import ServerTimes, from_headers, from_timings
from loadtests.client.sse import SSEParser
from loadtests.client.stream_reads import StreamReads, stream_reads
from loadtests.client.transport import (
    IdleTimeout,
    IdleWatch,
    Transport,
    discard,
    finish,
)
from sla.files import error_class as ec
from sla.files.error_class import bound_error
from sla.files.run import CANCELLED_ERROR, RequestRecord

NAN = math.nan
_DRAIN_S = 1.0
CANCELLED = CANCELLED_ERROR


@dataclass(frozen=True, slots=True)
class Timeouts:
    idle_s: float  # longest silence between two reads of a streamed body
    total_s: float  # whole request, send to last byte


class _Idle(Exception):
    pass


class Backoff(Protocol):
    """What decides a closed-loop user's wait after a request
    (``loadtests.client.backoff.ClosedLoopBackoff``)."""

    def wait_after(
        self, status: int, error_class: str | None, retry_after_s: float | None
    ) -> float: ...


def execute(
    transport: Transport,
    req: PreparedRequest,
    *,
    request_id: str,
    worker: str,
    timeouts: Timeouts,
    on_record: Callable[[RequestRecord], None],
    scheduled_at: float = NAN,
    backoff: Backoff | None = None,
    on_reply: Callable[[str], None] | None = None,
    count_tokens: Callable[[str], int] | None = None,
) -> RequestRecord:
    """Send ``req`` and hand its record to ``on_record`` (also when the greenlet is killed).
    With ``backoff`` (a closed-loop user), the record's ``backoff_ms`` is the wait it asks
    for after this request; the caller waits. With ``on_reply`` (a conversation, which
    appends the reply to its history), a successful OpenAI answer's text is handed to it
    before the record is. With ``count_tokens`` (``--tokenizer``), a streamed answer whose
    server reported no usage counts its output tokens in its text (source "tokenizer")."""
    ids = _Ids(req, request_id, worker, scheduled_at, now(), on_reply, count_tokens)
    try:
        rec, retry_after_s = _attempt(transport, ids, timeouts)
    except gevent.GreenletExit:
        # Locust kills users when a test stops (a stop signal never lands here: see
        # harness.stopping): the request may have reached the server, so keep its row and
        # say why it ended.
        on_record(_failed(ids, ec.CANCELLED, CANCELLED))
        raise
    if backoff is not None:
        wait_s = backoff.wait_after(rec.status, rec.error_class, retry_after_s)
        if wait_s > 0:
            rec = replace(rec, backoff_ms=wait_s * 1000.0)
    on_record(rec)
    return rec


@dataclass(frozen=True, slots=True)
class _Ids:
    req: PreparedRequest
    request_id: str
    worker: str
    scheduled_at: float
    sent_at: float
    on_reply: Callable[[str], None] | None = None
    count_tokens: Callable[[str], int] | None = None


def _attempt(
    transport: Transport, ids: _Ids, timeouts: Timeouts
) -> tuple[RequestRecord, float | None]:
    """The record of one request, and the ``Retry-After`` of a 429/503 answer (seconds)."""
    req = ids.req
    total = gevent.Timeout(timeouts.total_s)
    total.start()
    response: HTTPSocketPoolResponse | None = None
    retry_after_s: float | None = None
    try:
        response = transport.send(req.method, req.path, req.body)
        status = response.status_code
        if status in RATE_LIMIT_STATUSES:
            retry_after_s = _retry_after(response)
        if req.reader == "openai_sse" and status == 200:
            return _stream(response, ids, timeouts), None
        body, done_at = _read_body(response, ids, timeouts.idle_s)
        return _answered(ids, status, body, done_at, response.get), retry_after_s
    except gevent.Timeout as exc:
        if exc is not total:
            raise
        message = f"timeout: no complete answer in {timeouts.total_s:g}s"
        return _failed(ids, ec.TOTAL_TIMEOUT, message), None
    except (_Idle, IdleTimeout):
        return _failed(ids, ec.IDLE_TIMEOUT, f"timeout: no data for {timeouts.idle_s:g}s"), None
    except OSError as exc:
        error_class, message = connection_failure(exc, answered=response is not None)
        return _failed(ids, error_class, message), retry_after_s
    except HTTPParseError as exc:  # not an OSError; HTTPConnectionClosed: closed before headers
        if "closed" in str(exc):
            return _failed(ids, ec.RESET, f"connection reset before the answer: {exc}"), None
        return _failed(ids, ec.MALFORMED_BODY, f"malformed HTTP response: {exc}"), None
    except Exception as exc:
        return _failed(ids, ec.CLIENT_ERROR, f"{type(exc).__name__}: {exc}"), None
    finally:
        total.close()
        if response is not None:
            finish(response)


def _retry_after(response: HTTPSocketPoolResponse) -> float | None:
    value = response.get("retry-after")
    if isinstance(value, list):
        value = value[0] if value else None
    return parse_retry_after(value, now())


def _answered(
    ids: _Ids,
    status: int,
    body: bytes,
    done_at: float,
    header: Callable[[str], object] = lambda name: None,
) -> RequestRecord:
    """The record of a request answered in one body (not streamed); ``header`` gives the
    answer's headers by lower-case name."""
    answer = read_answer(ids.req.reader, status, body)
    if ids.on_reply is not None and answer.error is None and answer.text is not None:
        ids.on_reply(answer.text)
    times = None
    if answer.error is None:
        times = from_timings(answer.timings) if answer.timings is not None else None
        times = times or from_headers(header)
    server = times or _NO_TIMES
    return RequestRecord(
        ids.request_id,
        ids.worker,
        ids.req.endpoint,
        ids.scheduled_at,
        ids.sent_at,
        NAN,
        done_at,
        status,
        None if answer.error is None else bound_error(answer.error),
        _first(answer.input_tokens, ids.req.input_tokens_hint),
        *_answer_tokens(ids, answer.output_tokens, answer.text if answer.error is None else None),
        0,
        (),
        answer.error_class,
        session_id=ids.req.session_id,
        turn=ids.req.turn,
        cached_tokens=answer.cached_tokens,
        reasoning_tokens=answer.reasoning_tokens,
        server_queue_ms=server.queue_ms,
        server_prefill_ms=server.prefill_ms,
        server_decode_ms=server.decode_ms,
        server_total_ms=server.total_ms,
        server_timing_source=server.source or None,
        client_processing_ms=(now() - done_at) * 1000.0 if answer.error is None else NAN,
    )


_NO_TIMES = ServerTimes("")  # the server said nothing: every figure NaN, no source


def _answer_tokens(ids: _Ids, usage: int | None, text: str | None) -> tuple[int | None, str | None]:
    """A whole answer's output tokens and their source: the usage, else the tokenizer's count."""
    if usage is not None:
        return usage, "usage"
    if ids.count_tokens is not None and text:
        return ids.count_tokens(text), "tokenizer"
    return None, None


def _first(value: int | None, fallback: int | None) -> int | None:
    return value if value is not None else fallback


def _read_body(response: HTTPSocketPoolResponse, ids: _Ids, idle_s: float) -> tuple[bytes, float]:
    """A whole answer's body and when it was complete: the stamp of its last read (on a
    plain TCP connection the kernel's receive time of its bytes, ``stream_reads``), read
    with the stream's reader, looked at once at the end. Raises ``IdleTimeout`` after
    ``idle_s`` without data."""
    watch = IdleWatch(idle_s, started_at=now())
    reads = stream_reads(response, watch, hold=_always, limit=_WHOLE, not_before=ids.sent_at)
    reads.eager = False  # no look before the end (no yield since the reader was made)
    try:
        while reads.complete_at is None:
            reads.wait()
    finally:
        watch.close()
        reads.close()
    return b"".join(reads.data), reads.complete_at


def _always(data: bytes) -> bool:
    return True


_WHOLE = 1 << 62  # reads a whole answer's reader may hold


def _stream(response: HTTPSocketPoolResponse, ids: _Ids, timeouts: Timeouts) -> RequestRecord:
    parser, acc = SSEParser(), StreamAccumulator()
    error: tuple[str, str] | None = None  # a transport failure: its class and message
    ended = True
    t = ids.sent_at
    parsed_s = NAN
    # The idle timeout is one timer for the stream (IdleWatch), not the socket's: gevent
    # would arm a timer for each blocking read to enforce a socket timeout.
    watch = IdleWatch(timeouts.idle_s, started_at=now())
    reads = stream_reads(response, watch, hold=_holds, limit=_HELD_READS, not_before=ids.sent_at)
    try:
        while True:
            reads.wait()  # reads held (see _holds) come with the one that ends them
            stopped_at = _parse_held(parser, acc, reads.data, reads.times)
            if stopped_at is not None:
                t = stopped_at
                break
            if reads.complete_at is not None:
                t = reads.complete_at
                break
            reads.eager = parser.pending  # an event is open: parse the next read at once
        watch.close()
        parsed_s = now() - t  # the load generator's own time after the last read
        if acc.stopped and reads.complete_at is None:
            _drain(reads)  # waits on the network: not the load generator's time
    except IdleTimeout:
        error, ended = (ec.IDLE_TIMEOUT, f"timeout: no data for {timeouts.idle_s:g}s"), False
    except gevent.Timeout:  # the request's total timeout; keep the timings gathered so far
        message = f"timeout: no complete answer in {timeouts.total_s:g}s"
        error, ended = (ec.TOTAL_TIMEOUT, message), False
    except OSError as exc:
        error, ended = connection_failure(exc, answered=True), False
    finally:
        watch.close()
        reads.close()
    if reads.data:
        # A failure cut the stream short: parse what had arrived. If a held read stopped
        # the stream (an event only the parse finds malformed), the answer ended there,
        # before the failure, as it would have with each read parsed on arrival.
        stopped_at = _parse_held(parser, acc, reads.data, reads.times)
        if stopped_at is not None:
            t, error, ended = stopped_at, None, True
    if not response.message_complete:
        discard(response)  # cut off mid-body: never reuse this connection
    resumed_at = now()
    result = acc.finish(t if ended else resumed_at, stream_ended=ended)
    return _streamed(ids, response.status_code, error, result, (parsed_s, resumed_at))


# How many reads of a stream may wait to be parsed together (at most 4 KB each: the
# transport's block size).
_HELD_READS = 16


def _holds(data: bytes) -> bool:
    """Whether a read may wait to be parsed with the stream's next reads: it is whole
    ordinary chunks (``data: {...}`` events, the first starting the read, the last ending
    it) and holds nothing that could end the stream (``[DONE]``, an error).

    Parsing a stream's reads a few at a time costs the load generator less than parsing
    each on arrival (the parser's code and state stay warm: ~0.1 ms of CPU less per
    16-token stream, ``benchmarks.floor_layers``), and changes no figure: every event is
    still timed by the read that completed it. What it must not change is when a stream
    ends, so a read that can end it is parsed at once, with those held before it. An event
    the parse alone finds malformed also ends a stream; it is found when the held reads
    are parsed (at most ``_HELD_READS`` reads later, or at the body's end), and its time is
    still the read's."""
    return (
        data[:7] == b"data: {"
        and data[-2:] == b"\n\n"
        and b"[DONE]" not in data
        and b"error" not in data
    )


def _parse_held(
    parser: SSEParser, acc: StreamAccumulator, held: list[bytes], times: list[float]
) -> float | None:
    """Parse the held reads, oldest first, and forget them; the arrival time of the read
    that stopped the stream (``[DONE]``, an error), None if none did.

    Reads that are together nothing but whole one-line ``data:`` events (the usual case)
    are split into events in one go; each event still goes with the read that ended it
    (the one holding its closing blank line)."""
    stopped_at = None
    events = parser.plain_events(b"".join(held)) if len(held) > 1 else None
    ends = [data.count(b"\n\n") for data in held] if events is not None else ()
    if events is not None and sum(ends) == len(events):
        first = 0
        for end, at in zip(ends, times, strict=True):
            acc.on_events(events[first : first + end], at)
            first += end
            if acc.stopped:
                stopped_at = at
                break
    else:
        for data, at in zip(held, times, strict=True):
            acc.on_events(parser.feed_compact(data), at)
            if acc.stopped:
                stopped_at = at
                break
    held.clear()
    times.clear()
    return stopped_at


def _streamed(
    ids: _Ids,
    status: int,
    error: tuple[str, str] | None,
    result: StreamResult,
    processing: tuple[float, float] = (NAN, NAN),
) -> RequestRecord:
    """The record of a streamed request; ``error`` (a transport failure: class, message)
    wins over the stream's own. ``processing``: the seconds spent on the last read, and when
    the load generator resumed its work after draining the connection."""
    error_class, message = error if error is not None else (result.error_class, result.error)
    if ids.on_reply is not None and message is None:
        ids.on_reply(result.text)
    parsed_s, resumed_at = processing
    server = (result.server_timings if message is None else None) or _NO_TIMES

    output_tokens, source = _output_tokens(ids, result)
    return RequestRecord(
        ids.request_id,
        ids.worker,
        ids.req.endpoint,
        ids.scheduled_at,
        ids.sent_at,
        result.first_token_at if result.first_token_at is not None else NAN,
        result.done_at,
        status,
        None if message is None else bound_error(message),
        _first(result.usage_prompt_tokens, ids.req.input_tokens_hint),
        output_tokens,
        source,
        result.chunk_count,
        tuple(result.chunk_gaps_ms),  # a tuple of floats: untracked by the GC once stored
        error_class,
        session_id=ids.req.session_id,
        turn=ids.req.turn,
        cached_tokens=result.usage_cached_tokens,
        reasoning_tokens=result.usage_reasoning_tokens,
        first_output_at=result.first_output_at if result.first_output_at is not None else NAN,
        server_queue_ms=server.queue_ms,
        server_prefill_ms=server.prefill_ms,
        server_decode_ms=server.decode_ms,
        server_total_ms=server.total_ms,
        server_timing_source=server.source or None,
        client_processing_ms=(parsed_s + now() - resumed_at) * 1000.0 if message is None else NAN,
    )


def _output_tokens(ids: _Ids, result: StreamResult) -> tuple[int, str]:
    """The usage's count; else the tokenizer's count of the text (when there is one and the
    stream had text), else the token-bearing chunks."""
    if result.output_tokens_source == "chunks" and ids.count_tokens is not None and result.text:
        return ids.count_tokens(result.text), "tokenizer"
    return result.output_tokens, result.output_tokens_source


def _drain(reads: StreamReads) -> None:
    """After [DONE], read the end of the body so the connection can be reused."""
    reads.draining = True
    try:
        with gevent.Timeout(_DRAIN_S, _Idle):
            while reads.complete_at is None:
                reads.wait()
    except (_Idle, OSError, gevent.Timeout):
        # The answer is complete; only the connection is lost (the caller discards it). The
        # request's total timeout firing here must not turn a complete answer into an error.
        pass


def _failed(ids: _Ids, error_class: str, error: str) -> RequestRecord:
    return RequestRecord(
        ids.request_id,
        ids.worker,
        ids.req.endpoint,
        ids.scheduled_at,
        ids.sent_at,
        NAN,
        now(),
        0,
        bound_error(error),
        ids.req.input_tokens_hint,
        None,
        None,
        0,
        (),
        error_class,
        session_id=ids.req.session_id,
        turn=ids.req.turn,
    )
