"""Slow and idle clients cannot hold the server (issue 12, item 3).

Each test opens raw sockets that send a request's headers and one byte of a 1,000-byte
body, then nothing: the classic slow-body attack.
"""

from __future__ import annotations

import socket
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

from tests.reference_server.helpers import metric, send
from tests.server_process import SMALL_MODELS, ServerProcess

EMBEDDINGS = "/v1/embeddings"


def address(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


@contextmanager
def slow_senders(url: str, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections that each sent headers and 1 byte of a 1,000-byte body."""
    host, port = address(url)
    head = (
        f"POST {EMBEDDINGS} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    ).encode()
    with ExitStack() as stack:
        socks = []
        for _ in range(count):
            sock = stack.enter_context(socket.create_connection((host, port), timeout=30))
            sock.sendall(head)
            socks.append(sock)
        yield socks


def answer_of(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def complete_post(url: str, body: bytes) -> bytes:
    """One POST whose headers and body go out in a single write; the whole answer."""
    host, port = address(url)
    head = (
        f"POST {EMBEDDINGS} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(head + body)
        return answer_of(sock)


def inflight(url: str) -> float:
    return metric(send(url, "GET", "/metrics").body.decode(), "slabench_inflight_requests")


def test_slow_bodies_hold_no_slot_and_time_out_with_408() -> None:
    args = [*SMALL_MODELS, "--body-timeout", "2", "--max-body-reads", "3"]
    with ServerProcess(args=args) as server, slow_senders(server.url, 3) as socks:
        # A fourth slow body past --max-body-reads is refused at once: all three are being
        # read.
        deadline = time.monotonic() + 10
        while True:
            with slow_senders(server.url, 1) as (fourth,):
                answer = answer_of(fourth)
            if answer.startswith(b"HTTP/1.1 503"):
                break
            assert time.monotonic() < deadline, "the three slow bodies never filled the reads"
        assert b"retry-after: 1" in answer.lower()
        assert inflight(server.url) == 0  # none of them admitted, none counted in flight
        for sock in socks:  # each cut after --body-timeout, its connection closed
            assert answer_of(sock).startswith(b"HTTP/1.1 408"), "slow body not timed out"
        assert send(server.url, "POST", EMBEDDINGS, b'{"input": "hi"}').status == 200


def test_a_body_that_arrived_whole_needs_no_read_slot() -> None:
    """Many users at once must not get 503s from the read limit: a small body that came in
    the packets of its headers is taken at once, even while slow bodies fill every slot."""
    args = [*SMALL_MODELS, "--body-timeout", "60", "--max-body-reads", "1"]
    with ServerProcess(args=args) as server, slow_senders(server.url, 1):
        deadline = time.monotonic() + 10
        while True:  # until the slow body holds the one read slot
            with slow_senders(server.url, 1) as (second,):
                if answer_of(second).startswith(b"HTTP/1.1 503"):
                    break
            assert time.monotonic() < deadline, "the slow body never took the read slot"
        for _ in range(3):
            whole = complete_post(server.url, b'{"input": "hi"}')
            assert whole.startswith(b"HTTP/1.1 200"), whole[:300]


def test_connections_past_the_limit_get_503_and_are_closed() -> None:
    args = [*SMALL_MODELS, "--max-connections", "4"]
    with ServerProcess(args=args) as server, ExitStack() as held:
        host, port = address(server.url)
        for _ in range(4):
            held.enter_context(socket.create_connection((host, port), timeout=30))
        deadline = time.monotonic() + 10
        while True:  # until the server has accepted the four idle connections
            with socket.create_connection((host, port), timeout=2) as extra:
                try:
                    if answer_of(extra).startswith(b"HTTP/1.1 503"):
                        break
                except TimeoutError:  # accepted (an earlier idle one was not in yet)
                    pass
            assert time.monotonic() < deadline, "the fifth connection was never refused"
        held.close()
        deadline = time.monotonic() + 10
        while send(server.url, "GET", "/v2/health/live").status != 200:
            assert time.monotonic() < deadline, "no connection served after the idle ones left"


def test_drain_does_not_wait_for_slow_senders() -> None:
    with ServerProcess(args=[*SMALL_MODELS, "--drain-timeout", "30"]) as server:
        with slow_senders(server.url, 5):
            time.sleep(1.0)  # the server has read the headers (it waits for the bodies)
            started = time.monotonic()
            server.terminate()
            assert server.wait(60) == 0
            took_s = time.monotonic() - started
        assert took_s < 15, f"drain waited {took_s:.1f}s on clients that never sent a body"


def test_bodies_held_by_waiting_requests_stay_within_max_body_memory() -> None:
    """Requests read and not yet answered (here: each waits 2 s of injected latency) hold
    their bodies; one more that would pass --max-body-memory gets 503 + Retry-After, and is
    served once the bytes are released."""
    padded = b'{"input": "hi"' + b" " * 60_000 + b"}"  # valid JSON, ~60 KB
    args = [*SMALL_MODELS, "--max-body-memory", "100000", "--fault-latency", "fixed:2000"]
    with ServerProcess(args=args) as server, ThreadPoolExecutor(1) as pool:
        first = pool.submit(send, server.url, "POST", EMBEDDINGS, padded)
        deadline = time.monotonic() + 10
        while inflight(server.url) < 1:  # the first holds its 60 KB, waiting its 2 s
            assert time.monotonic() < deadline, "the first request was never admitted"
            time.sleep(0.05)
        second = send(server.url, "POST", EMBEDDINGS, padded)
        assert second.status == 503, second.body
        assert second.headers.get("retry-after") == "1"
        assert b"held already" in second.body
        assert first.result(timeout=30).status == 200
        assert send(server.url, "POST", EMBEDDINGS, padded).status == 200
