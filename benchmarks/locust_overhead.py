"""What our instrumentation costs the load generator (a script, not a test).

Requests/s that ONE Locust process sustains with slabench's streaming chat user (16-token SSE
answers, every request timed and recorded) against Locust's plain ``FastHttpUser`` sending
the same chat request non-streamed (``benchmarks/locustfiles/plain_fasthttp.py``, Locust's
own statistics only). Both run against ``benchmarks/canned_server.py``, which answers from
pre-rendered bytes, alternating ours/plain/ours/plain with the same ``-u`` and duration; the
server and Locust are pinned to different cores.

    .venv/bin/python -m benchmarks.locust_overhead [--users 16] [--seconds 10] [--rounds 4]
    .venv/bin/python -m benchmarks.locust_overhead --profile /tmp/ours.prof   # cProfile, ours

req/s counts the full seconds of Locust's per-second request counts after ``--skip-s`` of
warm-up and before the last (partial) second. ``locust CPU`` is the Locust process's
user+system time over those same seconds, in % of one core; ``us/req`` is that CPU time per
request, the figure least disturbed by other jobs on a shared machine (Locust below 100%
means something else had its core part of the time); ``other`` is the cores everything else
on the machine kept busy meanwhile. Target: ours >= 0.75 x plain (median over rounds).
Exit code 0 when the median req/s ratio meets it, 1 when not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from sla.files.run import CANCELLED_ERRORS, load_run

REPO = Path(__file__).resolve().parents[1]
OURS = REPO / "loadtests" / "scenarios" / "chat.py"
PLAIN = REPO / "benchmarks" / "locustfiles" / "plain_fasthttp.py"
TARGET_RATIO = 0.75
_READY = re.compile(r"ready at (http://[\d.]+:\d+)")
_POLL_S = 0.1


@dataclass(frozen=True, slots=True)
class Pinning:
    server_cpu: int
    locust_cpu: int

    @classmethod
    def choose(cls) -> Pinning:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            raise SystemExit("needs two CPUs: the server and Locust must not share one")
        return cls(server_cpu=cpus[-1], locust_cpu=cpus[0])


@dataclass(frozen=True, slots=True)
class Result:
    variant: str
    requests_per_s: float
    locust_cpu_pct: float  # of one core, over the counted seconds
    server_cpu_pct: float
    other_cores: float  # everything else on the machine
    failures: int

    @property
    def cpu_us_per_request(self) -> float:
        return self.locust_cpu_pct / 100.0 / self.requests_per_s * 1e6


def process_cpu_s(pid: int) -> Callable[[], float]:
    proc = psutil.Process(pid)

    def read() -> float:
        cpu = proc.cpu_times()
        return float(cpu.user + cpu.system)

    return read


def machine_busy_s() -> float:
    cpu = psutil.cpu_times()
    return float(sum(cpu) - cpu.idle - getattr(cpu, "iowait", 0.0))


class CpuSampler:
    """Samples cumulative CPU seconds (``read``) with wall timestamps, in a thread."""

    def __init__(self, read: Callable[[], float]) -> None:
        self._read = read
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.time(), self._read()))
            except psutil.Error:  # the process has exited
                return
            self._stop.wait(_POLL_S)

    def cores(self, start: float, end: float) -> float:
        """Mean cores busy between the samples nearest inside ``start`` .. ``end``."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return float("nan")
        (t0, c0), (t1, c1) = inside[0], inside[-1]
        return (c1 - c0) / (t1 - t0)


