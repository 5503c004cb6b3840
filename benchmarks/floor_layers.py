"""Where the CPU between the floor and slabench goes, layer by layer (a script, not a test).

The same closed-loop load (``--streams`` connections, each with one streamed 16-token chat
completion in flight) against a fresh ``benchmarks/scripted_server.py`` each, from clients
that each add one layer of what slabench does, in one invocation, the order rotating over
``--rounds``:

- ``floor``: ``benchmarks/floor_client.py`` (raw asyncio protocols, timestamps only);
- ``gevent``, ``watcher``, ``http``, ``parse``, ``monitors``, ``record``:
  ``benchmarks/layer_client.py`` (the same bytes on gevent sockets, read in the greenlet;
  the same read in the event loop's callback; slabench's transport and stream reader,
  nothing parsed; slabench's ``execute``, the record dropped; that with the generator's
  monitors running; that with every record kept in a recorder and the live state);
- ``locust``: ``parse``'s client as Locust users, each request reported to Locust's
  request event, nothing of slabench's harness (``benchmarks/locustfiles/layer_locust.py``);
- ``slabench``: one Locust process, the chat user, every request recorded (as
  ``benchmarks.floor``);
- ``before`` (with ``--before DIR``): ``slabench`` from the tree DIR (``git worktree add DIR
  REV``), for an A/B of a change with rounds, where one ``benchmarks.floor --before`` run
  is within the noise (+-10% a run on this VM).

The client process runs on CPU 0, the server on CPU 1. Printed per layer: CPU per request
(the client's CPU over the seconds from ``--skip-s`` to 1 s before the end, divided by the
requests done in them; the median over rounds), what it adds to the layer it builds on
(``BASE``: ``monitors`` and ``record`` add harness pieces to ``parse``, ``locust`` adds Locust
to ``parse``, ``slabench`` adds the whole harness to ``locust``), and its ratio to the
first layer.

    .venv/bin/python -m benchmarks.floor_layers [--streams 32] [--seconds 10] [--rounds 3]
        [--layers floor,gevent,watcher,http,parse,monitors,record,locust,slabench]
        [--before DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.floor import MIX, TOKENS
from benchmarks.locust_overhead import REPO, CpuSampler, process_cpu_s
from benchmarks.scripted_runs import ScriptedServer
from sla.files.run import load_run

LAYER_LOCUST = REPO / "benchmarks" / "locustfiles" / "layer_locust.py"
LAYERS = (
    "floor", "gevent", "watcher", "http", "parse", "monitors", "record", "locust", "slabench",
)  # fmt: skip
# What each layer adds to: ``monitors`` and ``record`` add slabench's harness pieces to
# ``parse`` without Locust, ``locust`` adds Locust alone, ``slabench`` the whole harness.
BASE = {
    "gevent": "floor", "watcher": "gevent", "http": "watcher", "parse": "http",
    "monitors": "parse", "record": "monitors", "locust": "parse", "slabench": "locust",
    "before": "slabench",
}  # fmt: skip


def command(layer: str, url: str, args: argparse.Namespace, tmp: str) -> list[str]:
    streams, seconds = str(args.streams), str(args.seconds)
    if layer == "locust":
        return [
            *(sys.executable, "-m", "locust", "-f", str(LAYER_LOCUST), "--headless"),
            *("--only-summary", "-u", streams, "-r", streams, "-t", f"{seconds}s"),
            *("--host", url),
        ]
    if layer in ("slabench", "before"):
        mix = Path(args.before) / MIX.relative_to(REPO) if layer == "before" else MIX
        return [
            *(sys.executable, "-m", "locust", "-f", str(mix), "--headless", "--only-summary"),
            *("-u", streams, "-r", streams, "-t", f"{seconds}s", "--host", url, "--model", "m"),
            *("--run-dir", f"{tmp}/run", "--input-len", "fixed:8"),
            *("--output-len", f"fixed:{TOKENS}"),
        ]
    module = "benchmarks.floor_client" if layer == "floor" else "benchmarks.layer_client"
    which = () if layer == "floor" else ("--layer", layer)
    return [
        *(sys.executable, "-m", module, *which, "--url", url, "--streams", streams),
        *("--seconds", seconds, "--tokens", str(TOKENS), "--out", f"{tmp}/out.json"),
    ]


def done_times(layer: str, tmp: str) -> tuple[list[float], list[float]]:
    """(send times, done times) of the layer's successful requests."""
    if layer in ("slabench", "before"):
        rows = load_run(Path(tmp) / "run").requests
        rows = rows[rows["error"].isna()]
        return rows["sent_at"].tolist(), rows["done_at"].tolist()
    records = json.loads(Path(f"{tmp}/out.json").read_text())
    if layer == "locust":
        records = [r for r in records if r[1] == r[1]]  # done_at NaN: failed
    if layer == "floor":  # [port, sent, first, done, reads]
        return [r[1] for r in records], [r[3] for r in records]
    return [r[0] for r in records], [r[1] for r in records]


