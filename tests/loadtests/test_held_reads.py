"""A stream's ordinary reads are parsed a few at a time (``measure._holds``): every event is
still timed by the read that completed it, and a read that can end the stream is parsed on
arrival, so a stream ends when it did. Real sockets: a gevent TCP server on a free loopback
port writes a scripted chunked answer, write by write, ``GAP_S`` apart, and stamps each
write; slabench's transport reads it in the same process, so the read of a write comes
after the write's stamp and (on any but a stalled machine) before the next write's. Each
test runs over plain TCP (the reads made in the loop's callback, ``LoopReads``) and over
TLS (in the greenlet, ``GreenletReads``)."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

import gevent
import gevent.monkey
import gevent.server
import gevent.ssl
import pytest
from geventhttpclient.response import HTTPSocketPoolResponse

from loadtests.client import measure
from loadtests.client.clock import now
from loadtests.client.measure import Timeouts, execute
from loadtests.client.openai_stream import StreamAccumulator
from loadtests.client.protocols import PreparedRequest
from loadtests.client.sse import SSEParser
from loadtests.client.stream_reads import (
    GreenletReads,
    LoopReads,
    StreamReads,
    kernel_stamp,
    stream_reads,
)
from loadtests.client.tls import Tls
from loadtests.client.transport import IdleWatch, Target, Transport
from sla.files import error_class as ec
from sla.files.run import RequestRecord
from tests.loadtests.small_target import Certificates, make_certificates

REQ = PreparedRequest("chat", "POST", "/v1/chat/completions", b"{}", "openai_sse")
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
GAP_S = 0.1  # between two writes: each write is a read of its own
READERS = {"tcp": LoopReads, "tls": GreenletReads}


def chunk(content: str) -> bytes:
    delta = {"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}]}
    return b"data: " + json.dumps(delta).encode() + b"\n\n"


TOKENS = [chunk(f"t{i}") for i in range(6)]
DONE = b"data: [DONE]\n\n"


class Script:
    """The writes of the next answer; with ``end`` False the body never ends (the server
    holds the connection open until the client closes it)."""

    def __init__(self) -> None:
        self.writes: Sequence[bytes] = ()
        self.end = True
        self.end_after_s = 0.0  # between the last write and the body's end
        self.written_at: list[float] = []  # each write's stamp, taken just before it
        self.readers: list[type[StreamReads]] = []  # the reader each request used


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(params=sorted(READERS))
def served(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[Script, Transport]]:
    script = Script()

    def handle(sock: gevent.socket.socket, _: object) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            request += sock.recv(4096)
        sock.sendall(HEAD)
        for data in script.writes:
            gevent.sleep(GAP_S)
            # Stamped just before the write: a plain TCP read is stamped when its bytes
            # reached the client's socket (the kernel's stamp), which is during the write.
            script.written_at.append(now())
            sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))
        if script.end:
            gevent.sleep(script.end_after_s)
            sock.sendall(b"0\r\n\r\n")
        try:
            while sock.recv(4096):  # until the client closes the connection
                pass
        except OSError:
            pass

    tls = request.param == "tls"
    options: dict[str, object] = {}
    client_tls = None
    if tls:
        certs = request.getfixturevalue("certs")
        client_tls = Tls(ca_bundle=str(certs.ca))
        cert, key = certs.cert_for("127.0.0.1")
        context = gevent.ssl.SSLContext(gevent.ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        options = {"ssl_context": context}
    server = gevent.server.StreamServer(("127.0.0.1", 0), handle, **options)
    server.start()
    transport = Transport(
        Target.parse(f"{'https' if tls else 'http'}://127.0.0.1:{server.server_port}"),
        concurrency=1,
        connect_timeout_s=10.0,
        network_timeout_s=30.0,
        headers={},
        tls=client_tls,
    )
    stream_reads = measure.stream_reads

    def noted(*args, **kwargs):  # type: ignore[no-untyped-def]
        reads = stream_reads(*args, **kwargs)
        script.readers.append(type(reads))
        return reads

    monkeypatch.setattr(measure, "stream_reads", noted)
    yield script, transport
    assert script.readers == [READERS[request.param]] * len(script.readers)
    transport.close()
    server.stop(timeout=1)


def run(
    served: tuple[Script, Transport], writes: Sequence[bytes], *, end: bool = True,
    idle_s: float = 30.0, total_s: float = 60.0, end_after_s: float = 0.0,
) -> tuple[RequestRecord, float]:  # fmt: skip
    """The record of one request answered with ``writes``, and the seconds it took."""
    script, transport = served
    script.writes, script.end, script.end_after_s = writes, end, end_after_s
    started = now()
    rec = execute(
        transport, REQ, request_id="r", worker="w", timeouts=Timeouts(idle_s, total_s),
        on_record=lambda r: None,
    )  # fmt: skip
    assert script.readers, f"no stream was read: {rec.error}"
    return rec, now() - started


def written(script: Script, marker: bytes) -> tuple[float, float]:
    """The stamps of the write that brought ``marker`` and of the write after it: the read
    of that write, and so the stream's own time for it, lies between them."""
    for i, data in enumerate(script.writes):
        if marker in data:
            after = script.written_at[i + 1] if i + 1 < len(script.written_at) else float("inf")
            return script.written_at[i], after
    raise AssertionError(f"no write brought {marker!r}: {script.writes}")