def start_canned(tokens: int, cpu: int) -> tuple[subprocess.Popen[str], str]:
    """The canned server on ``cpu``; returns the process and its URL."""
    cmd = [sys.executable, "-m", "benchmarks.canned_server", "--tokens", str(tokens)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
    os.sched_setaffinity(proc.pid, {cpu})
    assert proc.stdout is not None
    match = _READY.search(proc.stdout.readline())
    if match is None:
        proc.kill()
        raise RuntimeError("the canned server did not start")
    return proc, match.group(1)


def locust_command(variant: str, url: str, users: int, seconds: int, work: Path) -> list[str]:
    cmd = [sys.executable, "-m", "locust", "-f", str(OURS if variant == "ours" else PLAIN),
           "--headless", "--only-summary", "-u", str(users), "-r", str(users), "-t",
           f"{seconds}s", "--host", url, "--json-file", str(work / "stats")]  # fmt: skip
    if variant == "ours":
        cmd += ["--model", "m", "--run-dir", str(work / "run"), "--scrape-interval", "0",
                "--input-len", "fixed:8", "--output-len", "fixed:16"]  # fmt: skip
    return cmd


def steady_seconds(per_second: dict[str, int], skip_s: int) -> tuple[int, int, int]:
    """(first second, last second, requests) of the counted window: full seconds only."""
    seconds = sorted(int(s) for s in per_second)
    first, last = seconds[0] + 1 + skip_s, seconds[-1] - 1  # the edges are partial seconds
    if last < first:
        raise RuntimeError("too short a run to count full seconds: raise --seconds")
    count = sum(n for s, n in per_second.items() if first <= int(s) <= last)
    return first, last, count


def run_once(variant: str, url: str, args: argparse.Namespace, server_pid: int) -> Result:
    """One Locust run of ``variant`` (ours or plain) against the canned server at ``url``."""
    with tempfile.TemporaryDirectory(prefix=f"overhead-{variant}-") as tmp:
        work = Path(tmp)
        cmd = locust_command(variant, url, args.users, args.seconds, work)
        proc = subprocess.Popen(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.sched_setaffinity(proc.pid, {args.pinning.locust_cpu})
        with (
            CpuSampler(process_cpu_s(proc.pid)) as locust_cpu,
            CpuSampler(process_cpu_s(server_pid)) as server_cpu,
            CpuSampler(machine_busy_s) as machine,
        ):
            _, err = proc.communicate(timeout=args.seconds + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"{variant}: locust exited {proc.returncode}: {err[-2000:]!r}")
        stats = json.loads((work / "stats.json").read_text())
        entry = next(e for e in stats if e["name"] != "Aggregated")
        first, last, count = steady_seconds(entry["num_reqs_per_sec"], args.skip_s)
        failures = int(entry["num_failures"])
        if variant == "ours":  # every recorded request, not only Locust's view of them
            rows = load_run(work / "run").requests
            failures += int(
                rows["error"].notna().sum() - rows["error"].isin(CANCELLED_ERRORS).sum()
            )
    window = (first, last + 1)
    locust, server = locust_cpu.cores(*window), server_cpu.cores(*window)
    return Result(
        variant,
        count / (last - first + 1),
        locust * 100.0,
        server * 100.0,
        machine.cores(*window) - locust - server,
        failures,
    )


def profile(url: str, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="overhead-profile-") as tmp:
        cmd = locust_command("ours", url, args.users, args.seconds, Path(tmp))
        cmd[1:1] = ["-m", "cProfile", "-o", str(Path(args.profile).resolve())]
        proc = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL)
        os.sched_setaffinity(proc.pid, {args.pinning.locust_cpu})
        proc.wait()
    import pstats

    pstats.Stats(args.profile).sort_stats("tottime").print_stats(30)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--users", type=int, default=16, help="Locust -u for both (default 16)")
    p.add_argument("--seconds", type=int, default=10, help="Locust -t per run (default 10)")
    p.add_argument("--skip-s", type=int, default=1, help="warm-up seconds not counted")
    p.add_argument("--rounds", type=int, default=4, help="ours/plain pairs (default 4)")
    p.add_argument("--tokens", type=int, default=16, help="tokens per streamed answer")
    p.add_argument("--profile", metavar="FILE", help="instead: one cProfile'd run of ours")
    args = p.parse_args()
    args.pinning = Pinning.choose()
    return args


def report(results: list[Result]) -> bool:
    """Prints the table and the ratios; True when the target is met."""
    print(f"{'run':>3} {'variant':<7} {'req/s':>8} {'locust CPU':>10} {'us/req':>7} "
          f"{'server CPU':>10} {'other':>6} {'fails':>5}")  # fmt: skip
    for i, r in enumerate(results, 1):
        print(f"{i:>3} {r.variant:<7} {r.requests_per_s:>8,.0f} {r.locust_cpu_pct:>9.0f}% "
              f"{r.cpu_us_per_request:>7.1f} {r.server_cpu_pct:>9.0f}% "
              f"{r.other_cores:>6.2f} {r.failures:>5}")  # fmt: skip
    pairs = list(zip(results[::2], results[1::2], strict=True))
    rate = [o.requests_per_s / p.requests_per_s for o, p in pairs]
    cpu = [p.cpu_us_per_request / o.cpu_us_per_request for o, p in pairs]
    print("ours/plain req/s, per round:           " + "  ".join(f"{x:.2f}" for x in rate))
    print("plain/ours CPU per request, per round: " + "  ".join(f"{x:.2f}" for x in cpu))
    median = statistics.median(rate)
    ok = median >= TARGET_RATIO
    print(f"median req/s ratio {median:.2f} (target >= {TARGET_RATIO}): "
          f"{'OK' if ok else 'BELOW TARGET'}; median CPU-per-request ratio "
          f"{statistics.median(cpu):.2f}")  # fmt: skip
    if any(r.failures for r in results):
        raise SystemExit("some requests failed: the figures mean nothing")
    return ok


def main() -> None:
    args = parse_args()
    server, url = start_canned(args.tokens, args.pinning.server_cpu)
    try:
        if args.profile:
            profile(url, args)
            return
        print(f"{time.strftime('%Y-%m-%d %H:%M')}  {platform.node()}  "
              f"{psutil.cpu_count()} CPUs  python {platform.python_version()}  -u {args.users}  "
              f"-t {args.seconds}s  server on CPU {args.pinning.server_cpu}, locust on CPU "
              f"{args.pinning.locust_cpu}")  # fmt: skip
        results = []
        for _ in range(args.rounds):
            for variant in ("ours", "plain"):
                results.append(run_once(variant, url, args, server.pid))
                print(f"  {variant}: {results[-1].requests_per_s:,.0f} req/s", flush=True)
        ok = report(results)
    finally:
        server.terminate()
        server.wait(10)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
