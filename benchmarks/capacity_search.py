"""Wall time of the capacity search against a linear sweep that reaches the same precision
(a script, not a test).

Both drive the same reference server (KServe V2 on the small MLP) through the same
scenario, SLA, step length and warm-up, one locust per step:

- **search**: ``locust ... --capacity-search --search-start S --search-precision P``:
  widen x2 until the SLA fails, then bisect until the lowest FAIL is within P of the highest
  PASS (bisection steps run longer when the SLA needs more samples);
- **linear**: rates D, 2D, 3D, ... with D = P x the capacity, each a plain locust run with
  ``--arrival-rate`` judged with ``--sla``, until the first FAIL: the coarsest grid with the
  same precision at the capacity (a real grid does not know the capacity, so it would need a
  finer D or more steps: this is the linear sweep's best case).

By default the server has a known capacity (``--fault-capacity-rps 40``: a FIFO with a
1/40 s service time), so the answer each method gives can be checked; ``--capacity-rps 0``
searches the small MLP's real capacity instead (D then comes from the search's answer).

    .venv/bin/python -m benchmarks.capacity_search [--capacity-rps 40] [--precision 0.05]

Prints both commands, a table (steps, wall time, capacity found, bracket) and the ratio of
wall times. Exit code 0 when the search took less wall time than the linear sweep and both
found the same capacity within the precision, 1 otherwise, 2 when a run failed.
"""

from __future__ import annotations

import argparse
import math
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._harness import TINY_EMBED, TINY_LM, start_server
from sla.files.capacity import load_capacity

SCENARIO = Path(__file__).resolve().parents[1] / "loadtests" / "scenarios" / "kserve.py"
MLP = ("--mlp-hidden", "128", "--mlp-layers", "2", "--mlp-in-features", "16")
SPEC = """name: capacity-benchmark
confidence: 0.90
objectives:
  - {metric: latency_ms, stat: p90, max: 100}
  - {metric: error_rate, max: 5%}
"""


def main() -> int:
    args = _parser().parse_args()
    server_args = [*TINY_LM, *TINY_EMBED, *MLP, "--torch-threads", "1"]
    if args.capacity_rps > 0:
        server_args += ["--fault-capacity-rps", f"{args.capacity_rps:g}"]
    print(f"== capacity search vs linear sweep  ({time.strftime('%Y-%m-%d %H:%M')})")
    print(f"command: .venv/bin/python -m benchmarks.capacity_search {shlex.join(sys.argv[1:])}")
    print(f"server: python -m reference_server {shlex.join(server_args)}")
    server = start_server(server_args)
    if server is None:
        return 2
    try:
        return _compare(args, server.url)
    finally:
        server.stop()


def _compare(args: argparse.Namespace, url: str) -> int:
    with tempfile.TemporaryDirectory(prefix="slabench-capacity-") as tmp:
        work = Path(tmp)
        spec = work / "spec.yaml"
        spec.write_text(SPEC)
        common = [
            *("-f", str(SCENARIO), "--headless", "--host", url),
            *("--kserve-shape", "1,16", "--model", "slabench-mlp", "--arrival", "constant"),
            *("--sla", str(spec), "--no-report"),
        ]
        try:
            search = _search(args, common, work / "search")
            true_capacity = args.capacity_rps or search["capacity"]
            linear = _linear(args, common, work / "linear", args.precision * true_capacity)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return _summary(args, search, linear)


