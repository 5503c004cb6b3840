"""A deliberately trivial HTTP server for measuring the load generator itself.

It answers from pre-rendered bytes, so it costs far less CPU per request than any client:
``POST /v1/chat/completions`` with ``"stream": true`` gets a 16-token OpenAI SSE stream
(chunked transfer encoding, one chunk per event, usage and ``[DONE]``); any other POST gets
the equivalent non-streamed JSON answer; ``GET`` gets ``{}``. Run it as a process:

    python -m benchmarks.canned_server [--tokens 16]   # prints "canned server ready at URL"
"""

from __future__ import annotations

import argparse
import asyncio
import json

_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\n"


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def render(tokens: int) -> tuple[bytes, bytes, bytes]:
    head = '{"id":"c","object":"chat.completion.chunk","created":0,"model":"m","choices":'
    events = [f'data: {head}[{{"index":0,"delta":{{"role":"assistant","content":""}}}}]}}\n\n']
    events += [
        f'data: {head}[{{"index":0,"delta":{{"content":"t{i}"}},"finish_reason":null}}]}}\n\n'
        for i in range(tokens)
    ]
    events.append(f'data: {head}[{{"index":0,"delta":{{}},"finish_reason":"length"}}]}}\n\n')
    usage = {"prompt_tokens": 8, "completion_tokens": tokens, "total_tokens": 8 + tokens}
    events.append(f'data: {{"choices":[],"usage":{json.dumps(usage)}}}\n\n')
    events.append("data: [DONE]\n\n")
    stream = (_HEAD % b"text/event-stream") + b"Transfer-Encoding: chunked\r\n\r\n"
    stream += b"".join(_chunk(e.encode()) for e in events) + b"0\r\n\r\n"
    answer = json.dumps({
        "id": "c", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "t" * tokens},
                     "finish_reason": "length"}],
        "usage": usage,
    }).encode()  # fmt: skip
    plain = (_HEAD % b"application/json") + b"Content-Length: %d\r\n\r\n" % len(answer) + answer
    empty = (_HEAD % b"application/json") + b"Content-Length: 2\r\n\r\n{}"
    return stream, plain, empty


class _Protocol(asyncio.Protocol):
    def __init__(self, answers: tuple[bytes, bytes, bytes]) -> None:
        self._answers = answers
        self._buf = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buf += data
        while (end := self._buf.find(b"\r\n\r\n")) >= 0:
            head = self._buf[:end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                length = int(head[at + 15 :].split(b"\r\n", 1)[0])
            total = end + 4 + length
            if len(self._buf) < total:
                return
            body, self._buf = self._buf[end + 4 : total], self._buf[total:]
            stream, plain, empty = self._answers
            if head.startswith(b"get"):
                reply = empty
            else:
                reply = stream if b'"stream":true' in body or b'"stream": true' in body else plain
            assert self._transport is not None
            self._transport.write(reply)


async def serve(tokens: int) -> None:
    answers = render(tokens)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Protocol(answers), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"canned server ready at http://127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tokens", type=int, default=16)
    asyncio.run(serve(p.parse_args().tokens))


if __name__ == "__main__":
    main()
