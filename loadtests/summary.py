"""The end-of-run terminal summary, computed from the run directory's exact records."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from sla.metrics import itl_ms, measured, measured_window_s, throughput, with_request_metrics
from sla.records import load_run

_METRICS = ("ttft_ms", "itl_ms", "tpot_ms", "latency_ms", "schedule_lag_ms")


def summarize(run_dir: str) -> dict[str, Any]:
    run = load_run(run_dir)
    df = measured(with_request_metrics(run.requests), run.meta)
    ok = df[df["ok"]]
    out: dict[str, Any] = {"requests": len(df), "ok": len(ok), "errors": len(df) - len(ok)}
    window = measured_window_s(run.meta)
    if window > 0:
        out.update(throughput(df, window))
    values = {m: ok[m].to_numpy(dtype=float) for m in _METRICS if m != "itl_ms"}
    values["itl_ms"] = itl_ms(df)
    for name, arr in values.items():
        arr = arr[~np.isnan(arr)]
        if arr.size:
            out[name] = {
                p: float(np.percentile(arr, q)) for p, q in (("p50", 50), ("p90", 90), ("p99", 99))
            }
            out[name]["n"] = int(arr.size)
    reasons = Counter(e for e in df["error"].dropna())
    out["top_errors"] = reasons.most_common(5)
    return out


def format_summary(run_dir: str, s: dict[str, Any]) -> str:
    lines = [f"slabench run: {run_dir}"]
    lines.append(
        f"  requests {s['requests']}  ok {s['ok']}  errors {s['errors']}"
        + (
            f"  |  {s['requests_per_s']:.2f} req/s  {s['output_tokens_per_s']:.1f} output tok/s"
            if "requests_per_s" in s
            else ""
        )
    )
    lines.append(f"  {'metric':<16}{'p50':>12}{'p90':>12}{'p99':>12}{'n':>9}")
    for name in _METRICS:
        if name in s:
            m = s[name]
            lines.append(
                f"  {name:<16}{m['p50']:>12.2f}{m['p90']:>12.2f}{m['p99']:>12.2f}{m['n']:>9}"
            )
    for reason, count in s["top_errors"]:
        lines.append(f"  error x{count}: {reason}")
    return "\n".join(lines)
