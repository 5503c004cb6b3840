"""What the live view shows (pure): a JSON-able snapshot of a ``LiveState`` and the compact
terminal lines printed from it. Every figure is marked provisional: the run's figures are
the exact ones computed at its end."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sla.fmt import fmt_ci, fmt_confidence, fmt_value, op_symbol
from sla.live import LiveSamples
from sla.objectives import ObjectiveResult
from sla.sketch import RELATIVE_ERROR

__all__ = ["QUANTILES", "endpoint_figures", "format_lines", "objective_figures"]

QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
SHOWN = ("ttft_ms", "itl_ms", "tpot_ms", "latency_ms")


def _num(x: float) -> float | None:
    """A JSON number (None for NaN or infinity)."""
    return round(x, 3) if math.isfinite(x) else None


def _percentiles(s: LiveSamples, metric: str) -> dict[str, float | None]:
    sketch = s.latency[metric].sketch
    values = sketch.quantiles(q for _, q in QUANTILES)
    return {name: _num(v) for (name, _), v in zip(QUANTILES, values, strict=True)}


def endpoint_figures(
    endpoint: str, window: LiveSamples, recent: LiveSamples, window_s: float | None, recent_s: int
) -> dict[str, Any]:
    """One endpoint's live figures: percentiles over the measured window and over the last
    ``recent_s`` seconds, counts, rates over the window, errors by class, schedule lag."""
    span = window_s if window_s and window_s > 0 else math.nan
    lag = window.latency["schedule_lag_ms"]
    return {
        "endpoint": endpoint,
        "n": window.n,
        "ok": window.n - window.failed,
        "failed": window.failed,
        "errors": dict(sorted(window.errors.items(), key=lambda kv: (-kv[1], kv[0]))),
        "dropped": window.dropped,
        "requests_per_s": _num(window.done_ok / span),
        "output_tokens_per_s": _num(window.done_tokens / span),
        "recent_requests_per_s": _num(recent.done_ok / recent_s) if recent_s else None,
        "recent_output_tokens_per_s": _num(recent.done_tokens / recent_s) if recent_s else None,
        "window": {m: {"n": window.latency[m].n, **_percentiles(window, m)} for m in SHOWN},
        "recent": {m: {"n": recent.latency[m].n, **_percentiles(recent, m)} for m in SHOWN},
        "schedule_lag_ms": {"n": lag.n, **_percentiles(window, "schedule_lag_ms")},
    }


def objective_figures(
    results: Sequence[ObjectiveResult], confidence: float
) -> list[dict[str, Any]]:
    return [
        {
            "objective": r.label,
            "metric": r.metric,
            "op": r.op,
            "limit": r.limit,
            "observed": _num(r.observed),
            "status": r.status.value,
            "ci_low": None if r.ci_low is None else _num(r.ci_low),
            "ci_high": None if r.ci_high is None else _num(r.ci_high),
            "confidence": confidence,
            "n": r.n,
            "message": r.message,
        }
        for r in results
    ]


def _ms(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.0f}ms" if x >= 100 else f"{x:.1f}ms"


def _rate(x: float | None, unit: str) -> str:
    return "-" if x is None else f"{x:.1f} {unit}"


def format_lines(snapshot: Mapping[str, Any]) -> list[str]:
    """The terminal lines of a snapshot: one per endpoint, then one per objective."""
    head = f"slabench live {snapshot['elapsed_s']:.0f}s (provisional, ±{RELATIVE_ERROR:.0%})"
    if snapshot.get("warming_up"):
        head += " warm-up"
    lines = []
    for e in snapshot["endpoints"]:
        w = e["window"]
        errors = ", ".join(f"{k} {v}" for k, v in e["errors"].items())
        lines.append(
            f"{head} {e['endpoint']}: n={e['n']} "
            f"TTFT p50 {_ms(w['ttft_ms']['p50'])} p99 {_ms(w['ttft_ms']['p99'])} | "
            f"ITL p50 {_ms(w['itl_ms']['p50'])} p99 {_ms(w['itl_ms']['p99'])} | "
            f"E2E p99 {_ms(w['latency_ms']['p99'])} | "
            f"{_rate(e['requests_per_s'], 'req/s')} {_rate(e['output_tokens_per_s'], 'tok/s')} | "
            f"errors {e['failed']}" + (f" ({errors})" if errors else "")
        )
    if not snapshot["endpoints"]:
        lines.append(f"{head}: no requests in the measured window yet")
    for o in snapshot.get("sla") or ():
        lines.append(f"slabench live SLA (provisional) {_objective_line(o)}")
    gen = snapshot.get("generator") or {}
    if gen.get("saturated") or gen.get("disturbed"):
        what = "saturated (CPU)" if gen.get("saturated") else "disturbed (loop lag)"
        lines.append(f"slabench live WARNING: the load generator is {what} so far")
    return lines


def _objective_line(o: Mapping[str, Any]) -> str:
    metric = o["metric"]
    observed = o["observed"]
    holds = observed is not None and (
        observed <= o["limit"] if o["op"] == "max" else observed >= o["limit"]
    )
    line = (
        f"{o['objective']}: {fmt_value(metric, observed)} {op_symbol(o['op'], holds)} "
        f"{fmt_value(metric, o['limit'])} {o['status']} so far"
    )
    if o["ci_low"] is not None or o["ci_high"] is not None:
        ci = fmt_ci(metric, o["ci_low"], o["ci_high"])
        line += f" ({fmt_confidence(o['confidence'])} CI {ci}, n={o['n']})"
    else:
        line += f" (n={o['n']})"
    return line
