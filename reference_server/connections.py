"""Slow and idle clients cannot hold the server: bounded body reads and connections.

``BodyReader`` reads a request body before the request is admitted (so a client that
trickles its body holds no capacity slot, no in-flight count and no drain), within a
deadline (408), with at most ``limit`` bodies being received at once (503 beyond: a
crowd of slow senders cannot make the server buffer without bound), and with at most
``memory_limit`` bytes of bodies held by requests read and not yet answered (503 beyond:
queued requests cannot pile up bodies without bound either; ``hold`` ... ``release``).
``LimitedTCPSite`` refuses connections past ``max_connections`` with a 503 and closes them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from reference_server.errors import BodyTimeout, Unavailable

_BUSY_BODY = b'{"error": "too many connections; retry later"}'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)


class BodyReader:
    def __init__(self, limit: int, timeout_s: float, *, memory_limit: int) -> None:
        self._limit, self._timeout_s, self._active = limit, timeout_s, 0
        self._memory_limit, self._held = memory_limit, 0

    @property
    def held(self) -> int:
        """Bytes of bodies held by requests read and not yet answered."""
        return self._held

    async def hold(self, request: web.Request) -> int:
        """Read the body (``read``) and count it as held until ``release(n)``, n the count
        returned; 503 when that would pass ``memory_limit``."""
        size = len(await self.read(request))
        if size and self._held + size > self._memory_limit:
            raise Unavailable(
                f"request bodies of {self._held} bytes are held already (limit "
                f"{self._memory_limit}); retry later"
            )
        self._held += size
        return size

    def release(self, size: int) -> None:
        self._held -= size

    @property
    def active(self) -> int:
        return self._active

    async def read(self, request: web.Request) -> bytes:
        """The whole body (aiohttp keeps it, so handlers' ``request.read()`` returns it).
        A body that has already arrived whole (the common case: a small JSON body in the
        packets of its headers) is taken at once and takes no slot; only bodies still on
        their way count towards the limit."""
        if request.content.is_eof():
            return await request.read()
        if self._active >= self._limit:
            raise Unavailable(
                f"{self._limit} request bodies are being received already; retry later"
            )
        self._active += 1
        try:
            return await asyncio.wait_for(request.read(), self._timeout_s)
        except TimeoutError:
            raise BodyTimeout(
                f"the request body did not arrive within {self._timeout_s:g}s"
            ) from None
        finally:
            self._active -= 1


class _Refuse(asyncio.Protocol):
    """A connection over the limit: one 503, then closed, without reading a byte."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(_BUSY)
        transport.close()


class LimitedTCPSite(web.TCPSite):
    """``web.TCPSite`` that serves at most ``max_connections`` connections at once."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, max_connections: int):
        super().__init__(runner, host, port)
        self._max_connections = max_connections

    async def start(self) -> None:
        await web.BaseSite.start(self)  # TCPSite.start, with the protocol factory wrapped
        server = self._runner.server
        assert server is not None
        limit = self._max_connections

        def protocol() -> asyncio.BaseProtocol:
            return _Refuse() if len(server.connections) >= limit else server()

        factory: Callable[[], asyncio.BaseProtocol] = protocol
        self._server = await asyncio.get_running_loop().create_server(
            factory,
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
