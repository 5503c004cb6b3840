"""What multi-turn sessions cost the load generator (a script, not a test).

The CPU time one Locust process spends per request with slabench's sessions scenario
(``--turns fixed:10``: every turn resends the history, the reply is appended) against the
single-turn chat scenario sending the same messages, both streaming 16-token answers from
``benchmarks/canned_server.py`` (pre-rendered bytes, so the server costs little). A third
variant, sessions with ``--turns fixed:1``, separates the sessions machinery from the
history itself. Variants alternate within each round; the server and Locust are pinned to
different cores (``benchmarks.locust_overhead``'s sampling and counting).

    .venv/bin/python -m benchmarks.session_cost [--users 16] [--seconds 10] [--rounds 3]

``us/req`` is the Locust process's user+system CPU over the counted full seconds divided
by the requests in them. Target: sessions(10 turns) <= 1.5 x single-turn chat, median over
rounds. Exit code 0 when met, 1 when not, 2 when a request failed.
"""

from __future__ import annotations

import argparse
import json
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
    CpuSampler,
    Pinning,
    machine_busy_s,
    process_cpu_s,
    start_canned,
    steady_seconds,
)
from sla.files.run import CANCELLED_ERRORS, load_run

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "loadtests" / "scenarios"
TARGET_RATIO = 1.5
VARIANTS = {
    "chat": ("chat.py", ()),
    "turns=1": ("sessions.py", ("--turns", "fixed:1")),
    "turns=10": ("sessions.py", ("--turns", "fixed:10")),
}


@dataclass(frozen=True, slots=True)
class Result:
    variant: str
    requests_per_s: float
    locust_cores: float
    other_cores: float
    mean_turn: float

    @property
    def cpu_us_per_request(self) -> float:
        return self.locust_cores / self.requests_per_s * 1e6


def run_once(variant: str, url: str, args: argparse.Namespace) -> Result:
    scenario, extra = VARIANTS[variant]
    with tempfile.TemporaryDirectory(prefix="session-cost-") as tmp:
        work = Path(tmp)
        cmd = [sys.executable, "-m", "locust", "-f", str(SCENARIOS / scenario), "--headless",
               "--only-summary", "-u", str(args.users), "-r", str(args.users),
               "-t", f"{args.seconds}s", "--host", url, "--json-file", str(work / "stats"),
               "--model", "m", "--run-dir", str(work / "run"), "--scrape-interval", "0",
               "--no-report", "--input-len", "fixed:8", "--output-len", "fixed:16",
               *extra]  # fmt: skip
        proc = subprocess.Popen(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        psutil.Process(proc.pid).cpu_affinity([args.pinning.locust_cpu])
        with CpuSampler(process_cpu_s(proc.pid)) as cpu, CpuSampler(machine_busy_s) as machine:
            _, err = proc.communicate(timeout=args.seconds + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"{variant}: locust exited {proc.returncode}: {err[-2000:]!r}")
        stats = json.loads((work / "stats.json").read_text())
        entry = next(e for e in stats if e["name"] != "Aggregated")
        first, last, count = steady_seconds(entry["num_reqs_per_sec"], args.skip_s)
        rows = load_run(work / "run").requests
        failed = rows["error"].notna() & ~rows["error"].isin(CANCELLED_ERRORS)
        if failed.any():
            example = rows["error"][failed].iloc[0]
            print(f"error: {variant}: {int(failed.sum())} failed, e.g. {example}", file=sys.stderr)
            sys.exit(2)
        turn = float(rows["turn"].mean()) if rows["turn"].notna().any() else 1.0
    window = (first, last + 1)
    locust = cpu.cores(*window)
    return Result(
        variant,
        count / (last - first + 1),
        locust,
        machine.cores(*window) - locust,
        turn,
    )


def report(results: list[Result]) -> bool:
    print(f"{'round':>5} {'variant':<9} {'req/s':>8} {'locust CPU':>10} {'us/req':>7} "
          f"{'other':>6} {'mean turn':>9}")  # fmt: skip
    n = len(VARIANTS)
    for i, r in enumerate(results):
        print(f"{i // n + 1:>5} {r.variant:<9} {r.requests_per_s:>8,.0f} "
              f"{r.locust_cores * 100:>9.0f}% {r.cpu_us_per_request:>7.1f} "
              f"{r.other_cores:>6.2f} {r.mean_turn:>9.2f}")  # fmt: skip
    rounds = [results[i : i + n] for i in range(0, len(results), n)]
    by = [{r.variant: r.cpu_us_per_request for r in rnd} for rnd in rounds]
    ten = [b["turns=10"] / b["chat"] for b in by]
    one = [b["turns=1"] / b["chat"] for b in by]
    print("turns=10 / chat CPU per request, per round: " + "  ".join(f"{x:.2f}" for x in ten))
    print("turns=1  / chat CPU per request, per round: " + "  ".join(f"{x:.2f}" for x in one))
    median = statistics.median(ten)
    ok = median <= TARGET_RATIO
    verdict = "OK" if ok else "ABOVE TARGET"
    print(f"median turns=10/chat {median:.2f} (target <= {TARGET_RATIO}): {verdict}; "
          f"turns=1/chat {statistics.median(one):.2f}")  # fmt: skip
    return ok


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--users", type=int, default=16, help="Locust -u (default 16)")
    p.add_argument("--seconds", type=int, default=10, help="Locust -t per run (default 10)")
    p.add_argument("--skip-s", type=int, default=1, help="warm-up seconds not counted")
    p.add_argument("--rounds", type=int, default=3, help="rounds of the three variants")
    args = p.parse_args()
    args.pinning = Pinning.choose()
    server, url = start_canned(16, args.pinning.server_cpu)
    try:
        print(f"{time.strftime('%Y-%m-%d %H:%M')}  {platform.node()}  {psutil.cpu_count()} CPUs"
              f"  python {platform.python_version()}  -u {args.users}  -t {args.seconds}s  "
              f"canned server on CPU {args.pinning.server_cpu}, locust on CPU "
              f"{args.pinning.locust_cpu}")  # fmt: skip
        results = []
        for _ in range(args.rounds):
            for variant in VARIANTS:
                results.append(run_once(variant, url, args))
                print(f"  {variant}: {results[-1].cpu_us_per_request:.1f} us/req", flush=True)
        ok = report(results)
    finally:
        server.terminate()
        server.wait(10)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
