"""10x the reference server's capacity for 60 s, open loop (a script, not a test).

The server gets a known capacity with ``--fault-capacity-rps C`` (a FIFO single-server
queue with a 1/C s service time before each request's real work) and a short
``--request-timeout`` (default 2 s), which bounds that queue: a request whose wait would
exceed it is refused at once with 429 and ``Retry-After``. This script then sends KServe
V2 requests (one 16-feature row, JSON) at ``--load`` x C requests/s on a fixed schedule,
whatever the answers (open loop), for ``--duration`` seconds, and then probes once every
0.1 s until a request is answered 200 within ``--recovered-ms``.

    .venv/bin/python -m benchmarks.overload [--capacity-rps 20] [--load 10] [--duration 60]

Prints: requests sent, the share refused with 429/503 and the share of those that carried
``Retry-After``, the answered-200 rate (vs C), p50/p99/max latency of the admitted requests
(from their scheduled send time, so free of coordinated omission), the server's peak RSS,
the number of 5xx (target 0) and of client-side errors, and the seconds from the end of the
load until the server answered a probe promptly again. Exit code 0 when there was no 5xx
and no request was refused without ``Retry-After``, 1 otherwise, 2 when the server did not
start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass

import aiohttp
import numpy as np
import psutil

from benchmarks._harness import TINY_EMBED, TINY_LM, print_header, start_server

FEATURES = 16
TINY_MLP = ("--mlp-hidden", "64", "--mlp-layers", "2", "--mlp-in-features", str(FEATURES))
INFER = "/v2/models/slabench-mlp/infer"
BODY = json.dumps(
    {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, FEATURES],
                 "data": [0.5] * FEATURES}]}
).encode()  # fmt: skip
HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int  # 0: no HTTP answer (connection error)
    latency_s: float  # from the scheduled send time
    retry_after: bool


async def _one(session: aiohttp.ClientSession, url: str, scheduled: float) -> Outcome:
    try:
        async with session.post(url + INFER, data=BODY, headers=HEADERS) as resp:
            await resp.read()
            return Outcome(resp.status, time.monotonic() - scheduled, "Retry-After" in resp.headers)
    except (aiohttp.ClientError, TimeoutError):
        return Outcome(0, time.monotonic() - scheduled, False)


async def _rss_peak(pid: int, stop: asyncio.Event) -> int:
    proc, peak = psutil.Process(pid), 0
    while not stop.is_set():
        peak = max(peak, proc.memory_info().rss)
        await asyncio.sleep(0.1)
    return max(peak, proc.memory_info().rss)


async def _recovery_s(session: aiohttp.ClientSession, url: str, prompt_s: float) -> float:
    """Seconds until a probe is answered 200 within ``prompt_s`` (probes every 0.1 s)."""
    started = time.monotonic()
    while time.monotonic() - started < 120:
        sent = time.monotonic()
        outcome = await _one(session, url, sent)
        if outcome.status == 200 and outcome.latency_s <= prompt_s:
            return time.monotonic() - started
        await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - sent)))
    return float("inf")


@dataclass(frozen=True, slots=True)
class Result:
    outcomes: list[Outcome]
    late: int  # sends more than 50 ms behind their schedule
    send_s: float
    drain_s: float  # from the last send to the last answer
    recovery_s: float
    rss: int  # the server's peak, bytes


async def run(url: str, pid: int, rate: float, duration_s: float, prompt_s: float) -> Result:
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        stop = asyncio.Event()
        rss = asyncio.create_task(_rss_peak(pid, stop))
        tasks: list[asyncio.Task[Outcome]] = []
        start = time.monotonic()
        late = 0
        for i in range(int(rate * duration_s)):
            scheduled = start + i / rate
            delay = scheduled - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.05:
                late += 1
            tasks.append(asyncio.create_task(_one(session, url, scheduled)))
        sending_ended = time.monotonic()
        outcomes = await asyncio.gather(*tasks)
        load_ended = time.monotonic()
        recovery_s = await _recovery_s(session, url, prompt_s)
        stop.set()
        peak = await rss
    return Result(
        list(outcomes), late, sending_ended - start, load_ended - sending_ended, recovery_s, peak
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--capacity-rps", type=float, default=20.0, help="--fault-capacity-rps C")
    p.add_argument("--load", type=float, default=10.0, help="offered load, x the capacity")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of overload")
    p.add_argument(
        "--request-timeout", type=float, default=2.0, help="the server's --request-timeout"
    )
    p.add_argument("--recovered-ms", type=float, default=500.0, help="a prompt probe answer, ms")
    a = p.parse_args()
    args = [*TINY_LM, *TINY_EMBED, *TINY_MLP, "--torch-threads", "1",
            "--fault-capacity-rps", f"{a.capacity_rps:g}",
            "--request-timeout", f"{a.request_timeout:g}"]  # fmt: skip
    rate = a.capacity_rps * a.load
    print_header(
        "overload", "benchmarks.overload", {"overloaded": args},
        [f"offered {rate:g} requests/s = {a.load:g} x {a.capacity_rps:g} "
         f"for {a.duration:g} s, open loop"],
    )  # fmt: skip
    server = start_server(args)
    if server is None:
        return 2
    try:
        r = asyncio.run(run(server.url, server.pid, rate, a.duration, a.recovered_ms / 1000))
    finally:
        server.stop()
    outcomes = r.outcomes
    statuses = Counter(o.status for o in outcomes)
    refused = [o for o in outcomes if o.status in (429, 503)]
    admitted = np.array([o.latency_s for o in outcomes if o.status == 200]) * 1000
    five = sum(n for s, n in statuses.items() if s >= 500 and s != 503)
    bare = sum(1 for o in refused if not o.retry_after)
    sent = len(outcomes)
    send_s = r.send_s
    print(f"sent: {sent} in {send_s:.1f}s ({sent / send_s:.1f}/s; {r.late} sent >50 ms late)")
    print("statuses: " + ", ".join(f"{k or 'no answer'} {v}" for k, v in sorted(statuses.items())))
    print(f"refused with 429/503: {len(refused) / sent:.1%} ({len(refused)}), "
          f"with Retry-After: {len(refused) - bare}/{len(refused)}")  # fmt: skip
    print(
        f"admitted (200): {len(admitted)}, {len(admitted) / send_s:.1f}/s "
        f"vs capacity {a.capacity_rps:g}/s"
    )
    if len(admitted):
        p50, p99 = np.percentile(admitted, [50, 99])
        print(f"admitted latency ms: p50 {p50:.0f}, p99 {p99:.0f}, max {admitted.max():.0f}")
    print(f"server peak RSS: {r.rss / 2**20:.0f} MiB")
    print(f"5xx other than 503: {five} (target 0); client-side errors: {statuses.get(0, 0)}")
    print(f"answers still arriving after the last send: {r.drain_s:.1f}s; "
          f"recovered (a probe answered 200 within {a.recovered_ms:g} ms) {r.recovery_s:.1f}s "
          "after the last answer")  # fmt: skip
    return 0 if five == 0 and bare == 0 and statuses.get(0, 0) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
