"""The reads of a streamed body, each stamped when it completed, handed over in batches.

A streamed answer arrives as one socket read per event or so (a 16-token chat completion:
about twenty). ``StreamReads`` stamps each read (on a plain TCP socket with the kernel's
receive time, below; else with ``loadtests.client.clock.now`` as it returns) and keeps it,
with its stamp, until the reader must look: ``hold(data)`` says
whether a read may wait for the next ones (``measure._holds``: it cannot end the stream),
at most ``limit`` reads wait, and the first read after ``eager`` was set (the stream
starts, or an event is open) is handed over at once, as are the body's end and a
failure. The caller parses what it is handed (``data``, ``times``, oldest first) and
clears both lists.

On a plain TCP connection (``LoopReads``) the reads are made in the event loop's own
callback for the socket: the loop calls it when the socket is readable, it reads, stamps
and keeps the bytes, and wakes the waiting greenlet only when the reader must look.
Reading in the greenlet instead (``GreenletReads``, what gevent's sockets do) switches
into it and out again for every read, and tries each read once before it waits (half of
the reads fail with EAGAIN): at 32 streams that costs the load generator ~0.2 ms of CPU
a 16-token stream (``benchmarks.floor_layers``, the ``gevent`` and ``watcher`` layers).
A greenlet woken while other callbacks of the loop's pass are pending (other streams'
reads, ready now) resumes after them, so their reads do not wait for its parsing.

On those plain TCP reads the stamp is the kernel's: the socket asks for a receive
timestamp (``SO_TIMESTAMPNS``), and each read comes with the time the last of its bytes
reached the socket. So a read made late (the loop busy with other streams' work, a
garbage-collector pause, the core taken by other work) is still stamped when its bytes
arrived: the generator's own delays stay out of the request's times. The kernel's clock
is the wall clock; the stamp is moved onto ``loadtests.client.clock``'s by the two clocks'
difference read right after the read (``kernel_stamp``). A read without a timestamp, or
with one outside the stream's time (before ``not_before``, after the read returned), is
stamped when the read returned, as TLS reads are.

TLS connections are read in the greenlet: a TLS socket can hold decrypted bytes that
the next read returns without the socket being readable again, so the loop's readiness
does not say when there is data. Their stamps are taken when each read returns.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import gevent
from gevent._waiter import Waiter
from geventhttpclient.response import HTTPParseError, HTTPSocketPoolResponse

from loadtests.client.clock import now
from loadtests.client.failures import CLOSED_MID_BODY, MalformedResponse
from loadtests.client.stamps import ANCILLARY, kernel_stamp, stamp_reads
from loadtests.client.transport import IdleWatch, read_some, set_read_timeout

__all__ = ["GreenletReads", "LoopReads", "StreamReads", "kernel_stamp", "stream_reads"]

Hold = Callable[[bytes], bool]


class StreamReads:
    """What both readers share: the reads not handed over yet and the body's state."""

    __slots__ = ("_hold", "_limit", "complete_at", "data", "draining", "eager", "times")

    def __init__(self, *, hold: Hold, limit: int) -> None:
        self.data: list[bytes] = []  # reads not handed over yet, oldest first
        self.times: list[float] = []  # their stamps
        self.eager = True  # hand the next read over at once (the caller sets it)
        self.complete_at: float | None = None  # the stamp of the read that ended the body
        self.draining = False  # reads are dropped, only the body's end is waited for
        self._hold = hold
        self._limit = limit

    def wait(self) -> None:
        """Until there are reads to look at, or the body is complete. Raises the failure
        that ended the body (the reads before it are still in ``data``), ``IdleTimeout``
        (``IdleWatch``) or the request's own timeout."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop reading (before the connection goes back to the pool or is dropped)."""

    def _keep(self, data: bytes, at: float) -> bool:
        """Keep one read; whether the reader must look now."""
        if self.draining:
            return False
        self.data.append(data)
        self.times.append(at)
        return self.eager or len(self.data) >= self._limit or not self._hold(data)


def stream_reads(
    response: HTTPSocketPoolResponse,
    watch: IdleWatch,
    *,
    hold: Hold,
    limit: int,
    not_before: float = 0.0,
) -> StreamReads:
    """The reader of ``response``'s body: in the loop's callback on a plain TCP socket
    (kernel stamps, none before ``not_before``: the request's send), in the greenlet on a
    TLS one. ``watch.last`` is set at every read, when it returned."""
    sock = response._sock
    raw = getattr(sock, "_sock", None)
    if sock is not None and type(sock) is gevent.socket.socket and raw is not None:
        return LoopReads(response, watch, raw, hold=hold, limit=limit, not_before=not_before)
    return GreenletReads(response, watch, hold=hold, limit=limit, not_before=not_before)


def head_stamp(response: HTTPSocketPoolResponse, not_before: float) -> float | None:
    """When the read that completed ``response``'s head arrived (the kernel's stamp: what
    ``loadtests.client.transport`` keeps as ``head_at`` on a plain TCP connection), None
    where it is not known or lies before ``not_before``."""
    head_at: float | None = getattr(response, "head_at", None)
    return head_at if head_at is not None and head_at >= not_before else None


