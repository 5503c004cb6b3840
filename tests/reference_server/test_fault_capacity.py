"""The fixed-capacity fault (``--fault-capacity-rps``): a simulated single-server FIFO queue
with a 1/R s service time in front of every inference request, bounded by the request
timeout. Capacity searches test against it, so its numbers must be exact."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import aiohttp
import pytest

from reference_server.__main__ import main
from reference_server.cli import config_from_args, parser
from reference_server.config import FaultConfig
from reference_server.errors import Overloaded
from reference_server.faults import CapacityGate, FaultInjector, from_mapping
from tests.reference_server.helpers import TIMEOUT, StartServer, call, metric, scrape
from tests.server_process import ServerProcess

INFER_PATH = "/v2/models/slabench-mlp/infer"
INFER = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 16], "data": [0.1] * 16}]}
EMBED = {"input": "capacity"}
CAPACITY_COUNT = "slabench_queue_time_seconds_count"


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- slot arithmetic ---------------------------------------------------------------------


def test_gate_serves_one_slot_after_another_from_arrival() -> None:
    gate = CapacityGate()
    waits = [gate.book(10.0, 0.1).wait_s for _ in range(3)]  # three arrive at once
    assert waits == [pytest.approx(0.1), pytest.approx(0.2), pytest.approx(0.3)]
    later = gate.book(11.0, 0.1)  # the server went idle at 10.3: no queueing
    assert later.queued_s == 0.0 and later.wait_s == pytest.approx(0.1)


def test_gate_below_capacity_never_queues_and_above_it_queues_without_bound() -> None:
    below, above = CapacityGate(), CapacityGate()
    # D/D/1 with service 0.1 s: arrivals every 0.2 s never wait for each other...
    assert [below.book(0.2 * k, 0.1).queued_s for k in range(50)] == [0.0] * 50
    # ...arrivals every 0.05 s queue 0.05 s longer each time.
    queued = [above.book(0.05 * k, 0.1).queued_s for k in range(50)]
    assert queued == [pytest.approx(0.05 * k) for k in range(50)]


def test_injector_books_nothing_when_capacity_is_off() -> None:
    injector = FaultInjector(FaultConfig())
    assert injector.book_capacity(max_wait_s=0.0) is None


def test_injector_refuses_a_wait_over_the_bound_and_books_nothing() -> None:
    clock = FakeClock(100.0)
    injector = FaultInjector(FaultConfig(capacity_rps=10.0), clock=clock)
    assert [injector.book_capacity(0.25) is not None for _ in range(2)] == [True, True]
    for _ in range(3):  # each refusal leaves the queue as it was: still 0.3 s predicted
        with pytest.raises(Overloaded) as err:
            injector.book_capacity(0.25)
        assert "0.3s, over the 0.25s request timeout" in str(err.value)
        assert "\n" not in str(err.value)
    clock.now = 100.1  # one slot has passed: the third request now fits
    slot = injector.book_capacity(0.25)
    assert slot is not None and slot.wait_s == pytest.approx(0.2)


def test_backlog_survives_a_capacity_change_and_the_new_rate_applies_to_new_slots() -> None:
    clock = FakeClock(0.0)
    injector = FaultInjector(FaultConfig(capacity_rps=1.0), clock=clock)
    injector.book_capacity(60.0)  # slot [0, 1)
    injector.config = FaultConfig(capacity_rps=4.0)
    slot = injector.book_capacity(60.0)
    assert slot is not None
    assert slot.queued_s == pytest.approx(1.0) and slot.service_s == pytest.approx(0.25)


def test_from_mapping_takes_a_capacity_and_rejects_bad_ones() -> None:
    assert from_mapping(FaultConfig(), {"capacity_rps": 50}).capacity_rps == 50
    for bad in (-1, math.nan, math.inf):
        with pytest.raises(ValueError, match="capacity_rps must be a finite number >= 0"):
            from_mapping(FaultConfig(), {"capacity_rps": bad})
    with pytest.raises(ValueError, match="capacity_rps must be a number"):
        from_mapping(FaultConfig(), {"capacity_rps": "50"})


# --- command line --------------------------------------------------------------------------


def test_command_line_sets_the_capacity() -> None:
    config = config_from_args(parser().parse_args(["--fault-capacity-rps", "12.5"]))
    assert config.faults.capacity_rps == 12.5
    assert config_from_args(parser().parse_args([])).faults.capacity_rps == 0.0


@pytest.mark.parametrize("bad", ["-1", "nan", "inf", "fast"])
def test_command_line_rejects_a_bad_capacity_in_one_line(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--fault-capacity-rps", bad])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "--fault-capacity-rps" in errors[0]
    assert "Traceback" not in err


# --- the real server -----------------------------------------------------------------------


def session() -> aiohttp.ClientSession:
    # No client-side connection limit: requests must reach the server together.
    return aiohttp.ClientSession(timeout=TIMEOUT, connector=aiohttp.TCPConnector(limit=0))


async def timed_infer(client: aiohttp.ClientSession, url: str) -> tuple[int, float]:
    """(status, time.monotonic() when the answer was read whole); a refusal must carry
    Retry-After and the KServe error body."""
    async with client.post(url + INFER_PATH, json=INFER) as resp:
        body = await resp.json(content_type=None)
        if resp.status == 429:
            assert resp.headers["Retry-After"] == "1"
            assert "simulated capacity" in body["error"]
        return resp.status, time.monotonic()


async def wait_for_booked(client: aiohttp.ClientSession, url: str, count: int) -> None:
    """Poll until ``count`` requests have booked a capacity slot (the slot is booked, and
    observed, before the request's first await)."""
    deadline = time.monotonic() + 10.0
    while metric(await scrape(client, url), CAPACITY_COUNT, queue="capacity") < count:
        assert time.monotonic() < deadline, f"{count} requests never reached the gate"
        await asyncio.sleep(0.002)


@pytest.mark.e2e
def test_capacity_caps_completions_per_second_in_arrival_order(start_server: StartServer) -> None:
    rate_rps, wave = 50.0, 50
    server = start_server("--fault-capacity-rps", str(rate_rps))

    async def run() -> tuple[float, list[tuple[int, float]], list[tuple[int, float]], str]:
        async with session() as client:
            started = time.monotonic()
            first = [asyncio.create_task(timed_infer(client, server.url)) for _ in range(wave)]
            # The second wave is sent once the first has booked every slot: it arrives after.
            await wait_for_booked(client, server.url, wave)
            second = [asyncio.create_task(timed_infer(client, server.url)) for _ in range(wave)]
            answers = await asyncio.gather(*first), await asyncio.gather(*second)
            return started, *answers, await scrape(client, server.url)

    started, first, second, text = asyncio.run(run())
    assert {status for status, _ in first + second} == {200}
    done = sorted(t - started for _, t in first + second)
    # One slot of 1/R s per request: the k-th completion cannot come before k/R s.
    assert all(t >= k / rate_rps for k, t in enumerate(done))
    assert done[-1] >= (2 * wave - 1) / rate_rps
    assert max(t for _, t in first) < min(t for _, t in second)  # FIFO
    assert metric(text, CAPACITY_COUNT, queue="capacity") == 2 * wave


def test_no_capacity_means_no_gate(reference_server: ServerProcess) -> None:
    async def run() -> tuple[list[tuple[int, float]], str]:
        async with session() as client:
            answers = await asyncio.gather(
                *(timed_infer(client, reference_server.url) for _ in range(20))
            )
            return answers, await scrape(client, reference_server.url)

    answers, text = asyncio.run(run())
    assert [status for status, _ in answers] == [200] * 20
    assert metric(text, CAPACITY_COUNT, queue="capacity") == 0


@pytest.mark.e2e
def test_a_wait_over_the_request_timeout_is_refused_at_once(start_server: StartServer) -> None:
    # Slots of 1 s and a 1.5 s timeout: the first request waits 1 s, the next would wait 2 s.
    server = start_server("--fault-capacity-rps", "1", "--request-timeout", "1.5")
    url = server.url

    async def run() -> tuple[list[tuple[int, float]], Any, Any, str]:
        async with session() as client:
            burst = await asyncio.gather(*(timed_infer(client, url) for _ in range(5)))
            # The gate is idle again (refusals booked nothing): one passes, one is refused.
            admitted = asyncio.create_task(call(client, "POST", url + INFER_PATH, INFER))
            await wait_for_booked(client, url, 2)
            refused = await call(client, "POST", url + "/v1/embeddings", EMBED)
            return burst, await admitted, refused, await scrape(client, url)

    burst, admitted, refused, text = asyncio.run(run())
    statuses = sorted(status for status, _ in burst)
    assert statuses == [200, 429, 429, 429, 429]
    ok_at = next(t for status, t in burst if status == 200)
    assert all(t < ok_at for status, t in burst if status == 429)  # answered before 1 slot

    status, _, data, took_s = admitted
    assert status == 200 and took_s >= 1.0
    status, headers, data, _ = refused
    assert status == 429 and headers["Retry-After"] == "1"
    assert data["error"]["type"] == "rate_limit_error" and data["error"]["code"] == 429
    assert "request timeout" in data["error"]["message"]
    kserve_429 = {"endpoint": "/v2/models/{name}/infer", "status": "429", "reason": "queue_full"}
    assert metric(text, "slabench_requests_total", **kserve_429) == 4


@pytest.mark.e2e
def test_admin_endpoint_sets_and_validates_the_capacity(start_server: StartServer) -> None:
    server = start_server("--enable-admin")
    admin = server.url + "/admin/faults"

    async def run() -> tuple[list[Any], Any, float, list[int], str]:
        async with session() as client:
            bad = [
                await call(client, "POST", admin, {"capacity_rps": value})
                for value in (-1, math.nan, math.inf, "20", True)
            ]
            changed = await call(client, "POST", admin, {"capacity_rps": 20})
            started = time.monotonic()
            answers = await asyncio.gather(*(timed_infer(client, server.url) for _ in range(20)))
            last_s = max(t for _, t in answers) - started
            assert (await call(client, "POST", admin, {"capacity_rps": 0}))[0] == 200
            after = await asyncio.gather(*(timed_infer(client, server.url) for _ in range(5)))
            statuses = [status for status, _ in answers + after]
            return bad, changed, last_s, statuses, await scrape(client, server.url)

    bad, changed, last_s, statuses, text = asyncio.run(run())
    for status, _, data, _ in bad:
        assert status == 400 and data["error"]["type"] == "invalid_request_error"
        assert "capacity_rps" in data["error"]["message"]
    assert changed[0] == 200 and changed[2]["capacity_rps"] == 20
    assert statuses == [200] * 25
    assert last_s >= 19 / 20
    assert metric(text, CAPACITY_COUNT, queue="capacity") == 20  # none once set back to 0
