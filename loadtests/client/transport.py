"""HTTP transport on geventhttpclient, the client under Locust's ``FastHttpUser``.

We drive geventhttpclient's ``HTTPClient`` directly instead of going through
``FastHttpSession.request`` so that every timestamp is taken by us, at the right moment:
the send, each read of a streamed body, the end. Locust's own statistics are fed afterwards
from those timestamps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import gevent
import gevent.monkey
import gevent.ssl
from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPParseError, HTTPSocketPoolResponse

from loadtests.client.clock import now
from loadtests.client.failures import ConnectTimeout, MalformedResponse
from loadtests.client.tls import Tls
from sla.errors import SlabenchError


class TargetError(SlabenchError):
    """A --host that cannot be used."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where requests go: scheme/host/port plus an optional path prefix."""

    base_url: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> Target:
        shape = f"--host {url!r} must look like http://HOST:PORT[/prefix]"
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises for a port that is no number or out of range
        except ValueError as exc:  # "http://[::1", "http://h:99999", "http://h:abc"
            raise TargetError(f"{shape} ({exc})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TargetError(shape)
        if parts.username or parts.password:
            raise TargetError("--host must not carry credentials; use --api-key")
        base = f"{parts.scheme}://{parts.netloc}"
        return cls(base_url=base, prefix=parts.path.rstrip("/"))


def tls_client_options(tls: Tls) -> dict[str, Any]:
    """Keyword arguments for geventhttpclient's ``HTTPClient`` that check as ``tls`` says."""
    if not tls.verify:
        return {"insecure": True, "ssl_context_factory": _unverified_context}
    options: dict[str, Any] = {"ssl_context_factory": _verified_context}
    if tls.ca_bundle:
        options["ssl_options"] = {"ca_certs": tls.ca_bundle}
    return options


def _verified_context(cafile: str | None = None) -> gevent.ssl.SSLContext:
    """A context that checks the certificate and the host name, trusting ``cafile`` (the
    pool always passes one: ``--ca-bundle``, else its default bundle).

    gevent's own ``SSLContext`` class, not ``gevent.ssl.create_default_context``: in a
    process gevent has not patched (a benchmark client, a test) that returns the standard
    library's context, whose handshake blocks the whole process."""
    context = gevent.ssl.SSLContext(gevent.ssl.PROTOCOL_TLS_CLIENT)  # hostname + chain checked
    if cafile:
        context.load_verify_locations(cafile=cafile)
    else:
        context.load_default_certs()
    return context


def _unverified_context(**_: Any) -> gevent.ssl.SSLContext:
    context = gevent.ssl.SSLContext(gevent.ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = gevent.ssl.CERT_NONE
    return context


class Transport:
    """A connection pool to one target; responses are returned after the headers."""

    def __init__(
        self,
        target: Target,
        *,
        concurrency: int,
        connect_timeout_s: float,
        network_timeout_s: float,
        headers: dict[str, str],
        tls: Tls | None = None,
    ) -> None:
        self.target = target
        self._headers = headers
        self._client = HTTPClient.from_url(
            target.base_url,
            concurrency=concurrency,
            connection_timeout=connect_timeout_s,
            network_timeout=network_timeout_s,
            **tls_client_options(tls or Tls()),
        )
        _name_connect_timeouts(self._client, connect_timeout_s)
        _check_idle_connections_without_yielding(self._client)

    def send(self, method: str, path: str, body: bytes | None) -> HTTPSocketPoolResponse:
        return self._client.request(
            method, self.target.prefix + path, body=body or b"", headers=self._headers
        )

    def warm(self, path: str) -> None:
        """Open a connection before the timed window (its connect time is not measured)."""
        response = self.send("GET", path, None)
        response.read()
        response.release()

    def close(self) -> None:
        self._client.close()


def _name_connect_timeouts(client: HTTPClient, timeout_s: float) -> None:
    """Make a connect (TLS handshake included) that times out raise ``ConnectTimeout``: the
    pool's socket timeout is the same exception for a connect and for a silent answer, and
    only the first says that the target cannot be reached."""
    pool = client._connection_pool
    connect = pool._connect_socket

    def connect_or_say_so(sock: Any, address: Any) -> Any:
        try:
            return connect(sock, address)
        except TimeoutError as exc:
            raise ConnectTimeout(timeout_s) from exc

    pool._connect_socket = connect_or_say_so  # type: ignore[method-assign]


_select_now = gevent.monkey.get_original("select", "select")


def _check_idle_connections_without_yielding(client: HTTPClient) -> None:
    """Check a pooled keep-alive connection before reuse without a trip through the loop.

    geventhttpclient asks ``gevent.select.select([sock], [], [], 0)`` whether an idle
    connection was closed (readable while idle: a FIN, or stray bytes); gevent's select
    then yields to the event loop (``sleep(0)``) even with a timeout of 0. Each request
    would wait there for every other greenlet's turn after its ``sent_at`` was taken, a
    delay that lands in its TTFT, and pay a loop iteration. The same check with the
    original, never-blocking select syscall."""
    pool = client._connection_pool

    def alive(sock: Any) -> bool:
        if sock is None:
            return False
        try:
            if sock.fileno() < 0:
                return False
            readable, _, _ = _select_now([sock], [], [], 0.0)
            return not readable
        except (OSError, ValueError):
            return False

    pool._is_socket_alive = alive  # type: ignore[method-assign]


def read_some(response: HTTPSocketPoolResponse) -> bytes:
    """Return whatever body bytes are available, waiting for at least one read.

    geventhttpclient's ``read(n)`` waits until n bytes have arrived, which would delay
    every streamed event; this returns as soon as the socket delivers anything. An empty
    result means the body is complete.
    """
    buffer = response._body_buffer
    while not buffer:
        if response.message_complete:
            return b""
        sock = response._sock
        if sock is None:
            raise ConnectionResetError("connection closed before the body was complete")
        data = sock.recv(response.block_size)
        try:
            response.feed(data)  # b"" lets the parser see EOF (ends a close-delimited body)
        except HTTPParseError as exc:
            # It raises at EOF inside a chunked or sized body (reported just below) and on
            # bytes that are not HTTP; as OSErrors, the caller keeps the timings so far.
            if data:
                raise MalformedResponse(str(exc)) from exc
        if not data and not response.message_complete:
            raise ConnectionResetError("connection closed before the body was complete")
    out = bytes(buffer)
    del buffer[:]
    return out


def set_read_timeout(
    response: HTTPSocketPoolResponse, timeout_s: float | None
) -> Callable[[], None]:
    """Make each socket read of ``response``'s body raise ``TimeoutError`` after
    ``timeout_s`` of silence (None: wait as long as it takes); return the function that
    restores the connection's own timeout (call it before the connection can serve another
    request)."""
    sock = response._sock
    if sock is None:  # the body is already complete
        return _nothing
    previous = sock.gettimeout()
    sock.settimeout(timeout_s)
    return partial(sock.settimeout, previous)


class IdleWatch:
    """Raise ``IdleTimeout`` in the greenlet that made this watch once ``idle_s`` seconds
    pass after ``last`` (the reader sets it at each read): the idle timeout of a stream.

    A socket timeout does the same, but gevent arms and cancels a timer for every blocking
    read to enforce it (a stream waits a read per token); this is one timer per stream. When
    it fires early (data came since it was armed) it is armed again for what is left of
    ``idle_s`` since the last read, so the timeout is exact and costs nothing per read but
    the assignment of ``last``. Close it before the greenlet does anything but read."""

    __slots__ = ("_greenlet", "_loop", "_timer", "idle_s", "last")

    def __init__(self, idle_s: float, *, started_at: float) -> None:
        self.idle_s = idle_s
        self.last = started_at  # on loadtests.client.clock's clock, as each read sets it
        self._greenlet = gevent.getcurrent()
        self._loop = gevent.get_hub().loop
        self._timer = self._loop.timer(idle_s)
        self._timer.start(self._check)

    def _check(self) -> None:  # runs in the hub
        silent = now() - self.last
        self._timer.close()
        if silent >= self.idle_s:
            self._greenlet.throw(IdleTimeout(self.idle_s))
            return
        self._timer = self._loop.timer(self.idle_s - silent)
        self._timer.start(self._check)

    def close(self) -> None:
        self._timer.close()


class IdleTimeout(Exception):
    """No data for ``IdleWatch.idle_s``."""


def _nothing() -> None:
    pass


def discard(response: HTTPSocketPoolResponse) -> None:
    """Close the connection of a response abandoned mid-body (never reuse it)."""
    pool, sock = response._pool, response._sock
    response._sock = response._pool = None
    if pool is not None and sock is not None:
        pool.release_socket(sock)


def finish(response: HTTPSocketPoolResponse) -> None:
    """Return a fully read response's connection to the pool."""
    if response.message_complete:
        response.release()
    else:
        discard(response)
