"""How exactly the load generator times streams, idle and busy (a script, not a test).

8 streaming chat users (Locust, slabench's chat user) against the scripted server of
``benchmarks/scripted_server.py``, which stamps each of its own sends on the same
anchored clock as ``loadtests.client.clock``: headers and a role chunk at once, token j at
``--ttft-ms + j * --itl-ms``. Two phases, each with a fresh server:

- ``8 streams``: only those 8 users;
- ``8 streams + 80%``: the same, while background users stream from
  ``benchmarks/canned_server.py`` at ``--load`` (0.8) x the generator's capacity, so that
  the one Locust process is that busy. The capacity is ``--capacity`` req/s if given, else
  measured first as in ``benchmarks.locust_overhead`` (ours, closed loop, -u 16).

Per request, what we recorded against what the server did (ms): ``first token delay`` =
our first_token_at - the server's first token send, ``done delay`` = our done_at - the
server's last send, and the resulting metric errors ``TTFT error`` = our ttft_ms - the
server's (first token send - request receipt) and ``E2E error`` likewise; p50 and p99 over
the requests after ``--skip-s``. Each measured user records under its own label and keeps
one connection, so its requests pair one by one with the server's records of that
connection (see ``pair``); ``left out`` counts those that could not be paired.

    .venv/bin/python -m benchmarks.measurement_accuracy [--seconds 12] [--capacity REQ_PER_S]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

from benchmarks.locust_overhead import (
    REPO,
    CpuSampler,
    Pinning,
    machine_busy_s,
    process_cpu_s,
    run_once,
    start_canned,
)
from benchmarks.scripted_runs import ScriptedServer
from sla.files.run import load_run

MIX = REPO / "benchmarks" / "locustfiles" / "accuracy_mix.py"
MEASURED_USERS = 8
BACKGROUND_USERS = 16
EARLY_S = 50e-6  # the two processes' clocks agree to about this
TOKENS = 16


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    requests: int  # measured requests paired and counted
    unpaired: int
    failed: int
    generator_cpu_pct: float
    background_per_s: float
    other_cores: float
    errors_ms: dict[str, tuple[float, float]]  # name -> (p50, p99)


def pair(rows: pd.DataFrame, timings: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Our rows of the measured users and the server's records of the same requests, in the
    same order; and how many of our rows have no record.

    Each user ("chat-K") kept one connection, and the server notes each request's client
    port: taking the users in the order of their first send (``--stagger-ms`` apart), user
    K's n-th request is the n-th request on the first port not yet taken whose first request
    arrived after K's first send. A wrong pairing shows as a request the server sent before
    we asked or we read before it was sent; ``causal`` catches those.
    """
    by_port = {port: t.sort_values("received_at") for port, t in timings.groupby("peer_port")}
    mine, theirs, unpaired = [], [], 0
    measured = rows[rows["endpoint"].str.startswith("chat-")].sort_values("sent_at")
    for _, user in sorted(measured.groupby("endpoint"), key=lambda kv: kv[1]["sent_at"].iloc[0]):
        first = user["sent_at"].iloc[0] - EARLY_S
        later = [p for p, t in by_port.items() if t["received_at"].iloc[0] > first]
        if not later:
            unpaired += len(user)
            continue
        server = by_port.pop(min(later, key=lambda p: by_port[p]["received_at"].iloc[0]))
        n = min(len(user), len(server))
        unpaired += len(user) - n
        mine.append(user.iloc[:n])
        theirs.append(server.iloc[:n])
    return pd.concat(mine), pd.concat(theirs), unpaired


def causal(ours: pd.DataFrame, server: pd.DataFrame) -> np.ndarray:
    """Pairs that can be the same request: the server received it after we sent it, and we
    read the first and the last token after it sent them (else the pairing is wrong)."""
    return (
        (server["received_at"].to_numpy() > ours["sent_at"].to_numpy() - EARLY_S)
        & (ours["first_token_at"].to_numpy() > server["first_token_at"].to_numpy() - EARLY_S)
        & (ours["done_at"].to_numpy() > server["done_at"].to_numpy() - EARLY_S)
    )


def errors_ms(rows: pd.DataFrame, timings: pd.DataFrame) -> dict[str, tuple[float, float]]:
    def col(df: pd.DataFrame, name: str) -> np.ndarray:
        return df[name].to_numpy(dtype=np.float64)

    sent, first, done = col(rows, "sent_at"), col(rows, "first_token_at"), col(rows, "done_at")
    received = col(timings, "received_at")
    server_first, server_done = col(timings, "first_token_at"), col(timings, "done_at")
    series = {
        "first token delay": (first - server_first) * 1000.0,
        "done delay": (done - server_done) * 1000.0,
        "TTFT error": ((first - sent) - (server_first - received)) * 1000.0,
        "E2E error": ((done - sent) - (server_done - received)) * 1000.0,
    }
    return {
        k: (float(np.percentile(v, 50)), float(np.percentile(v, 99))) for k, v in series.items()
    }


