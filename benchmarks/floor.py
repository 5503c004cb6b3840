"""slabench against the floor: CPU and timing error side by side (a script, not a test).

For each ``--streams`` count (8, 32, 128), in one invocation, the same closed-loop load of
streamed chat completions from two clients, each against a fresh scripted server
(``benchmarks/scripted_server.py``: per-token timers, finish, usage chunk, ``[DONE]``; it
stamps each of its own sends on slabench's clock):

- ``slabench``: one Locust process, slabench's chat user (``locustfiles/accuracy_mix.py``,
  every request timed and recorded, the Prometheus scraper at its default interval);
- ``floor``: ``benchmarks/floor_client.py``, raw asyncio, timestamps only;
- ``before`` (with ``--before DIR``): slabench as in another tree, for a before/after.

The order rotates from one count to the next. The client runs on one CPU, the
server on another. Every request is matched with the server's own record of it (the floor by
its connection's port; slabench's users each keep one connection and record under their own
label, see ``measurement_accuracy.pair``), over the window from ``--skip-s`` after the first
send to 1 s before the last answer. Printed per client (ms): per-request ``TTFT error`` =
client TTFT - the server's (first token send - receipt), ``E2E error`` likewise for the
last send, p50 / p99 / max; ``percentile error`` = the client's TTFT (E2E) p50 / p99 minus
the server's; ``CPU/req`` = the client process's CPU over the window / requests completed
in it; ``cores``, ``server``, ``other``: the cores the client, the scripted server and
everything else (other people's jobs: a quiet run has ``other`` near 0) kept busy over the
window; then slabench / floor of each. For slabench also its own event-loop lag p99
(run.json), the delay it implies for any timestamp.

    .venv/bin/python -m benchmarks.floor [--seconds 20] [--streams 8,32,128] [--before DIR]
    .venv/bin/python -m benchmarks.floor --streams 128 --profile /tmp/slabench.prof
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

from benchmarks.locust_overhead import REPO, CpuSampler, Pinning, machine_busy_s, process_cpu_s
from benchmarks.measurement_accuracy import causal, pair
from benchmarks.scripted_runs import ScriptedServer
from sla.files.run import load_run

MIX = REPO / "benchmarks" / "locustfiles" / "accuracy_mix.py"
TOKENS = 16
METRICS = ("TTFT", "E2E")


@dataclass(frozen=True, slots=True)
class Side:
    tool: str
    streams: int
    requests: int  # paired, inside the window
    left_out: int  # not paired, or not causal
    cpu_us: float  # per request completed in the window
    cores: float  # the client process, mean over the window
    server_cores: float  # the scripted server (it spins through the last 2 ms of each wait)
    other_cores: float  # everything else: other people's jobs
    per_request: dict[str, tuple[float, float, float]]  # metric -> error p50, p99, max (ms)
    percentile: dict[str, tuple[float, float]]  # metric -> client pXX - server pXX (ms)
    loop_lag_p99_ms: float  # slabench only (nan for the floor)


def errors(ours: pd.DataFrame, theirs: pd.DataFrame) -> tuple[dict, dict]:  # type: ignore[type-arg]
    def col(df: pd.DataFrame, name: str) -> np.ndarray:
        return df[name].to_numpy(dtype=np.float64)

    sent, received = col(ours, "sent_at"), col(theirs, "received_at")
    client = {"TTFT": col(ours, "first_token_at") - sent, "E2E": col(ours, "done_at") - sent}
    truth = {
        "TTFT": col(theirs, "first_token_at") - received,
        "E2E": col(theirs, "done_at") - received,
    }
    per_request, percentile = {}, {}
    for m in METRICS:
        err = (client[m] - truth[m]) * 1000.0
        per_request[m] = (
            float(np.percentile(err, 50)),
            float(np.percentile(err, 99)),
            float(err.max()),
        )
        percentile[m] = tuple(
            float(np.percentile(client[m], q) - np.percentile(truth[m], q)) * 1000.0
            for q in (50, 99)
        )
    return per_request, percentile


def pair_floor(rows: pd.DataFrame, timings: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """The floor's n-th request on a connection is the server's n-th on that peer port."""
    mine, theirs, unpaired = [], [], 0
    server = {port: t.sort_values("received_at") for port, t in timings.groupby("peer_port")}
    for port, ours in rows.groupby("port"):
        t = server.get(port, timings.iloc[:0])
        n = min(len(ours), len(t))
        unpaired += len(ours) - n
        mine.append(ours.sort_values("sent_at").iloc[:n])
        theirs.append(t.iloc[:n])
    return pd.concat(mine), pd.concat(theirs), unpaired


def command(tool: str, url: str, streams: int, args: argparse.Namespace, tmp: str) -> list[str]:
    """``before`` is slabench too, from the tree ``--before`` (run from there, so that its
    packages come first on ``sys.path``)."""
    if tool == "floor":
        return [
            sys.executable,
            "-m",
            "benchmarks.floor_client",
            "--url",
            url,
            "--streams",
            str(streams),
            "--seconds",
            str(args.seconds),
            "--tokens",
            str(TOKENS),
            "--out",
            f"{tmp}/floor.json",
        ]
    mix = Path(args.before) / MIX.relative_to(REPO) if tool == "before" else MIX
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(mix),
        "--headless",
        "--only-summary",
        "-u",
        str(streams),
        "-r",
        str(streams),
        "-t",
        f"{args.seconds}s",
        "--host",
        url,
        "--model",
        "m",
        "--run-dir",
        f"{tmp}/run",
        "--input-len",
        "fixed:8",
        "--output-len",
        f"fixed:{TOKENS}",
        *args.locust_args,
    ]


def run_side(tool: str, streams: int, args: argparse.Namespace) -> Side:
    env = {
        **os.environ,
        "SLABENCH_BENCH_STAGGER_S": str(args.stagger_ms / 1000.0),
        "SLABENCH_BENCH_MEASURED_USERS": str(streams),
    }
    flags = ("--ttft-ms", str(args.ttft_ms), "--itl-ms", str(args.itl_ms), "--tokens", str(TOKENS))
    with tempfile.TemporaryDirectory(prefix="floor-") as tmp, ScriptedServer(*flags) as server:
        cmd = command(tool, server.url, streams, args, tmp)
        if tool == "before":
            env["PYTHONPATH"] = args.before
        proc = subprocess.Popen(
            cmd,
            cwd=args.before if tool == "before" else REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.sched_setaffinity(proc.pid, {args.pinning.locust_cpu})
        with (
            CpuSampler(process_cpu_s(proc.pid)) as cpu,
            CpuSampler(process_cpu_s(server.pid)) as server_cpu,
            CpuSampler(machine_busy_s) as machine,
        ):
            _, err = proc.communicate(timeout=args.seconds + 180)
        if proc.returncode != 0:
            raise SystemExit(f"{tool} x{streams}: exited {proc.returncode}: {err[-2000:]}")
        timings = pd.DataFrame(server.timings())
        lag = float("nan")
        if tool == "floor":
            records = json.loads(Path(f"{tmp}/floor.json").read_text())
            cols = ["port", "sent_at", "first_token_at", "done_at", "reads"]
            rows = pd.DataFrame(records, columns=cols)
            ours, theirs, unpaired = pair_floor(rows, timings)
        else:
            run = load_run(Path(tmp) / "run")
            rows = run.requests[run.requests["error"].isna()]
            ours, theirs, unpaired = pair(rows, timings)
            procs = run.meta.get("generator", {}).get("processes", [])
            lag = float(procs[0].get("loop_lag", {}).get("p99_ms", lag)) if procs else lag
    start = rows["sent_at"].min() + args.skip_s
    end = rows["done_at"].max() - 1.0  # the last second: stopping cuts requests short
    inside = ((ours["sent_at"] >= start) & (ours["done_at"] <= end)).to_numpy()
    good = causal(ours, theirs)
    keep = inside & good
    done = int(((rows["done_at"] >= start) & (rows["done_at"] <= end)).sum())
    cores = cpu.cores(start, end)
    per_request, percentile = errors(ours[keep], theirs[keep])
    return Side(
        tool,
        streams,
        int(keep.sum()),
        unpaired + int((inside & ~good).sum()),
        cores * (end - start) / done * 1e6,
        cores,
        server_cpu.cores(start, end),
        machine.cores(start, end) - cores - server_cpu.cores(start, end),
        per_request,
        percentile,
        lag,
    )


def profile(args: argparse.Namespace) -> None:
    """One slabench run at the largest stream count under cProfile; the costliest functions."""
    import pstats

    streams = max(int(s) for s in args.streams.split(","))
    out = str(Path(args.profile).resolve())
    env = {**os.environ, "SLABENCH_BENCH_STAGGER_S": str(args.stagger_ms / 1000.0),
           "SLABENCH_BENCH_MEASURED_USERS": str(streams)}  # fmt: skip
    flags = ("--ttft-ms", str(args.ttft_ms), "--itl-ms", str(args.itl_ms), "--tokens", str(TOKENS))
    with tempfile.TemporaryDirectory(prefix="floor-") as tmp, ScriptedServer(*flags) as server:
        cmd = command("slabench", server.url, streams, args, tmp)
        cmd[1:1] = ["-m", "cProfile", "-o", out]
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
        os.sched_setaffinity(proc.pid, {args.pinning.locust_cpu})
        proc.wait()
    pstats.Stats(out).sort_stats("tottime").print_stats(40)


def report(sides: list[Side]) -> None:
    head = (
        f"{'streams':>7} {'client':<8} {'paired':>7} {'out':>4} {'CPU/req us':>10} "
        f"{'cores':>5} {'server':>6} {'other':>5}  "
        f"{'TTFT err p50/p99/max':>22}  {'E2E err p50/p99/max':>22}"
        f"  {'TTFT pct err p50/p99':>20}  {'E2E pct err p50/p99':>20}  {'lag p99':>7}"
    )
    print(head)
    for s in sides:
        cells = ["/".join(f"{v:.2f}" for v in s.per_request[m]) for m in METRICS] + [
            "/".join(f"{v:+.2f}" for v in s.percentile[m]) for m in METRICS
        ]
        print(
            f"{s.streams:>7} {s.tool:<8} {s.requests:>7} {s.left_out:>4} {s.cpu_us:>10.0f} "
            f"{s.cores:>5.2f} {s.server_cores:>6.2f} {s.other_cores:>5.2f}  "
            f"{cells[0]:>22}  {cells[1]:>22}  "
            f"{cells[2]:>20}  {cells[3]:>20}  {s.loop_lag_p99_ms:>7.2f}"
        )
    for tool in ("slabench", "before"):
        if any(s.tool == tool for s in sides):
            ratios(sides, tool)


def ratios(sides: list[Side], tool: str) -> None:
    print(f"\n{tool} / floor:")
    for streams in sorted({s.streams for s in sides}):
        ours = next(s for s in sides if s.streams == streams and s.tool == tool)
        floor = next(s for s in sides if s.streams == streams and s.tool == "floor")
        parts = [f"CPU/req {ours.cpu_us / floor.cpu_us:.2f}"]
        for m in METRICS:
            parts.append(f"{m} err p99 {ours.per_request[m][1] / floor.per_request[m][1]:.2f}")
            p50, p99 = (ours.percentile[m][i] / floor.percentile[m][i] for i in (0, 1))
            parts.append(f"{m} pct err p50 {p50:.2f} p99 {p99:.2f}")
        print(f"  {streams:>4} streams: " + ", ".join(parts))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--streams", default="8,32,128", help="comma-separated stream counts")
    p.add_argument("--seconds", type=int, default=20, help="per client and count (default 20)")
    p.add_argument("--skip-s", type=float, default=3.0, help="warm-up not counted (default 3)")
    p.add_argument("--ttft-ms", type=float, default=50.0)
    p.add_argument("--itl-ms", type=float, default=10.0)
    p.add_argument("--stagger-ms", type=float, default=8.0, help="between slabench user starts")
    p.add_argument(
        "--locust-arg",
        dest="locust_args",
        action="append",
        default=[],
        help="an extra slabench option (repeatable), e.g. --locust-arg=--flush-interval=60",
    )
    p.add_argument(
        "--before",
        metavar="DIR",
        help="also run the slabench of this tree (e.g. `git worktree add DIR main`)",
    )
    p.add_argument("--profile", metavar="FILE", help="instead: slabench once under cProfile")
    args = p.parse_args()
    args.pinning = Pinning.choose()
    return args


def main() -> None:
    args = parse_args()
    os.sched_setaffinity(0, {args.pinning.server_cpu})  # the scripted servers inherit it
    if args.profile:
        profile(args)
        return
    counts = [int(s) for s in args.streams.split(",")]
    print(
        f"{time.strftime('%Y-%m-%d %H:%M')}  {platform.node()}  {psutil.cpu_count()} CPUs  "
        f"load average {os.getloadavg()[0]:.1f}  python {platform.python_version()}  server on "
        f"CPU {args.pinning.server_cpu}, client on CPU {args.pinning.locust_cpu}  ttft "
        f"{args.ttft_ms:g} ms, itl {args.itl_ms:g} ms, {TOKENS} tokens, {args.seconds}s each"
    )
    sides = []
    for i, streams in enumerate(counts):
        tools = ["slabench", "floor", *(["before"] if args.before else [])]
        for tool in tools[i % len(tools) :] + tools[: i % len(tools)]:  # a new order each count
            sides.append(run_side(tool, streams, args))
            s = sides[-1]
            print(f"  {tool} x{streams}: {s.requests} paired, {s.cpu_us:.0f} us/req", flush=True)
    report(sides)


if __name__ == "__main__":
    main()
