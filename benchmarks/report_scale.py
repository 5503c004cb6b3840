"""Time ``python -m reports`` on a run of a million requests (a script, not a test).

    .venv/bin/python benchmarks/report_scale.py [--requests 1000000] [--gaps 16] [--keep DIR]

Writes a synthetic run directory the way the load generator does (``RequestRecorder`` plus
``start_run_json``/``finish_run_json``): streamed requests with ``--gaps`` chunk gaps each, two
endpoints, 1% errors of three kinds, a latency build-up in the middle of the run, a warm-up,
and scraped server metrics. Then runs ``python -m reports RUN_DIR`` as a user would and
prints its wall time and the size of ``report.html`` (targets: < 20 s, < 15 MB), followed by
an in-process breakdown of where the time goes.
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from loadtests.recording.recorder import RequestRecorder, finish_run_json, start_run_json

_T0 = 1_764_400_000.0
_CHUNK = 20_000
_TARGET_S = 20.0
_TARGET_MB = 15.0
_ERRORS = ("HTTP 503: queue full", "timeout: no byte for 30 s", "HTTP 500: CUDA out of memory")


def write_run(run_dir: Path, n_requests: int, gaps: int, rate_rps: float) -> None:
    duration_s = n_requests / rate_rps
    start_run_json(
        run_dir,
        {
            "status": "running",
            "scenario": "chat",
            "target_url": "http://10.0.0.7:8000",
            "load_profile": {"mode": "open", "arrival": "poisson", "arrival_rate_rps": rate_rps},
            "started_at": _T0,
            "measured_from": _T0 + 0.05 * duration_s,
            "versions": {"python": sys.version.split()[0], "slabench": "benchmark"},
            "command": "benchmarks/report_scale.py",
        },
    )
    recorder = RequestRecorder(run_dir, flush_rows=_CHUNK)
    rng = np.random.default_rng(11)
    for first in range(0, n_requests, _CHUNK):
        n = min(_CHUNK, n_requests - first)
        recorder.add_rows(_rows(rng, first, n, gaps, duration_s / n_requests, duration_s))
    count = recorder.close()
    finish_run_json(
        run_dir,
        {
            "status": "complete",
            "ended_at": _T0 + duration_s,
            "requests": count,
            "dropped": 0,
            "generator": {"saturated": False},
        },
    )
    _server_metrics(duration_s).to_parquet(run_dir / "server_metrics.parquet")


def _rows(
    rng: np.random.Generator, first: int, n: int, gaps: int, spacing_s: float, duration_s: float
) -> list[tuple[object, ...]]:
    scheduled = _T0 + (np.arange(first, first + n) + rng.uniform(0.0, 1.0, n)) * spacing_s
    phase = (scheduled - _T0) / duration_s
    slow = 1.0 + 3.0 * np.exp(-(((phase - 0.6) / 0.05) ** 2))  # a queueing build-up at 60%
    sent = scheduled + rng.exponential(0.0005, n)
    ttft = rng.lognormal(np.log(0.08), 0.4, n) * slow
    gap_ms = rng.gamma(4.0, 5.0, (n, gaps)) * slow[:, None]
    first_token = sent + ttft
    done = first_token + gap_ms.sum(axis=1) / 1000.0
    failed = rng.random(n) < 0.01
    kind = rng.integers(0, len(_ERRORS), n)
    endpoints = np.where(rng.random(n) < 0.8, "chat", "completions")
    gap_lists = gap_ms.tolist()
    rows: list[tuple[object, ...]] = []
    for i in range(n):
        error = _ERRORS[kind[i]] if failed[i] else None
        status = 200 if error is None else (0 if kind[i] == 1 else 500 + 3 * (kind[i] == 0))
        rows.append(
            (
                f"w0-{first + i}",
                "w0",
                endpoints[i],
                scheduled[i],
                sent[i],
                np.nan if error else first_token[i],
                done[i],
                status,
                error,
                128,
                None if error else gaps + 1,
                None if error else "usage",
                0 if error else gaps + 1,
                [] if error else gap_lists[i],
            )
        )
    return rows


def _server_metrics(duration_s: float) -> pd.DataFrame:
    at = _T0 + np.arange(0.0, duration_s, 1.0)
    phase = (at - _T0) / duration_s
    queue = 40.0 * np.exp(-(((phase - 0.6) / 0.05) ** 2))
    frames = [
        pd.DataFrame({"scraped_at": at, "name": name, "labels": "", "value": value})
        for name, value in (
            ("slabench_waiting_sequences", queue),
            ("slabench_running_sequences", np.full_like(at, 32.0)),
            ("slabench_generation_tokens_total", np.cumsum(np.full_like(at, 17_000.0))),
        )
    ]
    return pd.concat(frames, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--gaps", type=int, default=16)
    parser.add_argument("--rate", type=float, default=1000.0, help="requests per second")
    parser.add_argument("--keep", type=Path, help="write the run here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.keep or Path(tmp) / "run"
        t0 = time.perf_counter()
        write_run(run_dir, args.requests, args.gaps, args.rate)
        print(
            f"synthetic run: {args.requests:,} requests x {args.gaps} gaps written in "
            f"{time.perf_counter() - t0:.1f} s to {run_dir}"
        )
        t1 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "reports", str(run_dir)], capture_output=True, text=True
        )
        wall_s = time.perf_counter() - t1
        if proc.returncode != 0:
            sys.exit(f"python -m reports failed ({proc.returncode}): {proc.stderr.strip()}")
        size_mb = (run_dir / "report.html").stat().st_size / 1e6
        ok = "OK" if wall_s < _TARGET_S and size_mb < _TARGET_MB else "OVER TARGET"
        print(
            f"python -m reports: {wall_s:.1f} s wall (target < {_TARGET_S:g} s), "
            f"report.html {size_mb:.2f} MB (target < {_TARGET_MB:g} MB): {ok}"
        )
        _breakdown(run_dir)


def _breakdown(run_dir: Path) -> None:
    from dashboards import build_panels
    from reports.html import figure_slots, page
    from reports.summary import summarize_run
    from sla.files.run import load_run
    from sla.files.verdict import load_verdict

    marks = [("start", time.perf_counter())]
    run = load_run(run_dir)
    marks.append(("load_run", time.perf_counter()))
    summarize_run(run)
    marks.append(("summarize_run (exact tables)", time.perf_counter()))
    panels = build_panels(run, load_verdict(run_dir))
    marks.append((f"build_panels ({len(panels)} figures)", time.perf_counter()))
    slots, figures_json = figure_slots(panels)
    marks.append(("figure JSON", time.perf_counter()))
    page("x", slots, figures_json)
    marks.append(("page", time.perf_counter()))
    print("in-process breakdown:")
    for (_, before), (name, after) in itertools.pairwise(marks):
        print(f"  {name:<32}{after - before:6.2f} s")
    print(f"  figure JSON {len(figures_json) / 1e6:.2f} MB in all; largest panels:")
    sizes = sorted(((len(figure_slots([p])[1]), p.key) for p in panels), reverse=True)[:3]
    for size, key in sizes:
        print(f"    {key:<30}{size / 1e6:6.2f} MB")


if __name__ == "__main__":
    main()
