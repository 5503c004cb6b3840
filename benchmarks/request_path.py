"""The lean request path against geventhttpclient's own ``HTTPClient.request``, alternating
in one process (a script, not a test).

``Transport.send`` builds a request's head once per method and path, writes a plain TCP
socket without gevent's wrappers and reads the answer's head in the event loop's callback
(``loadtests.client.transport``); with ``--full`` it hands each request to
geventhttpclient's ``HTTPClient.request`` as before. Both carry the same closed-loop load
of streamed 16-token chat completions (``--streams`` greenlets, each one connection, each
request through ``loadtests.client.measure.execute``, the record dropped) against
``benchmarks/scripted_server.py``, in one client process: the path switches every
``--segment-s`` seconds, and each segment's CPU (``time.process_time``) and completed
requests are counted from ``--settle-s`` after its switch (longer than a request: every
request counted was sent on the segment's path) to its end. Alternating in one process
keeps this VM's drift (±10% between runs) out of the difference, which separate runs
(``benchmarks.floor_layers``) cannot resolve. Printed: the median CPU per request of
each path over the segments, and the lean path's ratio.

The client runs on CPU 0, the server on CPU 1.

    .venv/bin/python -m benchmarks.request_path [--streams 32] [--segments 20]
        [--segment-s 2] [--settle-s 0.5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from benchmarks.floor import TOKENS
from benchmarks.scripted_runs import ScriptedServer

CLIENT = r"""
import sys, time, json
from gevent import monkey
monkey.patch_all()
import gevent
from urllib.parse import urlsplit
from benchmarks.floor_client import request_bytes
from loadtests.client.clock import now
from loadtests.client.measure import Timeouts, execute
from loadtests.client.protocols import PreparedRequest
from loadtests.client.transport import Target, Transport

url, streams, segments, segment_s, settle_s, tokens = sys.argv[1:7]
streams, segments, tokens = int(streams), int(segments), int(tokens)
segment_s, settle_s = float(segment_s), float(settle_s)
split = urlsplit(url)
body = request_bytes(split.hostname, split.port, tokens).split(b"\r\n\r\n", 1)[1]
req = PreparedRequest("chat", "POST", "/v1/chat/completions", body, "openai_sse")
timeouts = Timeouts(30.0, 600.0)
transports, done = [], []
lean = [True]

def user(i):
    t = Transport(Target.parse(url), concurrency=1, connect_timeout_s=10.0,
                  network_timeout_s=60.0, headers={"Content-Type": "application/json"})
    transports.append(t)
    n = 0
    while True:
        t._lean = lean[0]
        rec = execute(t, req, request_id=str(n), worker="w", timeouts=timeouts,
                      on_record=lambda r: None)
        if rec.error is None:
            done.append(rec.done_at)
        n += 1

users = [gevent.spawn(user, i) for i in range(streams)]
gevent.sleep(2.0)  # connections open, the loop steady
out = []
for s in range(segments):
    lean[0] = s % 2 == 0
    gevent.sleep(settle_s)
    c0, t0, n0 = time.process_time(), now(), len(done)
    gevent.sleep(segment_s - settle_s)
    c1, t1 = time.process_time(), now()
    n = sum(1 for d in done[n0:] if t0 <= d <= t1)
    out.append(["lean" if lean[0] else "full", (c1 - c0) / max(n, 1) * 1e6, n])
for u in users:
    u.kill()
print(json.dumps(out))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--streams", type=int, default=32)
    p.add_argument("--segments", type=int, default=20, help="both paths together, even")
    p.add_argument("--segment-s", type=float, default=2.0)
    p.add_argument("--settle-s", type=float, default=0.5)
    args = p.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs 2 CPUs: the client on one, the server on the other")
    flags = ("--ttft-ms", "50", "--itl-ms", "10", "--tokens", str(TOKENS))
    with ScriptedServer(*flags) as server:
        os.sched_setaffinity(server.pid, {1})
        cmd = [
            *(sys.executable, "-c", CLIENT, server.url, str(args.streams)),
            *(str(args.segments), str(args.segment_s), str(args.settle_s), str(TOKENS)),
        ]
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        os.sched_setaffinity(proc.pid, {0})
        out, _ = proc.communicate(timeout=args.segments * args.segment_s + 120)
        if proc.returncode != 0:
            raise SystemExit(f"client exited {proc.returncode}")
    segments = json.loads(out)
    per = {path: [cpu for p_, cpu, _ in segments if p_ == path] for path in ("lean", "full")}
    counts = {path: sum(n for p_, _, n in segments if p_ == path) for path in per}
    print(
        f"{args.streams} streams, {args.segments} segments of {args.segment_s:g} s "
        f"({time.monotonic() - started:.0f} s), CPU per request, us"
    )
    for path, values in per.items():
        q = statistics.quantiles(values, n=4)
        print(
            f"  {path:<5} median {statistics.median(values):7.0f}  quartiles {q[0]:.0f}"
            f"-{q[2]:.0f}  over {counts[path]} requests"
        )
    pairs = [
        lean - full
        for (_, lean, _), (_, full, _) in zip(segments[0::2], segments[1::2], strict=False)
    ]
    ratio = statistics.median(per["lean"]) / statistics.median(per["full"])
    print(
        f"  lean - full, segment pairs: median {statistics.median(pairs):+.0f} us; "
        f"lean / full {ratio:.2f}"
    )


if __name__ == "__main__":
    main()
