"""slabench's lean request path (``Transport.send``) against raw sockets that answer as
real servers do and as broken ones do: the bytes on the wire, interim answers, a stale
keep-alive connection, an answer sent before the server broke the connection, silence,
bytes that are no HTTP. Each case is geventhttpclient's own behaviour, kept.

The cases run in one subprocess patched as Locust patches (the lean path reads the
answer's head in the event loop's callback for the socket), each against its own server
on a free loopback port; the fixture hands each test its case's outcome."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

CASES = r"""
from gevent import monkey
monkey.patch_all()
import json, socket, time
import gevent
from gevent.server import StreamServer
from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError
from geventhttpclient import HTTPClient
from loadtests.client.transport import Target, Transport, finish

full_path = []  # geventhttpclient's own request(): only where the lean path cannot go
request = HTTPClient.request
def counted(self, *args, **kwargs):
    full_path.append(args[0])
    return request(self, *args, **kwargs)
HTTPClient.request = counted

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"

def read_request(sock, buf=b""):
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            return None, b""
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        rest += sock.recv(65536)
    return head + b"\r\n\r\n" + rest[:length], rest[length:]

def serve(handler):
    server = StreamServer(("127.0.0.1", 0), handler)
    server.start()
    return server

def transport(server, timeout_s=10.0, headers=None):
    return Transport(Target.parse(f"http://127.0.0.1:{server.server_port}/api"), concurrency=1,
                     connect_timeout_s=10.0, network_timeout_s=timeout_s,
                     headers=headers if headers is not None else {"X-Key": "k"})

def outcome(t, method, path, body):
    try:
        response = t.send(method, path, body)
    except BaseException as exc:
        return {"raised": type(exc).__name__, "message": str(exc)}
    body = response.read()
    finish(response)
    return {"status": response.status_code, "body": body.decode()}

results = {}

# The bytes on the wire, and the connection kept for the next request.
seen, peers = [], []
def echo(sock, address):
    buf = b""
    while True:
        request, buf = read_request(sock, buf)
        if request is None:
            return
        seen.append(request.decode("latin-1"))
        peers.append(address[1])
        sock.sendall(OK)
server = serve(echo)
t = transport(server)
results["wire"] = {
    "answers": [outcome(t, "POST", "/v1/x", b'{"a": 1}'), outcome(t, "POST", "/v1/x", b"{}"),
                outcome(t, "GET", "/v1/models", None), outcome(t, "POST", "/v1/x", None)],
    "requests": seen, "connections": len(set(peers)), "full_path": list(full_path),
}
# An Expect: 100-continue header takes geventhttpclient's request(), which waits for the 100.
def continues(sock, address):
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    while not buf.endswith(b"{}"):
        buf += sock.recv(65536)
    sock.sendall(OK)
results["expect"] = outcome(transport(serve(continues), headers={"Expect": "100-continue"}),
                            "POST", "/v1/x", b"{}")
results["expect"]["full_path"] = list(full_path)

# Interim 1xx answers are read past.
def interim(sock, address):
    read_request(sock)
    sock.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
    gevent.sleep(0.05)
    sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n" + OK)
server = serve(interim)
results["interim"] = outcome(transport(server), "POST", "/v1/x", b"{}")

# A keep-alive connection the server drops without answering the next request: an
# idempotent request is sent again on a new connection, a POST is not.
requests_by_connection = []
def one_answer_a_connection(sock, address):
    count = [0]
    requests_by_connection.append(count)
    buf = b""
    while True:
        request, buf = read_request(sock, buf)
        if request is None:
            return
        count[0] += 1
        if count[0] > 1:
            return  # closes without an answer
        sock.sendall(OK)
server = serve(one_answer_a_connection)
for method in ("GET", "POST"):
    t = transport(server)
    first = outcome(t, method, "/v1/x", b"{}" if method == "POST" else None)
    again = outcome(t, method, "/v1/x", b"{}" if method == "POST" else None)
    results["stale_" + method] = {"first": first, "again": again}
results["stale_connections"] = [c[0] for c in requests_by_connection]

# An answer sent before the server stopped reading a big body and closed.
def early_413(sock, address):
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    sock.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n"
                 b"Connection: close\r\n\r\ntoo long")
    sock.shutdown(socket.SHUT_WR)
    gevent.sleep(0.3)  # unread bytes make the close a reset
    sock.close()
server = serve(early_413)
results["early_answer"] = outcome(transport(server), "POST", "/v1/x", b"x" * 32_000_000)

# Silence after the request: the network timeout.
def silent(sock, address):
    read_request(sock)
    gevent.sleep(5)
