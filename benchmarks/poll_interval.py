"""What ``--poll-interval-ms`` saves: one slabench Locust process whose event loop's poll
interval switches between settings segment by segment (a script, not a test).

``--streams`` measured chat users (16-token streams, every request recorded, as
``benchmarks.floor`` runs slabench) against ``benchmarks/scripted_server.py``; the locustfile
``benchmarks/locustfiles/alternate_polls.py`` switches the interval every ``--segment-s``
through ``--polls`` and counts each segment's CPU and completed requests from
``--settle-s`` after its switch. Alternating in one process keeps this VM's drift (±10%
between runs) out of the comparison. Printed: each setting's median CPU per request over
its segments, and its ratio to the first setting's.

The client runs on CPU 0, the server on CPU 1.

    .venv/bin/python -m benchmarks.poll_interval [--streams 32] [--polls 0,1,2,5]
        [--segments 24] [--segment-s 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from benchmarks.floor import TOKENS
from benchmarks.locust_overhead import REPO
from benchmarks.scripted_runs import ScriptedServer

LOCUSTFILE = REPO / "benchmarks" / "locustfiles" / "alternate_polls.py"
START_S = 3.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--streams", type=int, default=32)
    p.add_argument("--polls", default="0,2", help="ms, comma-separated; the first is the base")
    p.add_argument("--segments", type=int, default=24)
    p.add_argument("--segment-s", type=float, default=2.0)
    p.add_argument("--settle-s", type=float, default=0.5)
    args = p.parse_args()
    polls = [float(v) for v in args.polls.split(",")]
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs 2 CPUs: the client on one, the server on the other")
    seconds = START_S + args.segments * args.segment_s + 3.0
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "SLABENCH_BENCH_MEASURED_USERS": str(args.streams),
        "SLABENCH_BENCH_STAGGER_S": "0.008",
        "SLABENCH_BENCH_POLLS_MS": args.polls,
        "SLABENCH_BENCH_SEGMENTS": str(args.segments),
        "SLABENCH_BENCH_SEGMENT_S": str(args.segment_s),
        "SLABENCH_BENCH_SETTLE_S": str(args.settle_s),
        "SLABENCH_BENCH_START_S": str(START_S),
    }
    flags = ("--ttft-ms", "50", "--itl-ms", "10", "--tokens", str(TOKENS))
    with tempfile.TemporaryDirectory(prefix="polls-") as tmp, ScriptedServer(*flags) as server:
        os.sched_setaffinity(server.pid, {1})
        cmd = [
            *(sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless"),
            *("--only-summary", "-u", str(args.streams), "-r", str(args.streams)),
            *("-t", f"{seconds:.0f}s", "--host", server.url, "--model", "m"),
            *("--run-dir", f"{tmp}/run", "--input-len", "fixed:8"),
            *("--output-len", f"fixed:{TOKENS}"),
        ]
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        os.sched_setaffinity(proc.pid, {0})
        _, err = proc.communicate(timeout=seconds + 120)
    lines = [line for line in err.splitlines() if line.startswith("POLLS ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"locust exited {proc.returncode}: {err[-2000:]}")
    segments = json.loads(lines[-1][len("POLLS ") :])
    print(
        f"{args.streams} streams, {args.segments} segments of {args.segment_s:g} s, "
        "CPU per request (us), median over each setting's segments"
    )
    base = None
    for interval in polls:
        values = [us for ms, us, _ in segments if ms == interval]
        count = sum(n for ms, _, n in segments if ms == interval)
        mid = statistics.median(values)
        base = base or mid
        print(
            f"  --poll-interval-ms {interval:g}: {mid:7.0f}  (min {min(values):.0f}, "
            f"max {max(values):.0f}, {count} requests)  x{mid / base:.2f}"
        )


if __name__ == "__main__":
    main()
