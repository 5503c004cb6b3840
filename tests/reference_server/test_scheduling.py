"""Scheduling behaviour of the real server: dynamic and continuous batching, requests
joining a running decode batch, bounded queues (429 + Retry-After) and per-request timeouts.

Timing claims are asserted as orderings (what had happened when something else
happened), never as wall-clock bounds, so that a slow CI machine cannot flake them.
"""

from __future__ import annotations

import asyncio
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
from tests.server_process import ServerProcess


def batches_over_one(text: str, queue: str) -> float:
    count = metric(text, "slabench_batch_size_count", queue=queue)
    return count - metric(text, "slabench_batch_size_bucket", queue=queue, le="1.0")


# --- batching really happens ---------------------------------------------------------


def test_concurrent_embeddings_are_batched(reference_server: ServerProcess) -> None:
    async def main() -> tuple[float, list[int]]:
        url = reference_server.url
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            before = batches_over_one(await scrape(session, url), "embeddings")
            embed = url + "/v1/embeddings"
            answers = await asyncio.gather(
                *(call(session, "POST", embed, {"input": f"text {i}"}) for i in range(32))
            )
            after = batches_over_one(await scrape(session, url), "embeddings")
        return after - before, [status for status, *_ in answers]

    grown, statuses = asyncio.run(main())
    assert statuses == [200] * 32
    assert grown >= 1


def test_concurrent_kserve_requests_are_batched(reference_server: ServerProcess) -> None:
    body = {
        "inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 16], "data": [0.5] * 16}]
    }
    infer = reference_server.url + "/v2/models/slabench-mlp/infer"

    async def main() -> tuple[float, list[Any]]:
        url = reference_server.url
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            before = batches_over_one(await scrape(session, url), "kserve")
            answers = await asyncio.gather(*(call(session, "POST", infer, body) for _ in range(32)))
            after = batches_over_one(await scrape(session, url), "kserve")
        return after - before, [data for _, _, data, _ in answers]

    grown, results = asyncio.run(main())
    outputs = [r["outputs"][0]["data"] for r in results]
    assert all(len(out) == 10 for out in outputs)
    # Same input in every request: batching must not mix rows up.
    assert all(out == pytest.approx(outputs[0], abs=1e-5) for out in outputs)
    assert grown >= 1


def test_concurrent_streams_share_decode_steps(reference_server: ServerProcess) -> None:
    async def main() -> tuple[float, list[Stream]]:
        url = reference_server.url
        streams = [Stream() for _ in range(8)]
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            before = batches_over_one(await scrape(session, url), "generation")
            await asyncio.gather(
                *(stream_completion(session, url, {"max_tokens": 64}, s) for s in streams)
            )
            after = batches_over_one(await scrape(session, url), "generation")
        return after - before, streams

    grown, streams = asyncio.run(main())
    assert all(s.done and s.tokens == 64 for s in streams)
    assert grown >= 1


@pytest.mark.e2e
def test_request_joins_running_batch_without_waiting(start_server: StartServer) -> None:
    server = start_server("--fault-token-delay-ms", "10", "--drain-timeout", "1")
    long_tokens = 200

    async def main() -> tuple[Stream, Stream, int, int, int]:
        long, short = Stream(), Stream()
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            running = asyncio.create_task(
                stream_completion(session, server.url, {"max_tokens": long_tokens}, long)
            )
            await wait_for(lambda: long.tokens >= 3)
            at_send = long.tokens
            await stream_completion(session, server.url, {"max_tokens": 8}, short)
            at_short_done = long.tokens
            await running
        assert short.first_token_at is not None and long.first_token_at is not None
        return long, short, at_send, at_short_done, long.tokens

    long, short, at_send, at_short_done, final = asyncio.run(main())
    assert short.done and short.tokens == 8
    assert long.done and final == long_tokens
    # Measured in steps of the long stream: the short request needed about nine steps
    # (prefill + 8 tokens), not the ~190 the running batch still had to go.
    assert at_short_done - at_send <= 80
    assert at_short_done < long_tokens


# --- back-pressure and timeouts ---------------------------------------------------------


