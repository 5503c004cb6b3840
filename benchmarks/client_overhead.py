"""Client overhead on the bundled server: the latency the server does not account for.

Streaming chat users (Locust, slabench's chat scenario, no ``--host``: the bundled
reference server) at 16 and then 64 users for ``--seconds`` each; per phase, over the
successful measured requests whose server told its timings: p50 and p99 of
``client_overhead_ms`` (send to done minus the server's ``total_ms``: network, HTTP and the
load generator), of the server's parts, of ``client_processing_ms`` (the load generator's
own time after the last byte) and run.json's ``calibration``. It needs a server that tells
its timings (the reference server's ``timings`` object); without them it says so and exits 2.

With ``--accuracy`` it then runs ``benchmarks.measurement_accuracy`` (the generator's
timing error against a server that knows the true send times) and prints it after, as the
ground truth to read these figures against.

    .venv/bin/python -m benchmarks.client_overhead [--seconds 20] [--accuracy]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from sla.files.run import load_run
from sla.reading import read_run

REPO_ROOT = Path(__file__).resolve().parents[1]
USERS = (16, 64)
_COLUMNS = (
    "client_overhead_ms",
    "server_queue_ms",
    "server_prefill_ms",
    "server_decode_ms",
    "server_total_ms",
    "client_processing_ms",
    "latency_ms",
)


def run_phase(users: int, seconds: float, work: Path) -> Path:
    run_dir = work / f"u{users}"
    cmd = [
        sys.executable, "-m", "locust", "-f", str(REPO_ROOT / "loadtests/scenarios/chat.py"),
        "--headless", "-u", str(users), "-r", str(users), "-t", f"{seconds:g}s",
        "--run-dir", str(run_dir), "--warmup", "2s", "--output-len", "fixed:32",
    ]  # fmt: skip
    subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=seconds + 180)
    if not (run_dir / "run.json").exists():
        raise SystemExit(f"locust wrote no run directory for -u {users}")
    return run_dir


def summarize(run_dir: Path) -> dict[str, object]:
    reading = read_run(load_run(run_dir))
    rows = reading.measured_ok
    told = rows[rows["server_timing_source"].notna().to_numpy(dtype=bool)]
    out: dict[str, object] = {"requests": len(rows), "told": len(told)}
    for column in _COLUMNS:
        values = told[column].to_numpy(dtype=np.float64)
        values = values[np.isfinite(values)]
        if len(values):
            p50, p99 = np.percentile(values, [50, 99])
            out[column] = f"p50 {p50:.3f}  p99 {p99:.3f}"
    out["calibration"] = reading.meta.get("calibration")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--accuracy", action="store_true", help="then run measurement_accuracy")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for users in USERS:
            figures = summarize(run_phase(users, args.seconds, Path(tmp)))
            print(f"== {users} streams")
            for key, value in figures.items():
                shown = json.dumps(value) if isinstance(value, dict) else value
                print(f"  {key:<22}{shown}")
            if not figures["requests"]:
                print("no successful measured request: give it more --seconds")
                raise SystemExit(2)
            if not figures["told"]:
                print("the server told no timings: it needs the reference server's timings")
                raise SystemExit(2)
    if args.accuracy:
        print("== ground truth: benchmarks.measurement_accuracy", flush=True)
        cmd = [sys.executable, "-m", "benchmarks.measurement_accuracy"]
        subprocess.run(cmd, cwd=REPO_ROOT, check=False)


if __name__ == "__main__":
    main()
