"""What the live view costs the load generator (a script, not a test).

The CPU time ONE Locust process spends per request with slabench's streaming chat user
(16-token SSE answers) in three variants, side by side in one run:

- ``off``: ``--live-interval 0`` (no live state, no monitor);
- ``on``: ``--live-interval 1`` (every row feeds the live state; a look every second);
- ``on+sla``: ``--live-interval 1 --sla SPEC`` (the same, plus the SLA's provisional
  verdict every look and the per-request limits on every row).

All three run against ``benchmarks/canned_server.py`` (pre-rendered answers: the server
costs little, Locust is the bottleneck) with the same ``-u`` and duration, the server and
Locust pinned to different cores. Rounds are interleaved (off/on/on+sla, then rotated), so
that a change in the machine's load touches every variant alike. ``us/req`` is the Locust
process's user+system CPU over the counted seconds (``locust_overhead.steady_seconds``)
divided by the requests completed in them. Target: ``on`` and ``on+sla`` cost at most 5%
more CPU per request than ``off`` (medians over rounds). Exit 0 when met, 1 when not.

    .venv/bin/python -m benchmarks.live_cost [--users 16] [--seconds 10] [--rounds 5]
    .venv/bin/python -m benchmarks.live_cost --profile on+sla /tmp/live.prof   # cProfile
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from benchmarks.locust_overhead import (
    OURS,
    CpuSampler,
    Pinning,
    machine_busy_s,
    process_cpu_s,
    start_canned,
    steady_seconds,
)

VARIANTS = ("off", "on", "on+sla")
TARGET_EXTRA = 0.05
# Locust's --sla exit codes that are a verdict, not a failure of the run: PASS, FAIL,
# INCONCLUSIVE, and 4 (the generator was saturated: here it is, by design).
VERDICT_CODES = (0, 1, 3, 4)
SPEC = """\
name: live-cost
per_request: {ttft_ms: 1000, tpot_ms: 200}
objectives:
  - {metric: ttft_ms, stat: p99, max: 500}
  - {metric: itl_ms, stat: p99, max: 100}
  - {metric: latency_ms, stat: p90, max: 1000}
  - {metric: error_rate, max: 0.01}
  - {metric: goodput_ratio, min: 0.95}
