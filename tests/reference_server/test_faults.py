"""Fault injection on the real server: added latency, error rate, periodic stalls, slow
start, and the admin endpoint that changes faults while the server runs."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

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
)
from tests.server_process import ServerProcess

T = TypeVar("T")
EMBED = {"input": "fault injection"}
INFER = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 16], "data": [0.1] * 16}]}


def in_session(work: Callable[[aiohttp.ClientSession], Awaitable[T]]) -> T:
    """Run ``work`` in a fresh client session, from synchronous test code."""

    async def main() -> T:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            return await work(session)

    return asyncio.run(main())


def request(method: str, url: str, body: Any = None) -> tuple[int, dict[str, str], Any, float]:
    return in_session(lambda session: call(session, method, url, body))


def metrics_text(url: str) -> str:
    return in_session(lambda session: scrape(session, url))


def many(url: str, body: Any, count: int) -> list[int]:
    """Statuses of ``count`` concurrent POSTs."""

    async def all_of_them(session: aiohttp.ClientSession) -> list[int]:
        answers = await asyncio.gather(*(call(session, "POST", url, body) for _ in range(count)))
        return [status for status, *_ in answers]

    return in_session(all_of_them)


@pytest.mark.e2e
def test_fixed_latency_delays_every_request(start_server: StartServer) -> None:
    server = start_server("--fault-latency", "fixed:200")
    for _ in range(3):
        status, _, data, took_s = request("POST", server.url + "/v1/embeddings", EMBED)
        assert status == 200 and len(data["data"][0]["embedding"]) == 64
        assert took_s >= 0.2
    text = metrics_text(server.url)
    latency = {"endpoint": "/v1/embeddings"}
    assert metric(text, "slabench_request_latency_seconds_count", **latency) == 3
    assert metric(text, "slabench_request_latency_seconds_sum", **latency) >= 0.6


@pytest.mark.e2e
def test_error_rate_one_fails_every_inference_request(start_server: StartServer) -> None:
    server = start_server("--fault-error-rate", "1")
    status, _, data, _ = request("POST", server.url + "/v1/embeddings", EMBED)
    assert status == 500
    assert data["error"]["type"] == "server_error" and data["error"]["code"] == 500
    assert "injected" in data["error"]["message"]
    status, _, data, _ = request("POST", server.url + "/v2/models/slabench-mlp/infer", INFER)
    assert status == 500 and "injected" in data["error"]
    status, _, _, _ = request("GET", server.url + "/v1/models")  # not an inference endpoint
    assert status == 200
    text = metrics_text(server.url)
    injected = {"status": "500", "reason": "injected_error"}
    assert metric(text, "slabench_requests_total", endpoint="/v1/embeddings", **injected) == 1
    kserve = "/v2/models/{name}/infer"
    assert metric(text, "slabench_requests_total", endpoint=kserve, **injected) == 1


@pytest.mark.e2e
def test_error_rate_half_fails_about_half(start_server: StartServer) -> None:
    server = start_server("--fault-error-rate", "0.5")
    statuses = many(server.url + "/v1/embeddings", EMBED, 200)
    failed = statuses.count(500)
    assert failed + statuses.count(200) == 200
    # Binomial(200, 0.5): sd ~7.1, so 65..135 is five sd either way.
    assert 65 <= failed <= 135


@pytest.mark.e2e
def test_periodic_stalls_open_gaps_in_a_stream(start_server: StartServer) -> None:
    server = start_server(
        "--fault-stall-every", "1", "--fault-stall-duration", "0.5",
        "--fault-token-delay-ms", "10", "--drain-timeout", "1",
    )  # fmt: skip
    # 120 steps of >= 10 ms is more than one healthy half-period: a stall must fall inside.
    body = {"prompt": "x", "max_tokens": 120}
    seen = Stream()
    in_session(lambda session: stream_completion(session, server.url, body, seen))
    times = seen.token_times_s
    assert len(times) == 120
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) >= 0.4
    assert sorted(gaps)[len(gaps) // 2] < 0.4  # most steps are not stalled


@pytest.mark.e2e
def test_slow_start_is_not_ready_then_ready(start_server: StartServer) -> None:
    server = start_server("--fault-slow-start", "3")
    url = server.url

    async def main() -> tuple[list[Any], list[int], Any]:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            early = [
                await call(session, "GET", url + "/v2/health/ready"),
                await call(session, "POST", url + "/v1/embeddings", EMBED),
                await call(session, "GET", url + "/v2/models/slabench-mlp/ready"),
            ]
            live: list[int] = []
            deadline = time.monotonic() + 15
            while True:
                live.append((await call(session, "GET", url + "/v2/health/live"))[0])
                if (await call(session, "GET", url + "/v2/health/ready"))[0] == 200:
                    break
                assert time.monotonic() < deadline, "never became ready"
                await asyncio.sleep(0.05)
            later = await call(session, "POST", url + "/v1/embeddings", EMBED)
        return early, live, later

    (ready, infer, model_ready), live, later = asyncio.run(main())
    assert ready[0] == 503 and ready[2] == {"ready": False}
    assert infer[0] == 503 and infer[1]["Retry-After"] == "1"
    assert infer[2]["error"]["code"] == 503
    assert model_ready[0] == 503
    assert set(live) == {200} and len(live) > 1
    assert later[0] == 200


def test_admin_endpoint_is_off_by_default(reference_server: ServerProcess) -> None:
    assert request("GET", reference_server.url + "/admin/faults")[0] == 404
    assert request("POST", reference_server.url + "/admin/faults", {"error_rate": 1})[0] == 404


@pytest.mark.e2e
def test_admin_endpoint_changes_error_rate_live(start_server: StartServer) -> None:
    server = start_server("--enable-admin")
    admin, embed = server.url + "/admin/faults", server.url + "/v1/embeddings"

    status, _, config, _ = request("GET", admin)
    assert status == 200 and config["error_rate"] == 0.0 and config["latency"] is None
    assert request("POST", embed, EMBED)[0] == 200

    status, _, config, _ = request("POST", admin, {"error_rate": 1})
    assert status == 200 and config["error_rate"] == 1
    assert request("GET", admin)[2]["error_rate"] == 1
    assert many(embed, EMBED, 5) == [500] * 5

    assert request("POST", admin, {"error_rate": 0})[0] == 200
    assert many(embed, EMBED, 5) == [200] * 5


@pytest.mark.e2e
def test_admin_endpoint_rejects_bad_changes(start_server: StartServer) -> None:
    server = start_server("--enable-admin")
    admin = server.url + "/admin/faults"
    for bad in (
        {"no_such_fault": 1},
        {"error_rate": 2},
        {"error_rate": "half"},
        {"error_rate": True},
        {"latency": "gamma:3"},
        {"latency": 50},
        {"stall_every_s": 1, "stall_duration_s": 2},
        [1, 2],
    ):
        status, _, data, _ = request("POST", admin, bad)
        assert status == 400, bad
        assert data["error"]["type"] == "invalid_request_error"

    async def not_json() -> int:
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT) as session,
            session.post(
                admin, data=b"{oops", headers={"Content-Type": "application/json"}
            ) as resp,
        ):
            return resp.status

    assert asyncio.run(not_json()) == 400
    # A rejected change leaves the running config as it was.
    assert request("GET", admin)[2]["error_rate"] == 0.0