def assert_openai_error(data: Any, status: int, error_type: str) -> None:
    error = data["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert error["type"] == error_type
    assert error["code"] == status


@pytest.mark.e2e
def test_full_generation_queue_answers_429_at_once(start_server: StartServer) -> None:
    server = start_server(
        "--max-num-seqs", "1", "--max-waiting", "1", "--fault-token-delay-ms", "10",
        "--drain-timeout", "1",
    )  # fmt: skip
    url = server.url
    small = {"prompt": "hi", "max_tokens": 4, "temperature": 0, "ignore_eos": True}

    async def main() -> tuple[Stream, list[Any], Any, int, str]:
        running = Stream()
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            first = asyncio.create_task(
                stream_completion(session, url, {"max_tokens": 150}, running)
            )
            await wait_for(lambda: running.tokens >= 1)
            queued = asyncio.create_task(call(session, "POST", url + "/v1/completions", small))
            await wait_for_metric(session, url, "slabench_waiting_sequences", 1.0)
            rejected = await asyncio.gather(
                *(call(session, "POST", url + "/v1/completions", small) for _ in range(3))
            )
            tokens_when_rejected = running.tokens
            await first
            served = await queued
            text = await scrape(session, url)
        return running, rejected, served, tokens_when_rejected, text

    running, rejected, served, tokens_when_rejected, text = asyncio.run(main())
    for status, headers, data, _ in rejected:
        assert status == 429
        assert headers["Retry-After"] == "1"
        assert_openai_error(data, 429, "rate_limit_error")
    # Refused while the one running sequence was still far from done, not after it.
    assert tokens_when_rejected < 150
    assert running.done and running.tokens == 150
    assert served[0] == 200 and served[2]["usage"]["completion_tokens"] == 4
    labels = {"endpoint": "/v1/completions", "status": "429", "reason": "queue_full"}
    assert metric(text, "slabench_requests_total", **labels) == 3


@pytest.mark.e2e
def test_full_batcher_queue_answers_429_then_timeout_504(start_server: StartServer) -> None:
    # A stall that starts a millisecond after start-up and lasts 20 s freezes the batcher:
    # it holds one request and its queue holds at most one more; the rest must be refused.
    server = start_server(
        "--max-queue-size", "1", "--max-batch-size", "1", "--request-timeout", "1",
        "--fault-stall-every", "20", "--fault-stall-duration", "19.999", "--drain-timeout", "1",
    )  # fmt: skip

    embed = server.url + "/v1/embeddings"

    async def main() -> tuple[list[Any], str]:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            answers = await asyncio.gather(
                *(call(session, "POST", embed, {"input": "x"}) for _ in range(6))
            )
            return answers, await scrape(session, server.url)

    answers, text = asyncio.run(main())
    refused = [a for a in answers if a[0] == 429]
    expired = [a for a in answers if a[0] == 504]
    # One held by the stalled scheduler, and one queued unless the rest all arrived before
    # the scheduler took the first one off the queue.
    assert len(refused) + len(expired) == 6 and 1 <= len(expired) <= 2
    assert max(a[3] for a in refused) < min(a[3] for a in expired)
    for _, headers, data, _ in refused:
        assert headers["Retry-After"] == "1"
        assert_openai_error(data, 429, "rate_limit_error")
    for _, _, data, _ in expired:
        assert_openai_error(data, 504, "timeout")
    requests = {"endpoint": "/v1/embeddings"}
    full = metric(text, "slabench_requests_total", status="429", reason="queue_full", **requests)
    timed_out = metric(text, "slabench_requests_total", status="504", reason="timeout", **requests)
    assert (full, timed_out) == (len(refused), len(expired))


@pytest.mark.e2e
def test_generation_past_request_timeout_answers_504(start_server: StartServer) -> None:
    server = start_server("--request-timeout", "0.5", "--fault-token-delay-ms", "10")
    body = {"prompt": "hi", "max_tokens": 300, "ignore_eos": True}

    async def main() -> tuple[Any, str]:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            answer = await call(session, "POST", server.url + "/v1/completions", body)
            return answer, await scrape(session, server.url)

    (status, _, data, _), text = asyncio.run(main())
    assert status == 504
    assert_openai_error(data, 504, "timeout")
    labels = {"endpoint": "/v1/completions", "status": "504", "reason": "timeout"}
    assert metric(text, "slabench_requests_total", **labels) == 1


# --- clients that leave -------------------------------------------------------------------


@pytest.mark.e2e
def test_client_leaving_a_stream_frees_its_slot(start_server: StartServer) -> None:
    server = start_server("--max-num-seqs", "1", "--fault-token-delay-ms", "10")
    body = {"prompt": "x", "max_tokens": 300, "ignore_eos": True, "stream": True}
    small = {"prompt": "hi", "max_tokens": 4, "ignore_eos": True}

    async def main() -> tuple[int, str]:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            async with session.post(server.url + "/v1/completions", json=body) as resp:
                chunks = 0
                async for raw in resp.content:
                    chunks += raw.startswith(b"data: {")
                    if chunks == 3:
                        break
                resp.close()  # drop the connection mid-stream
            status, *_ = await call(session, "POST", server.url + "/v1/completions", small)
            return status, await scrape(session, server.url)

    status, text = asyncio.run(main())
    assert status == 200
    # The abandoned sequence stopped at the next step: nowhere near its 300 tokens.
    assert metric(text, "slabench_generation_tokens_total") < 50
    labels = {"endpoint": "/v1/completions", "reason": "client_disconnected"}
    assert metric(text, "slabench_requests_total", **labels) == 1


@pytest.mark.e2e
def test_client_abandoning_a_plain_request_frees_its_slot(start_server: StartServer) -> None:
    server = start_server("--max-num-seqs", "1", "--fault-token-delay-ms", "10")
    body = {"prompt": "x", "max_tokens": 150, "ignore_eos": True}
    small = {"prompt": "hi", "max_tokens": 4, "ignore_eos": True}

    async def main() -> tuple[int, str]:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            with pytest.raises(TimeoutError):
                quick = aiohttp.ClientTimeout(total=0.2)
                async with session.post(
                    server.url + "/v1/completions", json=body, timeout=quick
                ) as resp:
                    await resp.read()
            status, *_ = await call(session, "POST", server.url + "/v1/completions", small)
            return status, await scrape(session, server.url)

    status, text = asyncio.run(main())
    assert status == 200
    assert metric(text, "slabench_generation_tokens_total") < 100
