"""The load generator's own figures in a report: for each process that sent requests, its
CPU (saturation), its event loop's lag (disturbance) and what the rest of the machine used,
side by side, from run.json ``generator.processes``. Runs recorded before a figure existed
show "n/a" for it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reports.html import Markup, esc, table
from sla.files.run import loop_lag_error_ms

__all__ = ["generator_table", "timing_error_note"]

HEADERS = (
    "process",
    "CPU mean %",
    "CPU max %",
    "saturated",
    "loop lag p50 (ms)",
    "p99 (ms)",
    "max (ms)",
    "time over the bound",
    "disturbed",
    "rest of the machine: mean %",
    "max %",
    "cores",
)


def generator_table(meta: Mapping[str, Any]) -> Markup:
    """One row per process (empty markup when run.json names none)."""
    generator = meta.get("generator")
    processes = generator.get("processes") if isinstance(generator, Mapping) else None
    if not isinstance(processes, list) or not processes:
        return Markup("")
    rows = [_row(p) for p in processes if isinstance(p, Mapping)]
    classes = [_row_class(p) for p in processes if isinstance(p, Mapping)]
    return table(HEADERS, rows, cls="generator", row_classes=classes)


def timing_error_note(meta: Mapping[str, Any]) -> Markup:
    """What the loop lag implies for every timestamp of the run (empty markup for runs
    recorded before it was measured)."""
    error = loop_lag_error_ms(meta.get("generator"))
    if error is None:
        return Markup("")
    p99, high = error
    text = (
        f"Timing error: a read that completed while the event loop ran late is stamped late "
        f"by as much, so TTFT and latency may read up to {p99:,.2f} ms high at p99 (the "
        f"loop lag's p99; max {high:,.2f} ms) in this run."
    )
    return Markup(f'<p class="timing-error">{esc(text)}</p>')


def _row(process: Mapping[str, Any]) -> tuple[str, ...]:
    cpu, lag, machine = (_part(process, key) for key in ("cpu", "loop_lag", "machine_cpu"))
    bound = lag.get("bound_ms")
    over = _share(lag.get("late_share"))
    return (
        str(process.get("worker") or "?"),
        _number(cpu.get("mean_percent")),
        _number(cpu.get("max_percent")),
        _yes_no(cpu.get("saturated")),
        _number(lag.get("p50_ms")),
        _number(lag.get("p99_ms")),
        _number(lag.get("max_ms")),
        f"{over} over {_number(bound)} ms" if isinstance(bound, int | float) else over,
        _yes_no(lag.get("disturbed")),
        _number(machine.get("others_mean_percent")),
        _number(machine.get("others_max_percent")),
        _number(machine.get("cores")),
    )


def _part(process: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = process.get(key)
    return value if isinstance(value, Mapping) else {}


def _row_class(process: Mapping[str, Any]) -> str:
    if _part(process, "loop_lag").get("disturbed"):
        return "disturbed"
    return "saturated" if _part(process, "cpu").get("saturated") else ""


def _number(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "n/a"
    return f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"


def _share(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "n/a"
    return f"{value:.1%}"


def _yes_no(value: object) -> str:
    return "n/a" if value is None else ("yes" if value else "no")
