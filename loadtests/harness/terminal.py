"""The end-of-run terminal summary: the same exact numbers as the HTML report's tables
(``reports.summarize_run``), as a few lines of text; the timing error the load generator's
loop lag implies; and the warnings about its own timings (saturated, disturbed)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from loadtests.harness.trace_outcome import trace_late, trace_warnings
from reports.summary import RunSummary, summarize_run
from sla.errors import SlabenchError
from sla.files.run import disturbance_reasons, load_run, loop_lag_error_ms
from sla.spec import LATENCY_METRICS

MAX_CLASS_LINES = 8


def format_summary(run_dir: str, s: RunSummary) -> str:
    lines = [f"slabench run: {run_dir}"]
    rates = (
        f"  |  {s.requests_per_s:.2f} req/s  {s.output_tokens_per_s:.1f} output tok/s"
        if s.window_s
        else ""
    )
    lines.append(f"  requests {s.measured}  ok {s.ok}  errors {s.failed}{rates}")
    lines.append(reconciliation(s))
    if not s.measured:
        lines.append(f"  WARNING: {nothing_measured(s)}")
    lines.append(f"  {'metric':<19}{'p50':>9}{'p90':>12}{'p99':>12}{'n':>9}")
    for m in s.metrics:
        if m.metric in LATENCY_METRICS and m.n and not math.isnan(m.p50):
            lines.append(f"  {m.metric:<19}{m.p50:>9.2f}{m.p90:>12.2f}{m.p99:>12.2f}{m.n:>9}")
    lines += errors_by_class(s)
    if s.backoff_requests:
        lines.append(
            f"  back-off: closed-loop users backed off {s.backoff_s:.1f} s in all after "
            f"{s.backoff_requests} requests (Retry-After, or failed connections; the end of "
            "the test may cut the last waits short): less load than -u users would offer"
        )
    lines += [f"  WARNING: {w}" for w in s.size_warnings]
    if s.server_side is not None:
        lines += [f"  {line}" for line in s.server_side.lines(terminal=True)]
    return "\n".join(lines)


def nothing_measured(s: RunSummary) -> str:
    """Why a run without one measured request says nothing of its target (its exit code
    is Locust's, 0 without failures: this line keeps it from reading as a clean run)."""
    why = "no request was measured, so this run says nothing about the target"
    if s.cancelled:
        return (
            f"{why}: all {s.cancelled} were cut off by the end of the test (cancelled); "
            "give -t longer than the target takes to answer"
        )
    if s.warmup:
        return f"{why}: every request fell in the warm-up; give -t longer than --warmup"
    return f"{why}: none was sent (check -u, --arrival-rate and the target)"


def errors_by_class(s: RunSummary) -> list[str]:
    """One line per error class (``sla.files.error_class``), the most frequent first, with
    its statuses and its most frequent message."""
    lines = [
        f"  error {e.error_class} x{e.count} ({e.statuses_text}), e.g.: {e.example}"
        for e in s.errors[:MAX_CLASS_LINES]
    ]
    rest = s.errors[MAX_CLASS_LINES:]
    more = sum(e.count for e in rest) + s.other_errors
    if more:
        lines.append(f"  error x{more} in other classes")
    return lines


def reconciliation(s: RunSummary) -> str:
    """One line: every recorded row in exactly one category, and run.json's count beside
    (after a failed write, the requests that ended but could not be written: run.json
    ``requests`` = the rows + those)."""
    parts = [f"measured {s.measured}", f"warm-up {s.warmup}", f"cancelled {s.cancelled}"]
    parts.append(f"after the end {s.late}")
    if s.unstarted:
        parts.append(f"without a start {s.unstarted}")
    line = f"  recorded {s.recorded} = " + " + ".join(parts)
    if s.accounted != s.recorded:
        line += f" (= {s.accounted}: DOES NOT ADD UP)"
    if s.run_json_requests is not None:
        line += f"; run.json requests {s.run_json_requests}"
        unwritten = s.run_json_not_written or 0
        written = s.run_json_requests - unwritten
        if unwritten:
            line += f" = {written} written + {unwritten} not written (a write failed)"
        if written != s.recorded:
            line += " DISAGREES"
    if s.dropped:
        line += f"; {s.dropped} dropped sends are failed rows among these"
    return line


def written_counts(run_dir: Path) -> str:
    """After a failed write: the count line of what ``run_dir`` holds, beside the requests
    that could not be written; or one line saying why it cannot be read back."""
    try:
        return reconciliation(summarize_run(load_run(run_dir)))
    except (SlabenchError, ValueError) as exc:
        return f"slabench: cannot read back {run_dir}: {exc}"


def timing_error_line(generator: Any) -> str | None:
    """The timing error the load generator's own event-loop lag implies (every run that
    measured it, disturbed or not); None for runs that did not."""
    error = loop_lag_error_ms(generator)
    if error is None:
        return None
    p99, high = error
    return (
        f"slabench: the load generator's event loop ran late by {p99:.2f} ms at p99 "
        f"(max {high:.2f} ms): its timestamps may be late by as much, so TTFT and latency "
        f"may read up to {p99:.2f} ms high at p99"
    )


def generator_warnings(generator: Any) -> list[str]:
    """What makes the load generator's timings untrustworthy (run.json ``generator``)."""
    out = []
    if isinstance(generator, dict) and generator.get("saturated") and not _trace_only(generator):
        out.append(
            "the load generator was saturated (CPU >= 90% of a core for much of the run); "
            "its latencies are not trustworthy. Use --processes or less load."
        )
    out += [
        f"the load generator was disturbed: {reason}. Its timestamps were late by as much, "
        "so its latencies are not trustworthy: re-run on a quieter machine."
        for reason in disturbance_reasons(generator)
    ]
    return out + trace_warnings(generator)


def _trace_only(generator: dict[str, Any]) -> bool:
    """Saturated for its trace replay's lateness alone (said by ``trace_warnings``)."""
    processes = [p for p in generator.get("processes") or () if isinstance(p, dict)]
    cpu = any((p.get("cpu") or {}).get("saturated") for p in processes)
    return trace_late(processes) and not cpu
