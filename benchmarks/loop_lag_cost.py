"""What the loop-lag monitor costs a load-generator process (a script, not a test).

The monitor (``loadtests.recording.monitors.LoopLagMonitor``) wakes 50 times a second. This
measures the CPU time of a gevent process over a window with and without it, in two
states: *idle* (nothing else to do: every wake-up costs a poll of the loop, the worst case)
and *busy* (greenlets ping-ponging over socket pairs, as requests keep a load generator's
loop turning). Rounds alternate the order; the figure is the median extra CPU per second
of wall time (% of one core) and per wake-up. Beside it, what the kernel alone charges a
process for a wake-up (a blocking sleep of the monitor's interval, again and again, no
event loop): the part of the monitor's cost no code of ours can remove (on a VM it is
much of it).

    .venv/bin/python -m benchmarks.loop_lag_cost [--seconds 3] [--rounds 3]
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402  (after the patch, as in a Locust process)
import socket  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402

from loadtests.recording.monitors import LoopLagMonitor  # noqa: E402


def ping_pong(stop: list[bool]) -> None:
    """Bounce a byte over a socket pair until told to stop (a request's I/O, cheaply)."""
    a, b = socket.socketpair()
    while not stop:
        a.sendall(b"x")
        b.recv(1)
        b.sendall(b"y")
        a.recv(1)
        gevent.sleep(0.001)
    a.close()
    b.close()


def window(seconds: float, *, busy: bool, monitor: bool) -> tuple[float, int]:
    """CPU seconds used over ``seconds`` of wall time, and the monitor's wake-ups."""
    stop: list[bool] = []
    workers = [gevent.spawn(ping_pong, stop) for _ in range(8)] if busy else []
    lag = LoopLagMonitor()
    if monitor:
        lag.start()
    cpu0 = time.process_time()
    gevent.sleep(seconds)
    cpu = time.process_time() - cpu0
    stop.append(True)
    gevent.joinall(workers)
    summary: dict[str, Any] = lag.stop(50.0) if monitor else {"samples": 0}
    return cpu, int(summary["samples"])


def bare_wake_us(seconds: float) -> float:
    """CPU time per wake-up of a blocking sleep of the monitor's interval (no gevent)."""
    sleep = monkey.get_original("time", "sleep")
    interval = LoopLagMonitor()._interval_s
    wakes = max(1, round(seconds / interval))
    cpu0 = time.process_time()
    for _ in range(wakes):
        sleep(interval)
    return (time.process_time() - cpu0) / wakes * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loop_lag_cost")
    parser.add_argument("--seconds", type=float, default=3.0, help="wall time of a window")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"python -m benchmarks.loop_lag_cost --seconds {args.seconds:g} --rounds {args.rounds}")
    idle_wake = float("nan")
    print(f"{'state':<6}{'round':>6}{'without %':>12}{'with %':>10}{'extra %':>10}{'us/wake':>10}")
    for busy in (False, True):
        extra: list[float] = []
        per_wake: list[float] = []
        for r in range(args.rounds):
            order = (False, True) if r % 2 == 0 else (True, False)
            got = {m: window(args.seconds, busy=busy, monitor=m) for m in order}
            (without, _), (with_, wakes) = got[False], got[True]
            extra.append((with_ - without) / args.seconds * 100.0)
            per_wake.append((with_ - without) / max(1, wakes) * 1e6)
            print(
                f"{'busy' if busy else 'idle':<6}{r + 1:>6}{without / args.seconds * 100:>12.2f}"
                f"{with_ / args.seconds * 100:>10.2f}{extra[-1]:>10.2f}{per_wake[-1]:>10.1f}"
            )
        print(
            f"{'busy' if busy else 'idle'}: median extra {statistics.median(extra):.2f}% of "
            f"one core, {statistics.median(per_wake):.1f} us a wake-up"
        )
        if not busy:
            idle_wake = statistics.median(per_wake)
    bare = statistics.median(bare_wake_us(args.seconds) for _ in range(args.rounds))
    print(
        f"bare: a blocking sleep's wake-up {bare:.1f} us; the idle monitor's wake-up "
        f"{idle_wake / bare:.2f}x that"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
