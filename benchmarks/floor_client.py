"""The floor: the leanest streaming client we could write, to measure slabench against.

``--streams`` connections, each with one streamed chat completion in flight (closed loop),
on raw asyncio protocols: no HTTP library, no SSE parsing, no JSON. Per request it keeps
only timestamps on slabench's clock (``loadtests.client.clock.now``): the send, the arrival
of each read, the first read holding a token-bearing chunk, the read that completed the body (after
``[DONE]``, as slabench's ``done_at``);
and the connection's local port, which the scripted server notes as the peer port, so
that every request pairs exactly with the server's own record. It assumes what
``benchmarks/scripted_server.py`` sends (chunked SSE, ``[DONE]``, then the last chunk)
and checks nothing else. Writes the records as JSON to ``--out`` after ``--seconds``.

    .venv/bin/python -m benchmarks.floor_client --url http://127.0.0.1:PORT --streams 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
from urllib.parse import urlsplit

from loadtests.client.clock import now

TOKEN = b'"delta":{"content":"'  # a token-bearing chat chunk (the role chunk has "role" first)
DONE = b"data: [DONE]"
LAST_CHUNK = b"\r\n0\r\n\r\n"  # chunked transfer: the body is complete


class Stream(asyncio.Protocol):
    """One keep-alive connection; ``request()`` sends and waits for the whole answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.reads: list[float] = []
        self.first = self.done = 0.0
        self.waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        at = now()
        self.reads.append(at)
        scan = max(0, len(self.buf) - len(TOKEN))  # a marker may straddle two reads
        self.buf += data
        if not self.first and self.buf.find(TOKEN, scan) >= 0:
            self.first = at
        if self.buf.endswith(LAST_CHUNK) and DONE in self.buf:
            self.done = at
            assert self.waiter is not None
            self.waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    async def request(self, raw: bytes) -> tuple[float, float, float, int]:
        assert self.transport is not None
        self.buf, self.reads, self.first, self.done = b"", [], 0.0, 0.0
        self.waiter = asyncio.get_running_loop().create_future()
        sent = now()
        self.transport.write(raw)
        await self.waiter
        return sent, self.first, self.done, len(self.reads)


def request_bytes(host: str, port: int, tokens: int) -> bytes:
    body = json.dumps(
        {
            "model": "m",
            "stream": True,
            "max_tokens": tokens,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "one two three four five six"}],
        }
    )
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body.encode()


async def run(url: str, streams: int, seconds: float, tokens: int) -> list[list[float]]:
    split = urlsplit(url)
    host, port = split.hostname or "127.0.0.1", split.port or 80
    raw = request_bytes(host, port, tokens)
    loop = asyncio.get_running_loop()
    records: list[list[float]] = []  # [local port, sent, first token, done, reads]
    deadline = loop.time() + seconds

    async def one() -> None:
        transport, stream = await loop.create_connection(Stream, host, port)
        local = transport.get_extra_info("sockname")[1]
        while loop.time() < deadline:
            records.append([local, *await stream.request(raw)])
        transport.close()

    await asyncio.gather(*(one() for _ in range(streams)))
    return records


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--url", required=True)
    p.add_argument("--streams", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--tokens", type=int, default=16)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    records = asyncio.run(run(args.url, args.streams, args.seconds, args.tokens))
    with open(args.out, "w") as f:
        json.dump(records, f)


if __name__ == "__main__":
    main()