def test_held_reads_keep_each_events_own_read_time(
    served: tuple[Script, Transport], monkeypatch: pytest.MonkeyPatch
) -> None:
    parses: list[int] = []
    parse_held = measure._parse_held

    def counted(parser, acc, held, times):  # type: ignore[no-untyped-def]
        parses.append(len(held))
        return parse_held(parser, acc, held, times)

    monkeypatch.setattr(measure, "_parse_held", counted)
    script = served[0]
    rec, _ = run(served, [*TOKENS, DONE])
    assert rec.error is None and rec.chunk_count == 6
    # Parsed in two goes, not one per read: the first read (the stream starts), then the
    # ordinary reads held with the [DONE] read that ended them (five and one, unless a busy
    # machine joined some writes into one read).
    assert len(parses) == 2 and parses[0] == 1 and 2 <= sum(parses) <= 7, parses
    first_write, second_write = written(script, b'"t0"')
    assert first_write <= rec.first_token_at < second_write
    done_write, _ = written(script, b"[DONE]")
    assert done_write <= rec.done_at
    # The gaps are between the reads that brought the tokens, not between parses (those
    # came together, at the [DONE] read): each is the writes' gap, give or take what the
    # machine took to deliver them (under half the gap).
    token_writes = [written(script, f'"t{i}"'.encode())[0] for i in range(6)]
    assert len(rec.chunk_gaps_ms) == 5
    for gap_ms, a, b in zip(rec.chunk_gaps_ms, token_writes[:-1], token_writes[1:], strict=True):
        assert gap_ms == pytest.approx((b - a) * 1000.0, abs=GAP_S * 1000.0 / 2)


@pytest.mark.parametrize(
    ("last", "marker"),
    [
        ([DONE], b"[DONE]"),
        # the read that brings [DONE] starts as an ordinary one ("data: {")
        ([TOKENS[-1] + DONE], b"[DONE]"),
        # [DONE] cut in two: neither read holds it whole
        ([b"data: [DO", b"NE]\n\n"], b"NE]"),
    ],
    ids=["alone", "after-a-chunk", "split"],
)
def test_a_done_on_a_connection_left_open_ends_the_stream_at_once(
    served: tuple[Script, Transport], last: list[bytes], marker: bytes
) -> None:
    tokens = TOKENS[:-1] if TOKENS[-1] in last[0] else TOKENS
    rec, took_s = run(served, [*tokens, *last], end=False, idle_s=20.0)
    assert rec.error is None and rec.chunk_count == 6
    # Not the 20 s idle timeout: the read that completes [DONE] is parsed on arrival, then
    # the connection is drained for at most measure._DRAIN_S and dropped.
    assert took_s < 10.0, took_s
    done_write, after = written(served[0], marker)
    assert done_write <= rec.done_at < after


