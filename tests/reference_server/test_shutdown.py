"""Graceful shutdown of the real server on SIGTERM: readiness turns 503 at once while
liveness stays up, new requests get 503, in-flight work drains, and a stream still open
at the drain deadline ends with an error event and ``[DONE]`` instead of hanging."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from tests.reference_server.helpers import (
    TIMEOUT,
    StartServer,
    Stream,
    call,
    metric,
    scrape,
    stream_completion,
    wait_for,
    wait_for_metric,
)

pytestmark = pytest.mark.e2e


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
            streaming = asyncio.create_task(
                stream_completion(session, url, {"max_tokens": 150}, stream)
            )
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
    for status, headers, data, _ in (seen["new_generation"], seen["new_embedding"]):
        assert status == 503 and headers["Retry-After"] == "1"
        assert data["error"]["code"] == 503 and "shutting down" in data["error"]["message"]
    assert metric(seen["metrics"], "slabench_requests_total", reason="shutting_down") == 2

    stream: Stream = seen["stream"]
    assert stream.tokens == 150
    assert stream.events[-1] == "[DONE]"
    assert stream.events[-2]["choices"][0]["finish_reason"] == "length"
    status, _, data, _ = seen["non_streaming"]
    assert status == 200 and data["usage"]["completion_tokens"] == 100
    assert server.wait(15) == 0


def test_drain_deadline_closes_open_stream_with_error_and_done(start_server: StartServer) -> None:
    server = start_server("--fault-token-delay-ms", "20", "--drain-timeout", "1")

    async def main() -> Stream:
        stream = Stream()
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            streaming = asyncio.create_task(
                stream_completion(session, server.url, {"max_tokens": 400}, stream)
            )
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
