"""The real reference server app (``create_app``) served in this process on a free loopback
port, for tests that need its HTTP answers but not a subprocess (no torch import to pay)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from aiohttp.test_utils import TestClient, TestServer

from reference_server import create_app
from reference_server.config import (
    ClassifierConfig,
    EmbedderConfig,
    LMConfig,
    PrefixCacheConfig,
    ServerConfig,
)
from tests.reference_server.helpers import metric

T = TypeVar("T")
# A small LM with the default 1,024-token context; the other models as small as they go.
SMALL = ServerConfig(
    device="cpu",
    lm=LMConfig(layers=2, dim=64, heads=4),
    embedder=EmbedderConfig(layers=1, dim=64),
    classifier=ClassifierConfig(in_features=16, hidden=32, layers=2),
)


def config(base: ServerConfig = SMALL, **prefix: Any) -> ServerConfig:
    """``base`` with some ``PrefixCacheConfig`` fields changed."""
    return dataclasses.replace(base, prefix_cache=PrefixCacheConfig(**prefix))


@contextlib.asynccontextmanager
async def serving(server_config: ServerConfig) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(server_config), host="127.0.0.1")) as client:
        yield client


def run(server_config: ServerConfig, body: Callable[[TestClient[Any, Any]], Awaitable[T]]) -> T:
    """Serve the app, run ``body`` against it (60 s at most on a busy machine), stop it."""

    async def main() -> T:
        async with serving(server_config) as client:
            return await asyncio.wait_for(body(client), 60.0)

    return asyncio.run(main())


async def post(client: TestClient[Any, Any], path: str, body: dict[str, Any]) -> dict[str, Any]:
    """A non-streamed request that must answer 200."""
    async with client.post(path, json=body) as resp:
        data: dict[str, Any] = await resp.json()
        assert resp.status == 200, data
        return data


async def stream(client: TestClient[Any, Any], path: str, body: dict[str, Any]) -> list[Any]:
    """A streamed request that must answer 200: its parsed chunks, without ``[DONE]``."""
    async with client.post(path, json={**body, "stream": True}) as resp:
        assert resp.status == 200, await resp.text()
        events = (await resp.text()).strip().split("\n\n")
    assert events[-1] == "data: [DONE]"
    return [json.loads(e.removeprefix("data: ")) for e in events[:-1]]


async def error(client: TestClient[Any, Any], path: str, body: dict[str, Any]) -> tuple[int, str]:
    """A request that must fail: its status and the error message."""
    async with client.post(path, json=body) as resp:
        data = await resp.json()
        assert resp.status >= 400, data
        return resp.status, data["error"]["message"]


async def metrics(client: TestClient[Any, Any], *names: str) -> list[float]:
    async with client.get("/metrics") as resp:
        text = await resp.text()
    return [metric(text, name) for name in names]
