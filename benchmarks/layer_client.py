"""The gevent clients of ``benchmarks.floor_layers``: the floor's closed loop of streamed
chat completions, one greenlet a connection, each adding one layer of slabench's client.

- ``gevent``: the floor's bytes on a gevent socket, read in the greenlet (gevent's own
  ``recv``: a switch into the greenlet and out again a read), a timestamp per read;
- ``watcher``: the same bytes read in the event loop's callback for the socket (as
  slabench's ``LoopReads`` does), a timestamp per read, the greenlet woken at the end;
- ``http``: slabench's transport and stream reader (``Transport.send``'s lean request path
  and head read, ``loadtests.client.stream_reads``), the body's reads dropped unparsed;
- ``parse``: ``loadtests.client.measure.execute`` (SSE events, each chunk's JSON, the
  record built), the record dropped;
- ``monitors``: ``parse`` with the generator's monitors running (``recording.monitors``:
  the loop-lag timer, the CPU samplers), as a Locust process of slabench has them;
- ``record``: ``monitors`` with every record kept as slabench keeps it: in a
  ``RequestRecorder`` (parts in a temporary directory, flushed every 5 s) and in the live
  view's ``LiveState``. What ``slabench`` adds beyond it is Locust (its users' task loop,
  its request event and stats) and the run's glue (``RunState``, the scraper, the live
  view's looks). These layers poll the network at once; ``slabench`` polls at most once per
``--poll-interval-ms`` (2 ms by default: ``benchmarks.poll_interval`` measures that alone).

Writes ``[[sent, done], ...]`` as JSON to ``--out`` after ``--seconds``.

    .venv/bin/python -m benchmarks.layer_client --layer http --url URL --streams 32 --out F
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import gevent
import gevent.socket
from gevent._waiter import Waiter

from benchmarks.floor_client import DONE, LAST_CHUNK, request_bytes
from loadtests.client.clock import now
from loadtests.client.measure import Timeouts, execute
from loadtests.client.protocols import PreparedRequest
from loadtests.client.stream_reads import stream_reads
from loadtests.client.transport import IdleWatch, Target, Transport, finish
from loadtests.live.state import LiveState
from loadtests.recording.monitors import GeneratorMonitor
from loadtests.recording.recorder import RequestRecorder
from sla.files.run import RequestRecord

LAYERS = ("gevent", "watcher", "http", "parse", "monitors", "record")


def run(layer: str, url: str, streams: int, seconds: float, tokens: int) -> list[list[float]]:
    split = urlsplit(url)
    host, port = split.hostname or "127.0.0.1", split.port or 80
    raw = request_bytes(host, port, tokens)
    body = raw.split(b"\r\n\r\n", 1)[1]
    records: list[list[float]] = []
    deadline = now() + seconds

    def raw_stream() -> None:
        sock = gevent.socket.create_connection((host, port))
        while now() < deadline:
            sent, buf, at = now(), b"", 0.0
            sock.sendall(raw)
            while not (buf.endswith(LAST_CHUNK) and DONE in buf):
                buf += sock.recv(65536)
                at = now()
            records.append([sent, at])
        sock.close()

    def watcher_stream() -> None:
        sock = gevent.socket.create_connection((host, port))
        raw_sock, watcher = sock._sock, sock._read_event
        waiter = Waiter()
        buf, at = b"", 0.0

        def readable() -> None:  # in the loop
            nonlocal buf, at
            try:
                data = raw_sock.recv(65536)
            except BlockingIOError:
                return
            at = now()
            buf += data
            if buf.endswith(LAST_CHUNK) and DONE in buf:
                watcher.stop()
                waiter.switch(None)

        while now() < deadline:
            sent, buf = now(), b""
            sock.sendall(raw)
            watcher.start(readable)
            waiter.get()
            records.append([sent, at])
        sock.close()

    def http_stream(parse: bool, keep: Callable[[RequestRecord], None] | None = None) -> None:
        transport = Transport(
            Target.parse(url),
            concurrency=1,
            connect_timeout_s=10.0,
            network_timeout_s=60.0,
            headers={"Content-Type": "application/json"},
        )
        req = PreparedRequest("chat", "POST", "/v1/chat/completions", body, "openai_sse")
        timeouts = Timeouts(30.0, 600.0)
        n = 0
        while now() < deadline:
            sent, at = now(), 0.0
            if parse:
                rec = execute(
                    transport, req, request_id=str(n), worker="w", timeouts=timeouts,
                    on_record=keep or (lambda r: None),
                )  # fmt: skip
                at = rec.done_at
            else:
                response = transport.send("POST", "/v1/chat/completions", body)
                watch = IdleWatch(timeouts.idle_s, started_at=now())
                reads = stream_reads(response, watch, hold=lambda _: True, limit=16)
                try:
                    while reads.complete_at is None:
                        reads.wait()
                        reads.data.clear()
                        reads.times.clear()
                        reads.eager = False
                finally:
                    watch.close()
                    reads.close()
                at = reads.complete_at
                finish(response)
            records.append([sent, at])
            n += 1
        transport.close()

    work: dict[str, Callable[[], None]] = {
        "gevent": raw_stream,
        "watcher": watcher_stream,
        "http": lambda: http_stream(False),
        "parse": lambda: http_stream(True),
        "monitors": lambda: http_stream(True),
        "record": lambda: http_stream(True, keep),
    }
    monitor = GeneratorMonitor() if layer in ("monitors", "record") else None
    with tempfile.TemporaryDirectory(prefix="layer-") as tmp:
        recorder = RequestRecorder(Path(tmp))
        live = LiveState(measured_from=now())

        def keep(rec: RequestRecord) -> None:
            live.add_record(rec)
            recorder.add(rec)

        def flush_every(interval_s: float) -> None:
            while True:
                gevent.sleep(interval_s)
                recorder.flush()

        if monitor is not None:
            monitor.start()
        flusher = gevent.spawn(flush_every, 5.0) if layer == "record" else None
        gevent.joinall([gevent.spawn(work[layer]) for _ in range(streams)], raise_error=True)
        if flusher is not None:
            flusher.kill()
        if monitor is not None:
            monitor.stop(50.0)
    return records


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--layer", choices=LAYERS, required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--streams", type=int, default=32)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--tokens", type=int, default=16)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    records = run(args.layer, args.url, args.streams, args.seconds, args.tokens)
    with open(args.out, "w") as f:
        json.dump(records, f)


if __name__ == "__main__":
    main()