def cpu_per_request(layer: str, args: argparse.Namespace) -> float:
    tree = args.before if layer == "before" else str(REPO)
    env = {**os.environ, "SLABENCH_BENCH_MEASURED_USERS": str(args.streams),
           "SLABENCH_BENCH_STAGGER_S": "0.008", "PYTHONPATH": tree}  # fmt: skip
    flags = ("--ttft-ms", "50", "--itl-ms", "10", "--tokens", str(TOKENS))
    with tempfile.TemporaryDirectory(prefix="layers-") as tmp, ScriptedServer(*flags) as server:
        env["SLABENCH_BENCH_LAYER_OUT"] = f"{tmp}/out.json"  # the locust layer's records
        os.sched_setaffinity(server.pid, {1})
        cmd = command(layer, server.url, args, tmp)
        proc = subprocess.Popen(
            cmd, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        os.sched_setaffinity(proc.pid, {0})
        with CpuSampler(process_cpu_s(proc.pid)) as cpu:
            _, err = proc.communicate(timeout=args.seconds + 180)
        if proc.returncode != 0:
            raise SystemExit(f"{layer}: exited {proc.returncode}: {err[-2000:]}")
        sent, done = done_times(layer, tmp)
    start, end = min(sent) + args.skip_s, max(done) - 1.0
    n = sum(1 for d in done if start <= d <= end)
    return cpu.cores(start, end) * (end - start) / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--streams", type=int, default=32)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--skip-s", type=float, default=3.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--layers", default=",".join(LAYERS), help="which, in this order")
    p.add_argument("--before", metavar="DIR", help="also the layer 'before': DIR's slabench")
    args = p.parse_args()
    layers = tuple(args.layers.split(","))
    if args.before and "before" not in layers:
        layers += ("before",)
    unknown = set(layers) - {*LAYERS, "before"}
    if unknown or ("before" in layers and not args.before):
        raise SystemExit(f"--layers: unknown {sorted(unknown)} (or 'before' without --before)")
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs 2 CPUs: the client on one, the server on the other")
    per: dict[str, list[float]] = {layer: [] for layer in layers}
    for r in range(args.rounds):
        order = layers[r % len(layers) :] + layers[: r % len(layers)]
        for layer in order:
            per[layer].append(cpu_per_request(layer, args))
            print(f"  round {r + 1} {layer}: {per[layer][-1]:.0f} us/req", flush=True)
    print(f"{args.streams} streams, {args.seconds} s a run, median of {args.rounds} rounds")
    first = layers[0]
    print(f"{'layer':<9} {'CPU/req us':>10} {'adds us':>8} {'to':<9} {'x ' + first:>10}")
    base = statistics.median(per[first])
    medians = {layer: statistics.median(values) for layer, values in per.items()}
    for i, layer in enumerate(layers):
        mid = medians[layer]
        to = BASE.get(layer) if BASE.get(layer) in medians else (layers[i - 1] if i else None)
        adds = "" if to is None else f"{mid - medians[to]:+8.0f}"
        print(f"{layer:<9} {mid:>10.0f} {adds:>8} {to or '':<9} {mid / base:>10.2f}")
    if "before" in per and "slabench" in per:
        diffs = [a - b for a, b in zip(per["slabench"], per["before"], strict=True)]
        rounds = " ".join(f"{d:+.0f}" for d in diffs)
        mid = statistics.median(diffs)
        print(f"slabench - before, round by round: {rounds} us (median {mid:+.0f})")


if __name__ == "__main__":
    main()
