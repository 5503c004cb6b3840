"""Shared fixtures: the real reference server on a free loopback port.

The suite runs on pytest-xdist workers (see addopts in pyproject.toml), a test file at a
time on one worker: a module-scoped fixture is built once, a session-scoped one once per
worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.server_process import SMALL_MODELS, ServerProcess

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def reference_server() -> Iterator[ServerProcess]:
    """One small reference server shared by the read-only tests of a session (of a worker)."""
    with ServerProcess(args=[*SMALL_MODELS, "--drain-timeout", "2"]) as server:
        yield server


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerProcess]]:
    """Start a dedicated server with extra options; every one started is stopped after."""
    started: list[ServerProcess] = []

    def start(*args: str, small: bool = True) -> ServerProcess:
        server = ServerProcess(args=[*(SMALL_MODELS if small else ()), *args]).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