server = serve(silent)
started = time.monotonic()
results["silent"] = outcome(transport(server, timeout_s=0.3), "POST", "/v1/x", b"{}")
results["silent"]["waited_s"] = time.monotonic() - started

# Bytes that are no HTTP; a connection closed mid-head; closed before any byte.
def garbage(sock, address):
    read_request(sock)
    sock.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
def mid_head(sock, address):
    read_request(sock)
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Ty")
def at_once(sock, address):
    read_request(sock)
for name, handler in (("garbage", garbage), ("mid_head", mid_head), ("closed", at_once)):
    results[name] = outcome(transport(serve(handler)), "POST", "/v1/x", b"{}")

# A request cancelled while it waits for the head: the connection is dropped, not reused.
def slow(sock, address):
    buf = b""
    while True:
        request, buf = read_request(sock, buf)
        if request is None:
            return
        gevent.sleep(0.5)
        sock.sendall(OK)
server = serve(slow)
t = transport(server)
waiting = gevent.spawn(t.send, "POST", "/v1/x", b"{}")
gevent.sleep(0.1)
waiting.kill()
pool = t._client._connection_pool
results["cancelled"] = {"pooled": pool._socket_queue.qsize(), "next": outcome(t, "GET", "/", None)}

print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", CASES], capture_output=True, text=True, timeout=120
    )  # the cases take ~2 s; 120 s for a busy machine
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_the_request_bytes_carry_the_prefix_headers_and_a_length_per_body(
    results: dict[str, Any],
) -> None:
    wire = results["wire"]
    assert [a["status"] for a in wire["answers"]] == [200, 200, 200, 200]
    post, post2, get, empty = wire["requests"]
    head, body = post.split("\r\n\r\n")
    lines = head.split("\r\n")
    assert lines[0] == "POST /api/v1/x HTTP/1.1"
    names = [line.split(":")[0].lower() for line in lines[1:]]
    assert sorted(names) == sorted({*names}), names  # each header once
    assert "X-Key: k" in lines and any(line.startswith("Host: 127.0.0.1:") for line in lines)
    assert "Content-Length: 8" in lines and body == '{"a": 1}'
    assert "Content-Length: 2" in post2.split("\r\n") and post2.endswith("\r\n\r\n{}")
    assert get.startswith("GET /api/v1/models HTTP/1.1\r\n") and get.endswith("\r\n\r\n")
    assert "content-length" not in get.lower()  # a GET without a body says nothing
    assert "Content-Length: 0" in empty.split("\r\n")  # a POST without one says 0
    assert wire["connections"] == 1  # kept alive throughout
    assert wire["full_path"] == []  # all four on the lean path


def test_an_expect_header_takes_geventhttpclients_own_request(results: dict[str, Any]) -> None:
    assert results["expect"] == {"status": 200, "body": "ok", "full_path": ["POST"]}


def test_interim_answers_are_read_past(results: dict[str, Any]) -> None:
    assert results["interim"] == {"status": 200, "body": "ok"}


def test_a_stale_keep_alive_connection_is_retried_only_for_an_idempotent_request(
    results: dict[str, Any],
) -> None:
    ok = {"status": 200, "body": "ok"}
    assert results["stale_GET"] == {"first": ok, "again": ok}
    post = results["stale_POST"]
    assert post["first"] == ok
    assert post["again"]["raised"] == "HTTPConnectionClosed"
    # GET: answered, then dropped and sent again on a new connection; POST: the same, once.
    assert results["stale_connections"] == [2, 1, 2]


def test_an_answer_sent_before_the_server_broke_the_send_is_read(
    results: dict[str, Any],
) -> None:
    assert results["early_answer"] == {"status": 413, "body": "too long"}


def test_silence_before_the_head_is_the_network_timeout(results: dict[str, Any]) -> None:
    silent = results["silent"]
    assert silent["raised"] == "TimeoutError", silent
    assert 0.3 <= silent["waited_s"] < 4.0  # the timeout, not the server's 5 s


def test_broken_heads_raise_geventhttpclients_errors(results: dict[str, Any]) -> None:
    assert results["garbage"]["raised"] == "HTTPParseError"
    assert results["mid_head"]["raised"] == "HTTPParseError"  # the parser's "Invalid EOF"
    assert results["closed"]["raised"] == "HTTPConnectionClosed"


def test_a_request_cancelled_while_waiting_drops_its_connection(
    results: dict[str, Any],
) -> None:
    assert results["cancelled"] == {"pooled": 0, "next": {"status": 200, "body": "ok"}}