"""


@dataclass(frozen=True, slots=True)
class Result:
    variant: str
    requests_per_s: float
    locust_cpu_pct: float  # of one core, over the counted seconds
    other_cores: float

    @property
    def cpu_us_per_request(self) -> float:
        return self.locust_cpu_pct / 100.0 / self.requests_per_s * 1e6


def command(variant: str, url: str, args: argparse.Namespace, work: Path) -> list[str]:
    cmd = [sys.executable, "-m", "locust", "-f", str(OURS), "--headless", "--only-summary",
           "-u", str(args.users), "-r", str(args.users), "-t", f"{args.seconds}s",
           "--host", url, "--json-file", str(work / "stats"), "--model", "m",
           "--run-dir", str(work / "run"), "--scrape-interval", "0", "--no-report",
           "--input-len", "fixed:8", "--output-len", f"fixed:{args.tokens}",
           "--live-interval", "0" if variant == "off" else "1"]  # fmt: skip
    if variant == "on+sla":
        spec = work / "spec.yaml"
        spec.write_text(SPEC, encoding="utf-8")
        cmd += ["--sla", str(spec)]
    return cmd


def run_once(variant: str, url: str, args: argparse.Namespace) -> Result:
    with tempfile.TemporaryDirectory(prefix=f"live-cost-{variant}-") as tmp:
        work = Path(tmp)
        proc = subprocess.Popen(
            command(variant, url, args, work),
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        os.sched_setaffinity(proc.pid, {args.pinning.locust_cpu})
        with CpuSampler(process_cpu_s(proc.pid)) as locust_cpu, CpuSampler(machine_busy_s) as box:
            _, err = proc.communicate(timeout=args.seconds + 120)
        allowed = VERDICT_CODES if variant == "on+sla" else (0,)
        if proc.returncode not in allowed:
            raise SystemExit(f"{variant}: locust exited {proc.returncode}: {err[-2000:]!r}")
        stats = json.loads((work / "stats.json").read_text())
        entry = next(e for e in stats if e["name"] != "Aggregated")
        if entry["num_failures"]:
            raise SystemExit(f"{variant}: {entry['num_failures']} requests failed")
        first, last, count = steady_seconds(entry["num_reqs_per_sec"], args.skip_s)
    locust = locust_cpu.cores(first, last + 1)
    return Result(
        variant, count / (last - first + 1), locust * 100.0, box.cores(first, last + 1) - locust
    )


def report(results: list[Result], rounds: int) -> bool:
    print(f"{'round':>5} {'variant':<7} {'req/s':>8} {'locust CPU':>10} {'us/req':>7} "
          f"{'other':>6}")  # fmt: skip
    for i, r in enumerate(results):
        print(f"{i // len(VARIANTS) + 1:>5} {r.variant:<7} {r.requests_per_s:>8,.0f} "
              f"{r.locust_cpu_pct:>9.0f}% {r.cpu_us_per_request:>7.1f} "
              f"{r.other_cores:>6.2f}")  # fmt: skip
    per = {v: [r for r in results if r.variant == v] for v in VARIANTS}
    ok = True
    base = statistics.median(r.cpu_us_per_request for r in per["off"])
    print(f"off: median {base:.1f} us/req, "
          f"{statistics.median(r.requests_per_s for r in per['off']):,.0f} req/s")  # fmt: skip
    for variant in VARIANTS[1:]:
        # Per round against that round's `off`, then the median: the machine's drift
        # between rounds cancels.
        extra = [
            r.cpu_us_per_request / o.cpu_us_per_request - 1.0
            for r, o in zip(per[variant], per["off"], strict=True)
        ]
        median = statistics.median(extra)
        met = median <= TARGET_EXTRA
        ok = ok and met
        us = statistics.median(r.cpu_us_per_request for r in per[variant])
        print(f"{variant}: median {us:.1f} us/req; extra CPU per request vs off, per round: "
              + "  ".join(f"{x:+.1%}" for x in extra)
              + f"; median {median:+.1%} (target <= +{TARGET_EXTRA:.0%}): "
              + ("met" if met else "MISSED"))  # fmt: skip
    return ok


def profile(url: str, args: argparse.Namespace) -> None:
    variant, out = args.profile
    with tempfile.TemporaryDirectory(prefix="live-cost-profile-") as tmp:
        cmd = command(variant, url, args, Path(tmp))
        cmd[1:1] = ["-m", "cProfile", "-o", str(Path(out).resolve())]
        proc = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL)
        os.sched_setaffinity(proc.pid, {args.pinning.locust_cpu})
        proc.wait()
    import pstats

    pstats.Stats(out).sort_stats("tottime").print_stats(30)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--users", type=int, default=16, help="Locust -u (default 16)")
    p.add_argument("--seconds", type=int, default=10, help="Locust -t per run (default 10)")
    p.add_argument("--skip-s", type=int, default=2, help="warm-up seconds not counted")
    p.add_argument("--rounds", type=int, default=5, help="off/on/on+sla triples (default 5)")
    p.add_argument("--tokens", type=int, default=16, help="tokens per streamed answer")
    p.add_argument("--profile", nargs=2, metavar=("VARIANT", "FILE"), help="instead: cProfile")
    args = p.parse_args()
    if args.profile and args.profile[0] not in VARIANTS:
        p.error(f"--profile VARIANT must be one of {', '.join(VARIANTS)}")
    args.pinning = Pinning.choose()
    return args


def main() -> None:
    args = parse_args()
    server, url = start_canned(args.tokens, args.pinning.server_cpu)
    try:
        if args.profile:
            profile(url, args)
            return
        print(f"{time.strftime('%Y-%m-%d %H:%M')}  {platform.node()}  {psutil.cpu_count()} CPUs"
              f"  python {platform.python_version()}  -u {args.users}  -t {args.seconds}s  "
              f"rounds {args.rounds}  server on CPU {args.pinning.server_cpu}, locust on CPU "
              f"{args.pinning.locust_cpu}", flush=True)  # fmt: skip
        results = []
        for r in range(args.rounds):
            order = VARIANTS[r % 3 :] + VARIANTS[: r % 3]  # each variant first in turn
            got = {v: run_once(v, url, args) for v in order}
            results += [got[v] for v in VARIANTS]
            figures = (f"{v} {got[v].cpu_us_per_request:.1f} us/req" for v in VARIANTS)
            print(f"  round {r + 1}: " + ", ".join(figures), flush=True)
        ok = report(results, args.rounds)
    finally:
        server.terminate()
        server.wait(10)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
