"""What the live state costs per row, and what a look costs, by endpoint count (a script).

The live view (``loadtests.live``) is fed every row of a run and looked at every
``--live-interval``. This feeds a ``LiveState`` 40 s of synthetic rows (500 requests/s, 15
chunk gaps each, spread over 1, 8 or 128 endpoints: a scenario, a mix, one label per user),
then takes one look (``LiveMonitor.snapshot``), and prints the CPU time per row fed and per
look (the minimum over ``--repeat`` rounds: the least disturbed). ``per row, all in`` adds a
look every 10 s (the default interval) spread over the rows of those 10 s. With
``--before DIR`` the same runs in another tree (its ``loadtests``/``sla`` first on the path),
the two interleaved round by round, side by side.

    .venv/bin/python -m benchmarks.live_state_cost [--repeat 5] [--before DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

RATE = 500  # rows a second
SECONDS = 40
ENDPOINTS = (1, 8, 128)
T0 = 1_764_400_000.0


def measure(endpoints: int) -> tuple[float, float]:
    """(µs per row fed, ms per look), CPU time, in this interpreter's tree."""
    import numpy as np

    from loadtests.live.monitor import LiveMonitor
    from loadtests.live.state import LiveState
    from sla.files.run import RequestRecord

    rng = np.random.default_rng(1)
    rows = []
    for k in range(RATE * SECONDS):
        d = T0 + k / RATE
        gaps = tuple(rng.exponential(10.0, 15).tolist())
        rows.append(
            RequestRecord(
                f"r{k}", "local", f"ep{k % endpoints}", math.nan, d - 0.2, d - 0.15, d, 200,
                None, 8, 16, "usage", 16, gaps, None, first_output_at=d - 0.15,
            )
        )  # fmt: skip
    live = LiveState(measured_from=T0)
    t = time.process_time()
    for rec in rows:
        live.add_record(rec)
    per_row_us = (time.process_time() - t) / len(rows) * 1e6
    monitor = LiveMonitor(live, started_at=T0, scenario="x", interval_s=10.0, printer=print)
    monitor.stop(ended_at=T0 + SECONDS + 0.5)
    t = time.process_time()
    monitor.snapshot()
    return per_row_us, (time.process_time() - t) * 1000.0


def _child(tree: str, endpoints: int) -> tuple[float, float]:
    """This script, by its path, with ``tree``'s packages first on the path."""
    env = {**os.environ, "PYTHONPATH": tree}
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--one", str(endpoints)],
        cwd=tree, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    row_us, look_ms = json.loads(out.splitlines()[-1])
    return float(row_us), float(look_ms)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--before", metavar="DIR", help="another tree, measured alongside")
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child: one measurement
    args = p.parse_args()
    if args.one:
        print(json.dumps(measure(args.one)))
        return
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    trees = {"this tree": here} | ({"before": os.path.abspath(args.before)} if args.before else {})
    print(f"{RATE} rows/s for {SECONDS} s, 15 gaps a row; min of {args.repeat} rounds, CPU time")
    head = ("tree", "endpoints", "per row us", "look ms", "per row, all in")
    print(f"{head[0]:<10} {head[1]:>9} {head[2]:>10} {head[3]:>8} {head[4]:>15}")
    for endpoints in ENDPOINTS:
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
        for _ in range(args.repeat):
            for name, tree in trees.items():
                runs[name].append(_child(tree, endpoints))
        for name, results in runs.items():
            row_us = min(r for r, _ in results)
            look_ms = min(m for _, m in results)
            all_in = row_us + look_ms * 1000.0 / (RATE * 10)
            print(f"{name:<10} {endpoints:>9} {row_us:>10.1f} {look_ms:>8.1f} {all_in:>15.1f}")


if __name__ == "__main__":
    main()
