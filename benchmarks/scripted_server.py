"""A scripted OpenAI-compatible SSE server with exactly timed sends, for measurement tests.

Its behaviour is fixed at start-up by flags, so that a test knows what every request got:

    python -m benchmarks.scripted_server --mode normal --ttft-ms 50 --itl-ms 10 --tokens 16

Every streamed answer (``/v1/chat/completions`` or ``/v1/completions``) starts with the
headers (and, for chat, a role-only chunk) at once; token chunk ``j`` goes out at
``receipt + ttft + j * itl``; then a finish chunk, a usage chunk (with a ``timings`` object
as the bundled server's: queue 0, prefill the TTFT, decode the rest of the plan, total from
receipt to its send) and ``[DONE]``. Sends wait on
``time.perf_counter`` deadlines (sleep until ~2 ms before, then spin), so they are accurate to
tens of microseconds, and each is written to the socket at once (aiohttp writes through
unless its buffer is full).

Modes that shape every answer: ``normal``; ``split`` (a BOM, then each event cut into
several writes inside ``data``, in the middle of a UTF-8 character and between the two
newlines; no role chunk, so the first event carries a token); ``burst``
(``--events-per-write`` token events per write); ``keepalive`` (``: keep-alive`` comments
before and between tokens, and a comment line inside each event); ``no-usage``.
Fault modes, applied to every ``--fault-every``-th request (the others are ``normal``), after
``--fault-after`` token chunks: ``error-mid`` (a ``data: {"error": ...}`` event, then
``[DONE]``), ``error-event`` (``event: error``), ``early-end`` (the body ends without
``[DONE]``), ``drop`` (the TCP connection is aborted), ``stall`` (silence until the client
goes away), ``slow-total`` (tokens every ``itl`` without end), ``http-error`` (HTTP 500 with
an OpenAI error body, before any stream), ``rate-limit`` (HTTP 429 with ``Retry-After:
--retry-after``, none when it is empty, and an OpenAI rate-limit body whose "try again in"
time differs from request to request, as real APIs' do).

``GET /timings`` returns what the server did per request, in arrival order, as epoch
seconds on the same anchored clock as ``loadtests.client.clock``; ``GET /metrics`` counts the
requests served per path (Prometheus text); ``GET /v1/models`` names ``--model``.

Tests and benchmarks start it, and run Locust against it, with ``benchmarks.scripted_runs``
(``ScriptedServer``, ``run_locust``); this module imports no pandas or ``sla``, so that a
start costs ~0.3 s, not ~0.8 s.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from aiohttp import web

from loadtests.client.clock import now

SHAPE_MODES = ("normal", "split", "burst", "keepalive", "no-usage")
FAULT_MODES = (
    "error-mid", "error-event", "early-end", "drop", "stall", "slow-total", "http-error",
    "rate-limit",
)  # fmt: skip
ERROR_MESSAGE = "scripted failure"
TOKEN_TEXT = "h€"  # a multi-byte character in every token, for the split mode
_SPIN_S = 0.002  # asyncio.sleep overshoots by ~1 ms: spin through the last stretch
_SPLIT_GAP_S = 0.001  # between the pieces of a split event, so that they arrive apart
_STALL_POLL_S = 0.02
_STALL_MAX_S = 60.0
_BOM = "\ufeff".encode()
_TOTAL_MS = b'"total_ms":-1'  # in the usage chunk's timings until sent


@dataclass(frozen=True, slots=True)
class Script:
    mode: str = "normal"
    ttft_ms: float = 50.0
    itl_ms: float = 10.0
    tokens: int = 16
    tokens_per_chunk: int = 1
    events_per_write: int = 4
    fault_after: int = 4  # token chunks sent before a fault
    fault_every: int = 1  # request n (1-based) is faulty when n % fault_every == 0
    model: str = "m"
    retry_after: str = "1"  # the Retry-After of rate-limit mode ("" sends none)


@dataclass(slots=True)
class Timing:
    """What the server did for one request; filled in while the answer is sent."""

    index: int
    path: str
    peer_port: int
    faulty: bool
    received_at: float
    headers_at: float | None = None
    first_token_at: float | None = None
    last_token_at: float | None = None
    done_at: float | None = None
    chunks_sent: int = 0
    token_sent_at: list[float] = field(default_factory=list)  # per token-bearing write
    max_late_ms: float = 0.0  # the worst miss of a send deadline after the headers
    client_gone: bool = False


@dataclass(slots=True)
class State:
    script: Script
    served: dict[str, int] = field(default_factory=dict)
    timings: list[Timing] = field(default_factory=list)


STATE = web.AppKey("state", State)


@dataclass(frozen=True, slots=True)
class Write:
    """One socket write, due ``at_s`` after the request arrived."""

    at_s: float
    data: bytes
    token_chunks: int = 0
    timed: bool = False  # carries _TOTAL_MS: the server's total is filled in as it is sent


def _event(payload: dict[str, Any], event: str | None = None, *, comment: bool = False) -> bytes:
    head = f"event: {event}\n" if event else ""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    tail = ": a comment line inside the event\n" if comment else ""
    return f"{head}data: {body}\n{tail}\n".encode()


def _chunk(chat: bool, text: str | None, finish: str | None = None) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
    if chat:
        choice["delta"] = (
            {"role": "assistant", "content": ""} if text is None else {"content": text}
        )
        return {"object": "chat.completion.chunk", "choices": [choice]}
    choice["text"] = text or ""
    return {"object": "text_completion", "choices": [choice]}


def _usage(tokens: int, prefill_ms: float, decode_ms: float) -> dict[str, Any]:
    """The usage chunk, with the server's own ``timings`` as the bundled server writes
    them (its total, ``_TOTAL_MS``, is filled in as the chunk is sent)."""
    usage = {"prompt_tokens": 8, "completion_tokens": tokens, "total_tokens": 8 + tokens}
    timings = {"queue_ms": 0.0, "prefill_ms": prefill_ms, "decode_ms": decode_ms, "total_ms": -1}
    return {"object": "chat.completion.chunk", "choices": [], "usage": usage, "timings": timings}


def _error(code: int = 500) -> dict[str, Any]:
    return {"error": {"message": ERROR_MESSAGE, "type": "server_error", "code": code}}


def plan(script: Script, *, chat: bool, faulty: bool) -> Iterator[Write]:
    """The writes of one streamed answer, in order (endless in ``slow-total``)."""
    mode = script.mode if faulty or script.mode in SHAPE_MODES else "normal"
    ttft_s, itl_s, per = script.ttft_ms / 1000.0, script.itl_ms / 1000.0, script.tokens_per_chunk
    endless = mode == "slow-total"
    n_chunks = 10**9 if endless else -(-script.tokens // per)
    if mode in FAULT_MODES and not endless:
        n_chunks = min(n_chunks, script.fault_after)
    if chat and mode != "split":
        yield Write(0.0, _event(_chunk(chat, None)))
    group = script.events_per_write if mode == "burst" else 1
    at_s = 0.0
    for j in range(0, n_chunks, group):
        prev_s, at_s = at_s, ttft_s + j * itl_s
        if mode == "keepalive":
            yield Write((prev_s + at_s) / 2, b": keep-alive\n\n")
        texts = [
            TOKEN_TEXT * (per if endless else min(per, script.tokens - k * per))
            for k in range(j, min(j + group, n_chunks))
        ]
        events = [_event(_chunk(chat, text), comment=mode == "keepalive") for text in texts]
        yield Write(at_s, b"".join(events), len(events))
    if mode in ("error-mid", "error-event"):
        event = "error" if mode == "error-event" else None
        yield Write(at_s + itl_s, _event(_error(), event) + b"data: [DONE]\n\n")
    elif mode not in FAULT_MODES:
        decode_ms = (at_s - ttft_s) * 1000.0
        usage = (
            b"" if mode == "no-usage" else _event(_usage(script.tokens, ttft_s * 1000, decode_ms))
        )
        end = _event(_chunk(chat, "", "stop")) + usage + b"data: [DONE]\n\n"
        yield Write(at_s, end, timed=mode != "no-usage")


def split_points(data: bytes) -> list[int]:
    """Where ``split`` mode cuts a write: inside a leading BOM, inside the first field
    name, in the middle of the first multi-byte character of the event, and between the
    two newlines that end it."""
    start = len(_BOM) if data.startswith(_BOM) else 0
    cuts = {1 if start else 0, start + 3, len(data) - 1}
    multibyte = next((i for i in range(start, len(data)) if data[i] >= 0x80), None)
    if multibyte is not None:
        cuts.add(multibyte + 1)
    return sorted(c for c in cuts if 0 < c < len(data))


def _pieces(data: bytes) -> list[bytes]:
    edges = [0, *split_points(data), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


async def _sleep_until(deadline: float) -> None:
    remaining = deadline - time.perf_counter()
    if remaining > _SPIN_S:
        await asyncio.sleep(remaining - _SPIN_S)
    while time.perf_counter() < deadline:
        await asyncio.sleep(0)


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _send(
    resp: web.StreamResponse, writes: Iterator[Write], t0: float, rec: Timing, *, split: bool
) -> None:
    for n, write in enumerate(writes):
        deadline = t0 + write.at_s
        await _sleep_until(deadline)
        if write.at_s > 0:  # what is due at once waits for the headers: not a miss
            rec.max_late_ms = max(rec.max_late_ms, (time.perf_counter() - deadline) * 1000.0)
        data = _BOM + write.data if split and n == 0 else write.data
        if write.timed:
            total = f'"total_ms":{(now() - rec.received_at) * 1000.0:.3f}'.encode()
            data = data.replace(_TOTAL_MS, total)
        for i, piece in enumerate(_pieces(data) if split else [data]):
            if i:
                await _sleep_until(time.perf_counter() + _SPLIT_GAP_S)
            # Stamped just before the write: after it, a 2-core machine may run the
            # client first, and the server's stamp would land after the client's.
            stamp = now()
            await resp.write(piece)
        if write.token_chunks:
            rec.first_token_at = rec.first_token_at or stamp
            rec.last_token_at = stamp
            rec.chunks_sent += write.token_chunks
            rec.token_sent_at.append(stamp)
        rec.done_at = stamp


async def _end(request: web.Request, resp: web.StreamResponse, mode: str | None) -> None:
    """Finish the body, or fail it the way a faulty ``mode`` says."""
    if mode == "drop":
        assert request.transport is not None
        request.transport.abort()
        return
    if mode == "stall":
        deadline = time.perf_counter() + _STALL_MAX_S
        while not _client_gone(request) and time.perf_counter() < deadline:
            await asyncio.sleep(_STALL_POLL_S)
    await resp.write_eof()


async def completions(request: web.Request) -> web.StreamResponse:
    received_at = now()
    t0 = time.perf_counter()  # the sends' deadlines count from here, just after receipt
    state = request.app[STATE]
    script = state.script
    n = state.served[request.path] = state.served.get(request.path, 0) + 1
    peer = request.transport.get_extra_info("peername") if request.transport else None
    faulty = script.mode in FAULT_MODES and n % script.fault_every == 0
    rec = Timing(n, request.path, peer[1] if peer else -1, faulty, received_at)
    state.timings.append(rec)
    await request.read()
    if faulty and script.mode == "http-error":
        rec.done_at = now()
        return web.json_response(_error(), status=500)
    if faulty and script.mode == "rate-limit":
        rec.done_at = now()
        return _rate_limited(script, n)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)  # sends the headers at once
    rec.headers_at = now()
    writes = plan(script, chat=request.path.endswith("/chat/completions"), faulty=faulty)
    try:
        await _send(resp, writes, t0, rec, split=script.mode == "split")
        await _end(request, resp, script.mode if faulty else None)
    except ConnectionResetError:  # the client gave up (a timeout) and closed the socket
        rec.client_gone = True
    return resp


def _rate_limited(script: Script, n: int) -> web.Response:
    message = f"Rate limit reached for requests. Please try again in 0.{n % 1000:03d}s."
    body = {"error": {"message": message, "type": "requests", "code": "rate_limit_exceeded"}}
    headers = {"Retry-After": script.retry_after} if script.retry_after else {}
    return web.json_response(body, status=429, headers=headers)


async def models(request: web.Request) -> web.Response:
    model = request.app[STATE].script.model
    entry = {"id": model, "object": "model", "owned_by": "scripted"}
    return web.json_response({"object": "list", "data": [entry]})


async def metrics(request: web.Request) -> web.Response:
    lines = ["# TYPE scripted_requests_total counter"]
    for path, count in sorted(request.app[STATE].served.items()):
        lines.append(f'scripted_requests_total{{path="{path}"}} {count}')
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


async def timings(request: web.Request) -> web.Response:
    return web.json_response([asdict(t) for t in request.app[STATE].timings])


def create_app(script: Script) -> web.Application:
    app = web.Application()
    app[STATE] = State(script)
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/timings", timings)
    return app


def parse_args(argv: Sequence[str] | None = None) -> tuple[Script, str, int]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--mode", choices=[*SHAPE_MODES, *FAULT_MODES], default="normal")
    p.add_argument("--ttft-ms", type=float, default=50.0)
    p.add_argument("--itl-ms", type=float, default=10.0)
    p.add_argument("--tokens", type=int, default=16)
    p.add_argument("--tokens-per-chunk", type=int, default=1)
    p.add_argument("--events-per-write", type=int, default=4)
    p.add_argument("--fault-after", type=int, default=4)
    p.add_argument("--fault-every", type=int, default=1)
    p.add_argument("--model", default="m")
    p.add_argument("--retry-after", default="1", help="rate-limit mode's Retry-After value")
    ns = p.parse_args(argv)
    if min(ns.tokens, ns.tokens_per_chunk, ns.events_per_write, ns.fault_every) < 1:
        p.error("--tokens, --tokens-per-chunk, --events-per-write and --fault-every must be >= 1")
    script = Script(**{f.name: getattr(ns, f.name) for f in fields(Script)})
    return script, ns.host, ns.port


async def serve(script: Script, host: str, port: int) -> None:
    runner = web.AppRunner(create_app(script), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound_port = runner.addresses[0][1]
    print(f"scripted server ready at http://{host}:{bound_port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    asyncio.run(serve(*parse_args(argv)))


if __name__ == "__main__":
    main()
