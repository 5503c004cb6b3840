"""Graceful shutdown of the real server on SIGTERM: readiness turns 503 at once while
liveness stays up, new requests get 503, in-flight work drains, and a stream still open
at the drain deadline ends with an error event and ``[DONE]`` instead of hanging."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.server_process import ServerProcess

pytestmark = pytest.mark.e2e

StartServer = Callable[..., ServerProcess]
TIMEOUT = aiohttp.ClientTimeout(total=30)


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    )


@dataclass
class Stream:
    """What a client saw of one streamed completion, updated while it arrives."""

    tokens: int = 0
    events: list[Any] = field(default_factory=list)  # parsed JSON chunks, then "[DONE]"


async def stream_completion(
    session: aiohttp.ClientSession, url: str, max_tokens: int, seen: Stream
) -> None:
    body = {"prompt": "drain", "max_tokens": max_tokens, "ignore_eos": True, "stream": True}
    async with session.post(url + "/v1/completions", json=body) as resp:
        assert resp.status == 200, await resp.text()
        async for raw in resp.content:
            line = raw.decode().strip()
            if not line.startswith("data: "):
                continue
            data = line.removeprefix("data: ")
            event = data if data == "[DONE]" else json.loads(data)
            seen.events.append(event)
            if isinstance(event, dict) and event.get("choices", [{}])[0].get("text"):
                seen.tokens += 1


async def call(
    session: aiohttp.ClientSession, method: str, url: str, body: Any = None
) -> tuple[int, dict[str, str], Any]:
    async with session.request(method, url, json=body) as resp:
        return resp.status, dict(resp.headers), await resp.json(content_type=None)


async def scrape(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url + "/metrics") as resp:
        return await resp.text()


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def wait_for_metric(
    session: aiohttp.ClientSession, url: str, name: str, value: float, timeout_s: float = 10.0
) -> None:
    deadline = time.monotonic() + timeout_s
    while metric(await scrape(session, url), name) != value:
        assert time.monotonic() < deadline, f"{name} never reached {value}"
        await asyncio.sleep(0.005)


async def wait_for_status(
    session: aiohttp.ClientSession, url: str, status: int, timeout_s: float = 10.0
) -> None:
    deadline = time.monotonic() + timeout_s
    while (await call(session, "GET", url))[0] != status:
        assert time.monotonic() < deadline, f"{url} never answered {status}"
        await asyncio.sleep(0.005)


def test_sigterm_refuses_new_work_and_drains_in_flight(start_server: StartServer) -> None:
    server = start_server("--fault-token-delay-ms", "10", "--drain-timeout", "20")
    url = server.url
    plain = {"prompt": "in flight", "max_tokens": 100, "ignore_eos": True}

    async def main() -> dict[str, Any]:
        stream = Stream()
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            streaming = asyncio.create_task(stream_completion(session, url, 150, stream))
            non_streaming = asyncio.create_task(
                call(session, "POST", url + "/v1/completions", plain)
            )
            await wait_for(lambda: stream.tokens >= 2)
            await wait_for_metric(session, url, "slabench_running_sequences", 2.0)
            server.terminate()
            await wait_for_status(session, url + "/v2/health/ready", 503)
            seen: dict[str, Any] = {"tokens_when_unready": stream.tokens}
            seen["live"] = await call(session, "GET", url + "/v2/health/live")
            seen["new_generation"] = await call(session, "POST", url + "/v1/completions", plain)
            seen["new_embedding"] = await call(
                session, "POST", url + "/v1/embeddings", {"input": "late"}
            )
            seen["metrics"] = await scrape(session, url)
            seen["tokens_after_checks"] = stream.tokens
            await streaming
            seen["non_streaming"] = await non_streaming
        seen["stream"] = stream
        return seen

    seen = asyncio.run(main())
    # Every check ran while the stream was still being generated.
    assert seen["tokens_after_checks"] < 150
    assert seen["live"][:1] == (200,)
    for status, headers, data in (seen["new_generation"], seen["new_embedding"]):
        assert status == 503 and headers["Retry-After"] == "1"
        assert data["error"]["code"] == 503 and "shutting down" in data["error"]["message"]
    assert metric(seen["metrics"], "slabench_requests_total", reason="shutting_down") == 2

    stream: Stream = seen["stream"]
    assert stream.tokens == 150
    assert stream.events[-1] == "[DONE]"
    assert stream.events[-2]["choices"][0]["finish_reason"] == "length"
    status, _, data = seen["non_streaming"]
    assert status == 200 and data["usage"]["completion_tokens"] == 100
    assert server.wait(15) == 0


def test_drain_deadline_closes_open_stream_with_error_and_done(start_server: StartServer) -> None:
    server = start_server("--fault-token-delay-ms", "20", "--drain-timeout", "1")

    async def main() -> Stream:
        stream = Stream()
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            streaming = asyncio.create_task(stream_completion(session, server.url, 400, stream))
            await wait_for(lambda: stream.tokens >= 2)
            server.terminate()
            await streaming
        return stream

    stream = asyncio.run(main())
    assert 2 <= stream.tokens < 400
    assert stream.events[-1] == "[DONE]"
    error = stream.events[-2]["error"]
    assert error["code"] == 503 and "shutting down" in error["message"]
    assert server.wait(15) == 0
    server.stop()  # joins the thread that reads its output
    assert any("drain deadline reached" in line for line in server.output)
