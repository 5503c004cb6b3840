"""The end-of-run terminal summary: the same exact numbers as the HTML report's tables
(``reports.summarize_run``), as a few lines of text; and the warnings about the load
generator's own timings (saturated, disturbed)."""

from __future__ import annotations

import math
from typing import Any

from reports import RunSummary
from sla.files.run import disturbance_reasons
from sla.spec import LATENCY_METRICS


def format_summary(run_dir: str, s: RunSummary) -> str:
    lines = [f"slabench run: {run_dir}"]
    rates = (
        f"  |  {s.requests_per_s:.2f} req/s  {s.output_tokens_per_s:.1f} output tok/s"
        if s.window_s
        else ""
    )
    lines.append(f"  requests {s.measured}  ok {s.ok}  errors {s.failed}{rates}")
    lines.append(reconciliation(s))
    lines.append(f"  {'metric':<16}{'p50':>12}{'p90':>12}{'p99':>12}{'n':>9}")
    for m in s.metrics:
        if m.metric in LATENCY_METRICS and m.n and not math.isnan(m.p50):
            lines.append(f"  {m.metric:<16}{m.p50:>12.2f}{m.p90:>12.2f}{m.p99:>12.2f}{m.n:>9}")
    lines += [f"  error x{e.count}: {e.reason}" for e in s.errors[:5]]
    return "\n".join(lines)


def reconciliation(s: RunSummary) -> str:
    """One line: every recorded row in exactly one category, and run.json's count beside."""
    parts = [f"measured {s.measured}", f"warm-up {s.warmup}", f"cancelled {s.cancelled}"]
    parts.append(f"after the end {s.late}")
    if s.unstarted:
        parts.append(f"without a start {s.unstarted}")
    line = f"  recorded {s.recorded} = " + " + ".join(parts)
    if s.accounted != s.recorded:
        line += f" (= {s.accounted}: DOES NOT ADD UP)"
    if s.run_json_requests is not None:
        agree = "" if s.run_json_requests == s.recorded else " DISAGREES"
        line += f"; run.json requests {s.run_json_requests}{agree}"
    if s.dropped:
        line += f"; {s.dropped} dropped sends are failed rows among these"
    return line


def generator_warnings(generator: Any) -> list[str]:
    """What makes the load generator's timings untrustworthy (run.json ``generator``)."""
    out = []
    if isinstance(generator, dict) and generator.get("saturated"):
        out.append(
            "the load generator was saturated (CPU >= 90% of a core for much of the run); "
            "its latencies are not trustworthy. Use --processes or less load."
        )
    out += [
        f"the load generator was disturbed: {reason}. Its timestamps were late by as much, "
        "so its latencies are not trustworthy: re-run on a quieter machine."
        for reason in disturbance_reasons(generator)
    ]
    return out