def test_a_body_that_ends_a_while_after_done_is_drained_and_kept(
    served: tuple[Script, Transport], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A [DONE] read and the body's end a while later: the stream ends at the [DONE] read,
    the generator's own time (``client_processing_ms``) leaves out the wait for the body's
    end, and the connection, drained, can be reused."""
    drains: list[StreamReads] = []
    drain = measure._drain
    monkeypatch.setattr(measure, "_drain", lambda reads: drains.append(reads) or drain(reads))
    discards: list[HTTPSocketPoolResponse] = []
    discard = measure.discard
    monkeypatch.setattr(measure, "discard", lambda r: discards.append(r) or discard(r))
    script = served[0]
    wait_s = 0.3
    rec, took_s = run(served, [*TOKENS, DONE], end_after_s=wait_s)
    assert rec.error is None and rec.chunk_count == 6
    done_write, _ = written(script, b"[DONE]")
    assert done_write <= rec.done_at < done_write + wait_s  # the [DONE] read's stamp
    assert rec.client_processing_ms < wait_s * 1000.0 / 2, rec.client_processing_ms
    assert took_s >= wait_s  # the body's end was read before the request was over
    assert len(drains) == 1, drains
    assert not discards  # the body ended: the connection goes back to the pool


@pytest.mark.parametrize(
    "writes",
    [
        # the event's type in one read, its data (an ordinary-looking line) in the next
        [b"event: error\n", b'data: {"message": "overloaded"}\n\n'],
        # an error chunk, read as an ordinary one would be
        [b'data: {"error": {"message": "overloaded"}}\n\n'],
    ],
    ids=["event-type-apart", "error-chunk"],
)
def test_an_error_ends_the_stream_at_once(
    served: tuple[Script, Transport], writes: list[bytes]
) -> None:
    rec, took_s = run(served, [*TOKENS[:3], *writes], end=False, idle_s=20.0)
    assert rec.error_class == ec.SERVER_ERROR_EVENT, rec.error
    assert took_s < 10.0, took_s
    error_write, after = written(served[0], b"overloaded")
    assert error_write <= rec.done_at < after


def test_a_malformed_event_held_when_the_stream_stalls_ends_the_answer_at_its_read(
    served: tuple[Script, Transport],
) -> None:
    """An event that only the parse finds malformed may be held; when the idle timeout
    cuts the stream after it, the record is the one the event made, at its read's time."""
    bad = b'data: {"choices": [{"delta": {"content": "x"\n\n'  # cut-off JSON
    rec, took_s = run(served, [*TOKENS[:3], bad], end=False, idle_s=1.0)
    assert rec.error_class == ec.MALFORMED_SSE, rec.error
    assert rec.chunk_count == 3
    bad_write, after = written(served[0], b'"x"')
    assert bad_write <= rec.done_at < after
    assert took_s >= 1.0  # found when the held reads were parsed, after the idle timeout


def test_a_total_timeout_keeps_the_timings_of_held_reads(
    served: tuple[Script, Transport],
) -> None:
    rec, _ = run(served, TOKENS, end=False, total_s=2.0)
    assert rec.error_class == ec.TOTAL_TIMEOUT, rec.error
    assert rec.chunk_count == len(TOKENS)  # every token read before the timeout counted
    first_write, second_write = written(served[0], b'"t0"')
    assert first_write <= rec.first_token_at < second_write


def parsed(reads: list[bytes]) -> tuple[list[float], float | None]:
    """The token times of reads stamped 1.0, 2.0, ... parsed together; the stop's stamp."""
    parser, acc = SSEParser(), StreamAccumulator()
    role = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    acc.on_events(parser.feed_compact(b"data: " + json.dumps(role).encode() + b"\n\n"), 0.0)
    held, times = list(reads), [float(i + 1) for i in range(len(reads))]
    stopped_at = measure._parse_held(parser, acc, held, times)
    assert held == [] and times == []
    result = acc.finish(9.0, stream_ended=True)
    assert result.first_token_at is not None
    gaps = [g / 1000.0 for g in result.chunk_gaps_ms]
    return [result.first_token_at + sum(gaps[:i]) for i in range(len(gaps) + 1)], stopped_at


@pytest.mark.parametrize(
    "reads",
    [
        # read 2 ends the event read 1 began; read 3 holds two events and [DONE]
        [TOKENS[1], TOKENS[2][:20], TOKENS[2][20:], TOKENS[3] + TOKENS[4] + DONE],
        # a blank line split between two reads: parsed read by read, the same times
        [TOKENS[1], TOKENS[2][:-1], TOKENS[2][-1:], TOKENS[3] + TOKENS[4] + DONE],
    ],
    ids=["plain", "split-blank-line"],
)
def test_held_reads_parsed_together_time_each_event_by_the_read_that_ended_it(
    reads: list[bytes],
) -> None:
    times, stopped_at = parsed(reads)
    # The role chunk bears no token; t1 came with read 1, t2 with read 3, t3 and t4 with 4.
    assert times == [1.0, 3.0, 4.0, 4.0]
    assert stopped_at == 4.0


class _Pool:
    """Where a response would hand its connection back (no pool here)."""

    def return_socket(self, sock: object) -> None:
        pass

    def release_socket(self, sock: object) -> None:
        pass


def test_a_woken_reader_waits_for_the_other_reads_ready_in_the_same_pass() -> None:
    """Two streams' [DONE] reads ready together: the greenlet woken by the first resumes
    only after the second read was stamped (it would otherwise parse and record inside the
    loop's pass, and the other read's stamp would wait for it)."""
    pairs = [gevent.socket.socketpair() for _ in range(2)]
    for server, _ in pairs:
        server.sendall(HEAD)
    streams = []
    for _, client in pairs:
        response = HTTPSocketPoolResponse(client, _Pool(), method="POST")  # type: ignore[arg-type]
        watch = IdleWatch(30.0, started_at=now())
        reads = stream_reads(response, watch, hold=measure._holds, limit=16)
        assert isinstance(reads, LoopReads)
        reads.eager = False
        streams.append((reads, watch))
    resumed: list[float] = [0.0, 0.0]

    def reader(i: int) -> None:
        reads, watch = streams[i]
        reads.wait()
        resumed[i] = now()
        watch.close()
        reads.close()

    greenlets = [gevent.spawn(reader, i) for i in range(2)]
    gevent.sleep(0.05)  # both wait
    for server, _ in pairs:  # both ready before the loop's next pass
        server.sendall(b"%x\r\n%s\r\n" % (len(DONE), DONE))
    gevent.joinall(greenlets, timeout=10.0, raise_error=True)
    stamps = [reads.times[0] for reads, _ in streams]
    assert all(stamps) and all(resumed)
    # Whichever the loop served first, its greenlet resumed after both reads were stamped.
    assert min(resumed) >= max(stamps), (stamps, resumed)
    for pair in pairs:
        for sock in pair:
            sock.close()


@contextlib.contextmanager
def kernel_stamps_on() -> Iterator[None]:
    """Until the kernel stamps received bytes. Linux turns receive timestamps on for the
    whole machine while any socket asks for them, and off a moment after the last one that
    asked closes (deferred work): a socket that asks just after another test closed its own
    may get its first bytes unstamped (slabench then stamps them when the read returns, as
    designed). A socket kept asking for the duration holds them on."""
    timestamp = socket.SOL_SOCKET, getattr(socket, "SO_TIMESTAMPNS", 35)
    with socket.create_server(("127.0.0.1", 0)) as listener:  # TCP: a Unix pair gets none
        a = socket.create_connection(listener.getsockname())
        b, _ = listener.accept()
    try:
        b.setsockopt(*timestamp, 1)
        deadline = now() + 5.0
        while True:  # waits for the kernel's deferred switch, a few ms at most
            a.send(b"x")
            _, ancillary, _, _ = b.recvmsg(1, socket.CMSG_SPACE(16))
            if ancillary or now() > deadline:
                break
        yield
    finally:
        a.close()
        b.close()


def test_a_tcp_read_is_stamped_when_its_bytes_arrived_not_when_the_loop_got_to_it() -> None:
    """The loop held up for 0.3 s while a token arrives: the read is made 0.3 s late, but
    its stamp is the kernel's, when the bytes reached the socket."""
    with kernel_stamps_on():
        _held_read_is_stamped_on_arrival()


def _held_read_is_stamped_on_arrival() -> None:
    listener = gevent.socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = gevent.socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    try:
        server.sendall(HEAD)
        response = HTTPSocketPoolResponse(client, _Pool(), method="POST")  # type: ignore[arg-type]
        watch = IdleWatch(30.0, started_at=now())
        reads = stream_reads(response, watch, hold=measure._holds, limit=16, not_before=now())
        assert isinstance(reads, LoopReads)
        hold_loop = gevent.monkey.get_original("time", "sleep")  # nothing else runs meanwhile
        written = now()
        server.sendall(b"%x\r\n%s\r\n" % (len(TOKENS[0]), TOKENS[0]))
        hold_loop(0.3)
        reads.wait()
        assert watch.last - written >= 0.3  # the read returned after the hold ...
        assert written <= reads.times[0] < written + 0.1  # ... stamped before it
        watch.close()
        reads.close()
    finally:
        for sock in (client, server, listener):
            sock.close()


ANSWER = json.dumps(
    {
        "choices": [{"message": {"content": "hi"}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1},
    }
).encode()


@pytest.mark.parametrize("kind", ["whole answer", "head with the first token"])
def test_an_answer_read_late_is_timed_when_its_bytes_arrived(kind: str) -> None:
    """The loop held up for 0.3 s just after the server wrote (as ``--poll-interval-ms``
    or a busy loop would): a whole (not streamed) answer, and a stream whose first token
    came with its head, are still timed by the kernel's stamps of their reads: the head's,
    read in the loop's callback (``transport._read_head_in_loop``), and the body's."""
    with kernel_stamps_on():
        _late_answer_is_timed_on_arrival(kind)


def _late_answer_is_timed_on_arrival(kind: str) -> None:
    listener = gevent.socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    hold_loop = gevent.monkey.get_original("time", "sleep")  # nothing else runs meanwhile
    written: list[float] = []

    def serve() -> None:
        sock, _ = listener.accept()
        try:
            _answer(sock)
        finally:
            sock.close()

    def _answer(sock: gevent.socket.socket) -> None:
        buf = b""
        while not buf.endswith(b"{}"):
            buf += sock.recv(65536)
        if kind == "whole answer":
            answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            answer += b"Content-Length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER)
        else:
            answer = HEAD + b"%x\r\n%s\r\n" % (len(TOKENS[0]), TOKENS[0])
        written.append(now())
        sock.sendall(answer)
        hold_loop(0.3)
        if kind != "whole answer":
            gevent.sleep(0.2)  # the client reads the head (and its token) first
            for data in (TOKENS[1], DONE):
                sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))
            sock.sendall(b"0\r\n\r\n")
        gevent.sleep(1.0)

    server = gevent.spawn(serve)
    transport = Transport(
        Target.parse(f"http://127.0.0.1:{listener.getsockname()[1]}"),
        concurrency=1,
        connect_timeout_s=10.0,
        network_timeout_s=10.0,
        headers={},
    )
    reader = "openai_json" if kind == "whole answer" else "openai_sse"
    req = PreparedRequest("chat", "POST", "/v1/chat/completions", b"{}", reader)
    try:
        rec = execute(
            transport, req, request_id="r", worker="w", timeouts=Timeouts(30.0, 60.0),
            on_record=lambda r: None,
        )  # fmt: skip
        assert rec.error is None, rec.error
        at = rec.done_at if kind == "whole answer" else rec.first_token_at
        assert written[0] <= at < written[0] + 0.1, at - written[0]  # not after the hold
        if kind == "whole answer":
            assert rec.status == 200 and rec.output_tokens == 1
        else:
            assert rec.done_at - written[0] >= 0.5  # the rest came after the hold
    finally:
        transport.close()
        server.kill()
        listener.close()


def test_a_kernel_stamp_is_moved_onto_our_clock_and_kept_only_within_the_stream() -> None:
    timestamp = socket.SOL_SOCKET, getattr(socket, "SO_TIMESTAMPNS", 35)

    def ancillary(wall_s: float) -> list[tuple[int, int, bytes]]:
        seconds = int(wall_s)
        return [(*timestamp, struct.pack("@qq", seconds, round((wall_s - seconds) * 1e9)))]

    returned, wall = 1_000.0, 1_100.0  # the wall clock runs 100 s ahead of ours
    # Bytes that arrived 10 ms before the read returned.
    assert kernel_stamp(ancillary(wall - 0.010), returned, wall, 0.0) == pytest.approx(
        returned - 0.010, abs=1e-6
    )
    # No timestamp, one after the read returned, one before the stream's start: the read's.
    assert kernel_stamp([], returned, wall, 0.0) == returned
    assert kernel_stamp(ancillary(wall + 0.010), returned, wall, 0.0) == returned
    assert kernel_stamp(ancillary(wall - 5.0), returned, wall, returned - 1.0) == returned
