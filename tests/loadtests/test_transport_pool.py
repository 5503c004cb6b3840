"""slabench's transport reuses keep-alive connections without a trip through the event
loop: the check that a pooled connection is still open does not yield (geventhttpclient's
used gevent's select, which yields even with a timeout of 0: every request waited there
for the other greenlets' turns after its ``sent_at`` was taken). Real sockets, a real
gevent WSGI server on a free loopback port."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import gevent
import gevent.socket
import pytest
from gevent.pywsgi import WSGIServer

from loadtests.client.transport import Target, Transport


@pytest.fixture
def transport() -> Iterator[Transport]:
    def app(environ: dict[str, object], start_response: object) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])  # type: ignore[operator]
        return [b"ok"]

    server = WSGIServer(("127.0.0.1", 0), app, log=None)
    server.start()
    t = Transport(
        Target.parse(f"http://127.0.0.1:{server.server_port}"),
        concurrency=1,
        connect_timeout_s=10.0,
        network_timeout_s=10.0,
        headers={},
    )
    yield t
    t.close()
    server.stop()


# Under Locust the process is monkey-patched: geventhttpclient's ``select.select`` is then
# gevent's. So this runs in a subprocess that patches as Locust does.
REUSE = """
from gevent import monkey
monkey.patch_all()
import json, gevent
from gevent.pywsgi import WSGIServer
from loadtests.client.transport import Target, Transport, finish

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]

server = WSGIServer(("127.0.0.1", 0), app, log=None)
server.start()
transport = Transport(Target.parse(f"http://127.0.0.1:{server.server_port}"), concurrency=1,
                      connect_timeout_s=10.0, network_timeout_s=10.0, headers={})
response = transport.send("GET", "/", None)
assert response.read() == b"ok"
finish(response)  # the connection goes back to the pool, open
turns = []

def in_flight():
    while True:
        turns.append(1)
        gevent.sleep(0)

other = gevent.spawn(in_flight)
gevent.sleep(0)  # it has run once and waits for its next turn
before = len(turns)
pool = transport._client._connection_pool
sock = pool.get_socket()  # checked and reused
during = len(turns) - before
pool.return_socket(sock)
other.kill()
response = transport.send("GET", "/", None)  # and it still serves
print(json.dumps({"turns_during_check": during, "answer": response.read().decode()}))
"""


def test_taking_a_pooled_connection_lets_no_other_greenlet_run() -> None:
    done = subprocess.run(
        [sys.executable, "-c", REUSE], capture_output=True, text=True, timeout=120
    )  # waits for the two requests of the script (a second each at most, unless very busy)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.splitlines()[-1])
    assert out == {"turns_during_check": 0, "answer": "ok"}


def test_a_closed_or_dirty_idle_connection_is_not_reused(transport: Transport) -> None:
    alive = transport._client._connection_pool._is_socket_alive
    ours, theirs = gevent.socket.socketpair()
    assert alive(ours)
    theirs.sendall(b"x")  # bytes nobody asked for: not a clean idle connection
    assert not alive(ours)
    ours.recv(1)
    theirs.close()  # the server closed it: readable, at EOF
    assert not alive(ours)
    ours.close()
    assert not alive(ours) and not alive(None)