class LoopReads(StreamReads):
    """Reads made in the event loop's callback for the socket (see the module docstring)."""

    __slots__ = (
        "_failure",
        "_loop",
        "_not_before",
        "_raw",
        "_ready",
        "_response",
        "_resuming",
        "_waiter",
        "_watch",
        "_watcher",
    )

    def __init__(
        self,
        response: HTTPSocketPoolResponse,
        watch: IdleWatch,
        raw: socket.socket,
        *,
        hold: Hold,
        limit: int,
        not_before: float = 0.0,
    ) -> None:
        super().__init__(hold=hold, limit=limit)
        self._response = response
        self._watch = watch
        self._raw = raw  # the socket under gevent's: its recv never waits
        self._not_before = not_before  # no read's stamp before this (the request's send)
        # Where the kernel stamps nothing, each read is stamped when it returns.
        stamp_reads(raw)
        self._failure: BaseException | None = None
        self._ready = False  # the reader must look (set by the callback)
        self._waiter = Waiter()
        self._loop = gevent.get_hub().loop
        self._resuming = False  # a switch to the waiting greenlet is scheduled
        sock = response._sock
        assert sock is not None
        # The socket's own read watcher (idle between requests): starting one watcher for
        # the stream changes nothing in the loop's set of descriptors.
        self._watcher = sock._read_event
        # Body bytes that came with the head: stamped with the head's read where the
        # transport stamped it, else now.
        head_at = head_stamp(response, not_before)
        buffered = response._body_buffer
        if buffered:
            at = self._not_before = head_at if head_at is not None else max(now(), not_before)
            self._keep(bytes(buffered), at)
            del buffered[:]
            self._ready = True
        if response.message_complete:
            self.complete_at = head_at if head_at is not None else now()
            self._ready = True
        else:
            self._watcher.start(self._readable)

    def wait(self) -> None:
        if not self._ready:
            self._waiter.get()  # the callback switches back here
        self._ready = False
        if self._failure is not None:
            raise self._failure  # the caller parses the reads before it (measure._stream)

    def close(self) -> None:
        self._watcher.stop()

    def _readable(self) -> None:  # runs in the loop (the hub): it must not raise
        try:
            data, ancillary, _, _ = self._raw.recvmsg(4096, ANCILLARY)
        except BlockingIOError:
            return  # readable for nothing after all
        except OSError as exc:
            self._fail(exc)
            return
        returned_at = now()
        self._watch.last = returned_at
        at = returned_at
        if ancillary:
            at = kernel_stamp(ancillary, returned_at, time.time(), self._not_before)
            self._not_before = at  # a stream's stamps never go back
        response = self._response
        try:
            response.feed(data)  # b"" lets the parser see EOF (ends a close-delimited body)
        except HTTPParseError as exc:
            if data:
                self._fail(MalformedResponse(str(exc)))
                return
        complete = response.message_complete
        if not data and not complete:
            self._fail(ConnectionResetError(CLOSED_MID_BODY))
            return
        look = False
        buffer = response._body_buffer
        if buffer:
            look = self._keep(bytes(buffer), at)
            del buffer[:]
        if complete:
            self.complete_at = at
            self._watcher.stop()
            look = True
        if look:
            self._wake()

    def _fail(self, exc: BaseException) -> None:
        self._failure = exc
        self._watcher.stop()
        self._wake()

    def _wake(self) -> None:
        self._ready = True
        if self._resuming:
            return
        if self._loop.pendingcnt:
            # Other callbacks of this pass of the loop wait (other streams' reads, ready
            # now): the greenlet resumes after them, so that they are stamped before it
            # parses its own reads. Otherwise at once: deferring costs the loop a pass.
            self._resuming = True
            self._loop.run_callback(self._resume)
        elif self._waiter.greenlet is not None:
            self._waiter.switch(None)

    def _resume(self) -> None:  # in the loop
        self._resuming = False
        if self._ready and self._waiter.greenlet is not None:
            self._waiter.switch(None)


class GreenletReads(StreamReads):
    """Reads made in the greenlet, one ``read_some`` after another (TLS connections, and an
    answer that was complete with its head: its connection is already back in the pool).
    What came with a head the transport stamped carries the head's stamp."""

    __slots__ = ("_head_at", "_response", "_restore", "_watch")

    def __init__(
        self,
        response: HTTPSocketPoolResponse,
        watch: IdleWatch,
        *,
        hold: Hold,
        limit: int,
        not_before: float = 0.0,
    ) -> None:
        super().__init__(hold=hold, limit=limit)
        self._response = response
        self._watch = watch
        self._head_at = head_stamp(response, not_before)
        # The idle timeout is the watch's; a socket timeout would arm a timer every read.
        self._restore = set_read_timeout(response, None)

    def wait(self) -> None:
        response = self._response
        while self.complete_at is None:
            head_at, self._head_at = self._head_at, None  # only what came with the head
            if not (response._body_buffer or response.message_complete):
                head_at = None
            data = read_some(response)
            at = now() if head_at is None else head_at
            self._watch.last = at
            look = bool(data) and self._keep(data, at)
            if response.message_complete:
                self.complete_at = at
                return
            if look:
                return

    def close(self) -> None:
        self._restore()
