"""What an all but idle slabench process costs (a script, not a test).

One Locust process with one streaming chat user against ``benchmarks/scripted_server.py``
with a 2 s TTFT: the user is nearly always waiting, so what the process uses is its fixed
costs (the loop-lag monitor's 50 wake-ups a second, the CPU sampler, the scraper, the
live view, the recorder's flushes). Printed: the process's CPU in ms a second of wall time
over ``--window-s`` seconds after ``--skip-s``, for this tree and, with ``--before DIR``,
for DIR's (``git worktree add DIR REV``), alternated over ``--rounds``. The client runs on
CPU 0, the server on CPU 1. The CPU time is the scheduler's own count, in nanoseconds,
of every thread of the process (``/proc/PID/task/*/schedstat``): the 10 ms ticks of
``cpu_times`` would resolve only 1 ms a second over 10 s.

    .venv/bin/python -m benchmarks.idle_generator [--rounds 3] [--window-s 10] [--before DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.floor import TOKENS
from benchmarks.floor_layers import command
from benchmarks.locust_overhead import REPO
from benchmarks.scripted_runs import ScriptedServer


def cpu_s(pid: int) -> float:
    """The CPU seconds every live thread of ``pid`` has run (the scheduler's count)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):  # a thread that just ended
            continue
    return total / 1e9


def idle_ms_per_s(tree: str, skip_s: float, window_s: float) -> float:
    env = {**os.environ, "SLABENCH_BENCH_MEASURED_USERS": "1", "PYTHONPATH": tree}
    seconds = int(skip_s + window_s + 4)
    flags = ("--ttft-ms", "2000", "--itl-ms", "10", "--tokens", str(TOKENS))
    # floor_layers' slabench run, one user: "before" runs it from another tree.
    layer = "slabench" if Path(tree) == REPO else "before"
    run = argparse.Namespace(streams=1, seconds=seconds, before=tree)
    with tempfile.TemporaryDirectory(prefix="idle-") as tmp, ScriptedServer(*flags) as server:
        os.sched_setaffinity(server.pid, {1})
        cmd = command(layer, server.url, run, tmp)
        proc = subprocess.Popen(
            cmd, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        os.sched_setaffinity(proc.pid, {0})
        time.sleep(skip_s)
        c0, t0 = cpu_s(proc.pid), time.monotonic()
        time.sleep(window_s)
        c1, t1 = cpu_s(proc.pid), time.monotonic()
        _, err = proc.communicate(timeout=seconds + 120)
        if proc.returncode != 0:
            raise SystemExit(f"{tree}: locust exited {proc.returncode}: {err[-2000:]}")
    return (c1 - c0) / (t1 - t0) * 1000.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--skip-s", type=float, default=6.0, help="start-up left out")
    p.add_argument("--window-s", type=float, default=10.0)
    p.add_argument("--before", metavar="DIR", help="also DIR's slabench, alternated")
    args = p.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs 2 CPUs: the client on one, the server on the other")
    trees = {"slabench": str(REPO)}
    if args.before:
        trees["before"] = args.before
    per: dict[str, list[float]] = {name: [] for name in trees}
    for r in range(args.rounds):
        names = list(trees) if r % 2 == 0 else list(reversed(trees))
        for name in names:
            per[name].append(idle_ms_per_s(trees[name], args.skip_s, args.window_s))
            print(f"  round {r + 1} {name}: {per[name][-1]:.2f} ms of CPU a second", flush=True)
    for name, values in per.items():
        print(f"{name:<9} median {statistics.median(values):.2f} ms of CPU a second")


if __name__ == "__main__":
    main()