def run_phase(name: str, args: argparse.Namespace, canned_url: str, rate: float) -> Phase:
    background = BACKGROUND_USERS if rate > 0 else 0
    users = MEASURED_USERS + background
    flags = ("--ttft-ms", str(args.ttft_ms), "--itl-ms", str(args.itl_ms), "--tokens", str(TOKENS))
    env = {
        **os.environ,
        "SLABENCH_BENCH_STAGGER_S": str(args.stagger_ms / 1000.0),
        "SLABENCH_BENCH_BACKGROUND_USERS": str(background),
        "SLABENCH_BENCH_BACKGROUND_RATE": str(rate),
        "SLABENCH_BENCH_CANNED_URL": canned_url,
    }
    with tempfile.TemporaryDirectory(prefix="accuracy-") as tmp, ScriptedServer(*flags) as server:
        cmd = [sys.executable, "-m", "locust", "-f", str(MIX), "--headless", "--only-summary",
               "-u", str(users), "-r", str(users), "-t", f"{args.seconds}s", "--host",
               server.url, "--model", "m", "--run-dir", f"{tmp}/run", "--scrape-interval", "0",
               "--input-len", "fixed:8", "--output-len", f"fixed:{TOKENS}"]  # fmt: skip
        proc = subprocess.Popen(
            cmd, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        os.sched_setaffinity(proc.pid, {args.pinning.locust_cpu})
        with CpuSampler(process_cpu_s(proc.pid)) as locust, CpuSampler(machine_busy_s) as machine:
            _, err = proc.communicate(timeout=args.seconds + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"{name}: locust exited {proc.returncode}: {err[-2000:]}")
        rows = load_run(Path(tmp) / "run").requests
        timings = pd.DataFrame(server.timings())
    start = rows["sent_at"].min() + args.skip_s
    end = rows["done_at"].max() - 1.0  # the last second: the test stopping cuts requests
    ours, theirs, unpaired = pair(rows, timings)
    inside = ((ours["sent_at"] >= start) & (ours["done_at"] <= end)).to_numpy()
    ok = (ours["error"].isna() & (ours["status"] == 200)).to_numpy()
    good = causal(ours, theirs)
    keep = inside & ok & good
    extra = rows[(rows["endpoint"] == "completions") & (rows["sent_at"] >= start)]
    locust_cores = locust.cores(start, end)
    return Phase(
        name,
        int(keep.sum()),
        unpaired + int((inside & ok & ~good).sum()),
        int((inside & ~ok).sum()),
        locust_cores * 100.0,
        float((extra["done_at"] <= end).sum()) / (end - start),
        machine.cores(start, end) - locust_cores,
        errors_ms(ours[keep], theirs[keep]),
    )


def measure_capacity(args: argparse.Namespace, canned_url: str, canned_pid: int) -> float:
    runs = argparse.Namespace(users=16, seconds=8, skip_s=1, pinning=args.pinning)
    rates = [run_once("ours", canned_url, runs, canned_pid).requests_per_s for _ in range(2)]
    return statistics.median(rates)


def report(phases: list[Phase]) -> None:
    for p in phases:
        print(
            f"\n{p.name}: {p.requests} requests paired ({p.unpaired} left out, {p.failed} "
            f"failed); generator CPU {p.generator_cpu_pct:.0f}% of a core; background "
            f"{p.background_per_s:,.0f} req/s; other processes {p.other_cores:.2f} cores"
        )
        print(f"  {'ms':<18} {'p50':>8} {'p99':>8}")
        for name, (p50, p99) in p.errors_ms.items():
            print(f"  {name:<18} {p50:>8.3f} {p99:>8.3f}")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--seconds", type=int, default=12, help="Locust -t per phase (default 12)")
    p.add_argument("--skip-s", type=float, default=2.0, help="warm-up not counted (default 2)")
    p.add_argument("--ttft-ms", type=float, default=50.0)
    p.add_argument("--itl-ms", type=float, default=10.0)
    p.add_argument("--stagger-ms", type=float, default=25.0, help="between user starts")
    p.add_argument("--load", type=float, default=0.8, help="background share of capacity")
    p.add_argument("--capacity", type=float, help="generator req/s (default: measure it)")
    args = p.parse_args()
    args.pinning = Pinning.choose()
    return args


def main() -> None:
    args = parse_args()
    os.sched_setaffinity(0, {args.pinning.server_cpu})  # the scripted servers inherit it
    canned, canned_url = start_canned(TOKENS, args.pinning.server_cpu)
    try:
        capacity = args.capacity or measure_capacity(args, canned_url, canned.pid)
        print(f"{time.strftime('%Y-%m-%d %H:%M')}  {platform.node()}  {psutil.cpu_count()} CPUs"
              f"  python {platform.python_version()}  servers on CPU {args.pinning.server_cpu},"
              f" locust on CPU {args.pinning.locust_cpu}  ttft {args.ttft_ms:g} ms, itl "
              f"{args.itl_ms:g} ms, {TOKENS} tokens  capacity {capacity:,.0f} req/s")  # fmt: skip
        phases = [
            run_phase("8 streams", args, canned_url, 0.0),
            run_phase(f"8 streams + {args.load:.0%}", args, canned_url, args.load * capacity),
        ]
    finally:
        canned.terminate()
        canned.wait(10)
    report(phases)


if __name__ == "__main__":
    main()
