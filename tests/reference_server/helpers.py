"""Client helpers shared by the reference-server tests: HTTP calls, SSE streams, metrics."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

# A raw HTTP answer read whole, and ``send``: the body exactly as given over plain
# ``http.client``, as JSON unless told otherwise (the fuzz benchmark sends the same way).
from benchmarks.fuzz_requests import Answer as Answer
from benchmarks.fuzz_requests import send as send
from tests.server_process import ServerProcess

StartServer = Callable[..., ServerProcess]
TIMEOUT = aiohttp.ClientTimeout(total=30)


# --- /metrics -----------------------------------------------------------------------------


def samples(text: str, name: str, **labels: str) -> Iterator[Sample]:
    """The samples called ``name`` whose labels include ``labels``."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and labels.items() <= s.labels.items():
                yield s


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(s.value for s in samples(text, name, **labels))


async def scrape(session: aiohttp.ClientSession, url: str) -> str:
    """The server's ``/metrics`` text; fails unless it answers 200."""
    async with session.get(url + "/metrics") as resp:
        assert resp.status == 200
        return await resp.text()


# --- requests -----------------------------------------------------------------------------


async def call(
    session: aiohttp.ClientSession, method: str, url: str, body: Any = None
) -> tuple[int, dict[str, str], Any, float]:
    """(status, headers, JSON body or None, seconds taken)."""
    started = time.monotonic()
    async with session.request(method, url, json=body) as resp:
        data = await resp.json(content_type=None)
        return resp.status, dict(resp.headers), data, time.monotonic() - started


# --- streams --------------------------------------------------------------------------------


@dataclass
class Stream:
    """What a client saw of one streamed completion, updated while it arrives."""

    tokens: int = 0
    events: list[Any] = field(default_factory=list)  # parsed JSON chunks, then "[DONE]"
    token_times_s: list[float] = field(default_factory=list)  # time.monotonic() per token
    done: bool = False

    @property
    def first_token_at(self) -> float | None:
        """When the first token arrived (``time.monotonic()``), or None before it."""
        return self.token_times_s[0] if self.token_times_s else None


async def stream_completion(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], seen: Stream
) -> None:
    """Stream a greedy ``/v1/completions`` request that ignores EOS, recording it in ``seen``."""
    payload = {"prompt": "hello", "temperature": 0, "ignore_eos": True, **body, "stream": True}
    async with session.post(url + "/v1/completions", json=payload) as resp:
        assert resp.status == 200, await resp.text()
        async for raw in resp.content:
            line = raw.decode().strip()
            if not line.startswith("data: "):
                continue
            data = line.removeprefix("data: ")
            event: Any = data if data == "[DONE]" else json.loads(data)
            seen.events.append(event)
            if event == "[DONE]":
                seen.done = True
            elif event.get("choices", [{}])[0].get("text"):
                seen.tokens += 1
                seen.token_times_s.append(time.monotonic())


# --- waiting --------------------------------------------------------------------------------


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll until ``predicate()`` holds; fails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def wait_for_metric(
    session: aiohttp.ClientSession, url: str, name: str, value: float, timeout_s: float = 10.0
) -> None:
    """Poll ``/metrics`` until the metric ``name`` sums to ``value``; fails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while metric(await scrape(session, url), name) != value:
        assert time.monotonic() < deadline, f"{name} never reached {value}"
        await asyncio.sleep(0.005)