def _search(args: argparse.Namespace, common: list[str], sweep: Path) -> dict[str, float]:
    cmd = [
        *common,
        *("--capacity-search", "--search-start", f"{args.start:g}"),
        *("--search-precision", f"{args.precision:g}", "--run-dir", str(sweep)),
        *("--step-time", f"{args.step_s:g}s", "--step-warmup", f"{args.warmup_s:g}s"),
    ]
    print(f"search: locust {shlex.join(cmd)}", flush=True)
    t0 = time.monotonic()
    code = _locust(cmd)
    wall_s = time.monotonic() - t0
    if code != 0:
        raise RuntimeError(f"the capacity search exited {code}")
    result = load_capacity(sweep)
    for step in result.steps:
        print(f"  search step {step.step:2d} {step.phase:7s} {step.load:8g} req/s  {step.status}")
    if result.capacity is None or result.lowest_fail is None:
        raise RuntimeError(f"the capacity search found no bracket: {result.message}")
    return {
        "steps": len(result.steps),
        "wall_s": wall_s,
        "capacity": result.capacity.load,
        "fail": result.lowest_fail.load,
    }


def _linear(
    args: argparse.Namespace, common: list[str], root: Path, delta: float
) -> dict[str, float]:
    run_s = math.ceil(args.warmup_s + args.step_s)
    print(f"linear: rates {delta:g}, {2 * delta:g}, ... req/s, each a locust run:", flush=True)
    t0 = time.monotonic()
    passed, k = 0.0, 0
    while True:
        k += 1
        rate = round(k * delta, 6)
        cmd = [
            *common,
            *("--arrival-rate", f"{rate:g}", "-u", "1", "-r", "1", "-t", f"{run_s}s"),
            *("--warmup", f"{args.warmup_s:g}s", "--run-dir", str(root / f"step-{k:02d}")),
        ]
        if k == 1:
            print(f"  locust {shlex.join(cmd)}")
        code = _locust(cmd)
        status = {0: "PASS", 1: "FAIL", 3: "INCONCLUSIVE"}.get(code)
        if status is None:
            raise RuntimeError(f"linear step at {rate:g} req/s exited {code}")
        print(f"  linear step {k:2d} {rate:8g} req/s  {status}", flush=True)
        if status == "FAIL":
            break
        if status == "PASS":
            passed = rate
        if k > 10 / args.precision:
            raise RuntimeError("the linear sweep never failed the SLA")
    return {"steps": k, "wall_s": time.monotonic() - t0, "capacity": passed, "fail": rate}


def _locust(cmd: list[str]) -> int:
    proc = subprocess.run(
        [sys.executable, "-m", "locust", *cmd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return proc.returncode


def _summary(args: argparse.Namespace, search: dict[str, float], linear: dict[str, float]) -> int:
    print()
    print(f"{'method':>8}  {'steps':>5}  {'wall s':>7}  {'capacity':>9}  {'lowest fail':>11}  gap")
    for name, r in (("search", search), ("linear", linear)):
        gap = r["fail"] / r["capacity"] - 1 if r["capacity"] else math.inf
        print(
            f"{name:>8}  {r['steps']:5.0f}  {r['wall_s']:7.1f}  {r['capacity']:9g}  "
            f"{r['fail']:11g}  {gap:.1%}"
        )
    ratio = linear["wall_s"] / search["wall_s"]
    agree = abs(search["capacity"] - linear["capacity"]) <= 1.5 * args.precision * max(
        search["capacity"], linear["capacity"]
    )
    print(f"\nwall time linear / search: {ratio:.2f}x; capacities agree: {agree}")
    if args.capacity_rps:
        err = search["capacity"] / args.capacity_rps - 1
        print(f"search capacity vs the server's configured {args.capacity_rps:g} req/s: {err:+.1%}")
    return 0 if ratio > 1 and agree else 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--capacity-rps", type=float, default=40.0, help="0 = the model's own")
    p.add_argument("--precision", type=float, default=0.05, help="relative, e.g. 0.05")
    p.add_argument("--start", type=float, default=5.0, help="the search's first rate")
    p.add_argument("--step-s", type=float, default=3.0, help="measured seconds per step")
    p.add_argument("--warmup-s", type=float, default=1.0, help="warm-up seconds per step")
    return p


if __name__ == "__main__":
    sys.exit(main())
