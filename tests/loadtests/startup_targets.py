"""Two tiny targets on 127.0.0.1 for the tests of a locust's start-up (no Locust here):

- ``SlowModels``: answers ``GET /v1/models`` after ``delay_s`` (the calibration's and the
  connection warm-up's path) and chat completions at once, non-streamed (``--no-stream``);
  it keeps the time and path of every request it got (``seen``);
- ``BlackHole``: accepts every connection and never reads or answers.

    with SlowModels(delay_s=0.3) as server:
        run_locust("chat", "--host", server.url, "--model", MODEL, "--no-stream", ...)
        server.count("GET", "/v1/models")
"""

from __future__ import annotations

import socket
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any

from tests.loadtests.small_target import JsonHandler

MODEL = "slow-model"


class _Handler(JsonHandler):
    server: _SlowServer

    def do_GET(self) -> None:
        self.server.note("GET", self.path)
        if self.path != "/v1/models":
            self._answer(404, {"error": "not found"})
            return
        time.sleep(self.server.delay_s)
        self._answer(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.note("POST", self.path)
        self.answer_chat()


class _SlowServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 drops connects beyond it (the calibration's 10)

    def __init__(self, delay_s: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.delay_s = delay_s
        self.seen: list[tuple[float, str, str]] = []  # (time.time(), method, path)
        self._lock = threading.Lock()

    def note(self, method: str, path: str) -> None:
        with self._lock:
            self.seen.append((time.time(), method, path))

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that left before its answer (a cut calibration, the end of a run)


class SlowModels:
    """A target whose ``GET /v1/models`` takes ``delay_s``; chat answers are immediate."""

    def __init__(self, delay_s: float) -> None:
        self._server = _SlowServer(delay_s)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def seen(self, method: str, path: str) -> list[float]:
        """When each ``method`` request for ``path`` arrived (epoch seconds)."""
        with self._server._lock:
            return [t for t, m, p in self._server.seen if (m, p) == (method, path)]

    def count(self, method: str, path: str) -> int:
        return len(self.seen(method, path))

    def __enter__(self) -> SlowModels:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class BlackHole:
    """Accepts connections (and holds them) but never reads a byte or answers."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def accepted(self) -> int:
        return len(self._held)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._held.append(conn)

    def __enter__(self) -> BlackHole:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()
        for conn in self._held:
            conn.close()
