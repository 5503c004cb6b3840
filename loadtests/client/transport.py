"""HTTP transport on geventhttpclient, the client under Locust's ``FastHttpUser``.

We drive geventhttpclient's connection pool and response parser directly instead of going
through ``FastHttpSession.request`` so that every timestamp is taken by us, at the right
moment: the send, each read of a streamed body, the end. Locust's own statistics are fed
afterwards from those timestamps.

A request is sent on a lean path (``Transport.send``): its head is built and checked by
geventhttpclient once per method and path and kept, each request only adds its
``Content-Length`` and body; a plain TCP socket is written without gevent's per-call
wrappers and the answer's head is read in the event loop's callback for the socket (as
``loadtests.client.stream_reads`` reads bodies), not by a greenlet that switches in and
out for each read. At 32 streams that is ~50 µs of the load generator's CPU less a
request (``benchmarks.request_path``). What geventhttpclient's own
``HTTPClient.request`` does besides, the lean path does the same way: a keep-alive
connection that closes before answering is retried for an idempotent method, an answer
sent before the server broke the connection mid-send is read. A proxy, or an
``Expect: 100-continue`` header, takes ``HTTPClient.request`` itself.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import gevent
import gevent.monkey
import gevent.socket
import gevent.ssl
from gevent._waiter import Waiter
from geventhttpclient import HTTPClient
from geventhttpclient.connectionpool import ConnectionPool
from geventhttpclient.response import (
    HTTPConnectionClosed,
    HTTPParseError,
    HTTPSocketPoolResponse,
)

from loadtests.client.clock import now
from loadtests.client.failures import ConnectTimeout, MalformedResponse
from loadtests.client.stamps import ANCILLARY, kernel_stamp, stamp_reads
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
        _stamp_new_connections(self._client)
        _check_idle_connections_without_yielding(self._client)
        self._network_timeout_s = network_timeout_s
        # The lean path, unless geventhttpclient must talk to a proxy or wait for a 100.
        self._lean = not self._client.use_proxy and not any(
            name.lower() == "expect" for name in headers
        )
        self._heads: dict[tuple[str, str], bytes] = {}

    def send(self, method: str, path: str, body: bytes | None) -> HTTPSocketPoolResponse:
        """Send a request; return its response once the answer's head has arrived (a final
        one: interim 1xx answers are read past). Raises ``OSError`` (the connection failed,
        ``TimeoutError`` for silence past the network timeout) or ``HTTPParseError``
        (``HTTPConnectionClosed``: closed before answering)."""
        if not self._lean:
            return self._client.request(
                method, self.target.prefix + path, body=body or b"", headers=self._headers
            )
        head = self._heads.get((method, path))
        if head is None:
            head = self._head(method, path)
        body = body or b""
        if body or method in _BODY_METHODS:
            data = b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body)
        else:
            data = head + b"\r\n"
        pool = self._client._connection_pool
        retries = pool.size + 1 if method in _IDEMPOTENT else 0
        while True:
            sock = pool.get_socket()
            sent_at = now()  # no answer's stamp before it
            try:
                _send_all(sock, data)
            except OSError as exc:
                if exc.errno not in (errno.ECONNRESET, errno.EPIPE):
                    pool.release_socket(sock)
                    raise
                # The server may have answered (a 413, a 401) before it broke the connection
                # mid-send: read that answer rather than hide it behind the send's error.
                try:
                    return self._answer(sock, pool, method, sent_at)
                except (OSError, HTTPParseError):
                    if retries <= 0:
                        raise
                    retries -= 1
                    continue
            try:
                return self._answer(sock, pool, method, sent_at)
            except HTTPConnectionClosed:  # closed before answering: a stale keep-alive
                if retries <= 0:
                    raise
                retries -= 1

    def _head(self, method: str, path: str) -> bytes:
        """The request's head up to its ``Content-Length``, built (and each header checked)
        by geventhttpclient, kept for the next request to the same method and path."""
        text = self._client._build_request(
            method.upper(), self.target.prefix + path, body=b"", headers=self._headers,
            chunked=False,
        )  # fmt: skip
        lines = [
            line
            for line in text.split("\r\n")
            if line and not line.lower().startswith("content-length:")
        ]
        head = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        if len(self._heads) >= _HEADS_KEPT:  # paths that vary request by request
            self._heads.clear()
        self._heads[method, path] = head
        return head

    def _answer(
        self, sock: gevent.socket.socket, pool: ConnectionPool, method: str, sent_at: float
    ) -> HTTPSocketPoolResponse:
        response = _Response(
            sock,
            pool,
            block_size=self._client.block_size,
            method=method.upper(),
            headers_type=self._client.headers_type,
        )
        raw = getattr(sock, "_sock", None)
        if type(sock) is gevent.socket.socket and raw is not None:
            _read_head_in_loop(response, sock, raw, self._network_timeout_s, sent_at)
        else:  # TLS: decrypted bytes can wait in the socket; read in the greenlet
            HTTPSocketPoolResponse._read_headers(response)
        return response

    def warm(self, path: str) -> None:
        """Open a connection before the timed window (its connect time is not measured)."""
        response = self.send("GET", path, None)
        response.read()
        response.release()

    def close(self) -> None:
        self._client.close()


_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))  # an empty body is "Content-Length: 0"
_IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"))  # RFC 9110 9.2.2
_HEADS_KEPT = 64


class _Response(HTTPSocketPoolResponse):
    """A pooled response whose head ``Transport._answer`` reads (geventhttpclient's reads
    it in its constructor). ``head_at``: on a plain TCP connection, the kernel's receive
    time of the read that completed the head (``loadtests.client.stamps``), which is also
    that of any body bytes that came with it; None where the head was read otherwise."""

    head_at: float | None = None

    def _read_headers(self, pre_buffered: bytes = b"") -> None:
        pass


def _send_all(sock: gevent.socket.socket, data: bytes) -> None:
    """``sock.sendall(data)``; on a plain TCP socket one ``send`` of the socket under
    gevent's, which takes a request whole unless the kernel's buffer is full (gevent's own
    ``sendall`` then sends the rest, waiting as it must)."""
    raw = getattr(sock, "_sock", None)
    if type(sock) is gevent.socket.socket and raw is not None:
        try:
            sent = raw.send(data)
        except BlockingIOError:
            sent = 0
        if sent == len(data):
            return
        data = data[sent:]
    sock.sendall(data)


def _read_head_in_loop(
    response: _Response,
    sock: gevent.socket.socket,
    raw: Any,
    timeout_s: float | None,
    sent_at: float,
) -> None:
    """Read the answer's head into ``response`` in the event loop's callback for the
    socket, waking the greenlet once (a final head, a failure, or ``timeout_s`` of
    silence: ``TimeoutError``, as the socket's own timeout would raise); each read is
    stamped with the kernel's receive time (none before ``sent_at``), the last one's kept
    as ``response.head_at``. The failures are geventhttpclient's own:
    ``HTTPConnectionClosed`` for a connection closed (or reset) before any byte,
    ``HTTPParseError`` for one closed mid-head or bytes that are no HTTP; the connection is
    then released."""
    watcher = sock._read_event
    waiter: Waiter[None] = Waiter()
    failure: list[BaseException] = []
    started = True  # no byte yet

    def readable() -> None:  # runs in the loop: it must not raise
        nonlocal started
        try:
            data, ancillary, _, _ = raw.recvmsg(response.block_size, ANCILLARY)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.ECONNRESET and started:
                failure.append(HTTPConnectionClosed("connection closed."))
            else:
                failure.append(exc)
            watcher.stop()
            waiter.switch(None)
            return
        try:
            response.feed(data)
        except HTTPParseError as exc:
            failure.append(exc)
        else:
            if not data:
                if started:
                    failure.append(HTTPConnectionClosed("connection closed."))
                elif response.headers_complete:
                    failure.append(HTTPParseError("connection closed after interim response"))
                else:
                    failure.append(HTTPParseError("connection closed before end of the headers"))
            elif not response.headers_complete or response.get_code() < 200:
                started = False
                return
            else:
                returned_at = now()
                response.head_at = returned_at
                if ancillary:
                    response.head_at = kernel_stamp(ancillary, returned_at, time.time(), sent_at)
        watcher.stop()
        waiter.switch(None)

    def silent() -> None:  # in the loop
        watcher.stop()
        waiter.throw(TimeoutError("timed out"))

    timer = None
    if timeout_s is not None:
        timer = gevent.get_hub().loop.timer(timeout_s)
        timer.start(silent)
    watcher.start(readable)
    try:
        waiter.get()
        if failure:
            raise failure[0]
        if response.message_complete:
            response.release()
    except BaseException:
        response.release()
        raise
    finally:
        watcher.stop()
        if timer is not None:
            timer.close()


def _stamp_new_connections(client: HTTPClient) -> None:
    """Ask the kernel to stamp every read of each new connection (``stamps.stamp_reads``),
    once, before its first request: the answer's head is read with its stamps."""
    pool = client._connection_pool
    connect = pool._connect_socket

    def connect_and_stamp(sock: Any, address: Any) -> Any:
        connected = connect(sock, address)
        raw = getattr(sock, "_sock", None)
        if raw is not None:
            stamp_reads(raw)
        return connected

    pool._connect_socket = connect_and_stamp  # type: ignore[method-assign]


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
