"""What run.json's ``generator`` says of a trace replay: saturation by lateness, and a run
that ended before its trace (no gevent here: the terminal and tests read it too)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["trace_late", "trace_warnings"]


def trace_warnings(generator: Any) -> list[str]:
    """What the replay of each process says of the run (run.json ``generator``): sends too
    late for the trace's schedule, a run that ended before its trace did."""
    processes = generator.get("processes") if isinstance(generator, dict) else None
    replays = [p["trace"] for p in processes or () if isinstance(p.get("trace"), dict)]
    if not replays:
        return []
    out = []
    late = [r for r in replays if r.get("late")]
    if late:
        worst = max(float(r["send_lag_p99_ms"]) for r in late)
        out.append(
            f"the load generator could not keep the trace's schedule: its sends left "
            f"{worst:.1f} ms late at p99 (--max-send-lag {late[0]['max_send_lag_ms']:g} ms), "
            "so the run counts as saturated. Use --processes or a lower --trace-speedup."
        )
    sent = sum(int(r.get("sent", 0)) + int(r.get("dropped", 0)) for r in replays)
    rows = sum(int(r.get("rows", 0)) for r in replays)
    if not all(r.get("finished") for r in replays):
        out.append(
            f"the run ended before the trace did: {sent} of its {rows} rows were due "
            "(-t or a stop came first)"
        )
    return out


def trace_late(processes: Sequence[dict[str, Any]]) -> bool:
    """A process's replay left later than ``--max-send-lag`` at p99."""
    return any(bool((p.get("trace") or {}).get("late")) for p in processes)
