"""The options of trace replay (``--trace`` and its window) and of ``--tokenizer``."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from loadtests.errors import LoadSpecError
from loadtests.workloads.shapes import parse_duration_s
from loadtests.workloads.traces import TraceSpec

__all__ = ["add_trace_options", "check_trace_users", "trace_spec"]


def add_trace_options(opt: Callable[..., None]) -> None:
    opt(
        "--trace",
        "TRACE",
        default="",
        help="replay this timestamped trace open-loop at its own times (Mooncake JSONL, Azure "
        "LLM trace CSV or BurstGPT CSV); the run ends when the trace window does",
    )
    opt(
        "--trace-speedup",
        "TRACE_SPEEDUP",
        type=float,
        default=1.0,
        help="divide the trace's times by this (2 = twice as fast)",
    )
    opt(
        "--trace-start",
        "TRACE_START",
        default="0s",
        help="replay from this far into the trace (trace time, e.g. 10m)",
    )
    opt(
        "--trace-duration",
        "TRACE_DURATION",
        default="",
        help="replay this much of the trace (trace time, e.g. 5m; default: to its end)",
    )
    opt(
        "--trace-block-size",
        "TRACE_BLOCK_SIZE",
        type=int,
        default=512,
        help="tokens per trace hash id (Mooncake's is 512): equal ids become equal text",
    )
    opt(
        "--tokenizer",
        "TOKENIZER",
        default="",
        help="a local tokenizer.json (or its directory): size synthetic prompts and trace "
        "rows exactly in the target's tokens, count output tokens a server does not report",
    )


def trace_spec(ns: Any) -> TraceSpec | None:
    """The trace to replay (None: no --trace); a bad value raises ``LoadSpecError``."""
    if not ns.trace:
        return None
    for flag, given in (
        ("--arrival-rate", ns.arrival_rate),
        ("--shape", ns.shape),
        ("--capacity-search", getattr(ns, "capacity_search", False)),
    ):
        if given:
            raise LoadSpecError(f"--trace sets the load itself; drop {flag}")
    if ns.dataset != "synthetic":
        raise LoadSpecError("--trace sets the prompts itself; drop --dataset")
    if not (math.isfinite(ns.trace_speedup) and ns.trace_speedup > 0):
        raise LoadSpecError(f"--trace-speedup {ns.trace_speedup} must be a number > 0")
    if ns.trace_block_size < 1:
        raise LoadSpecError(f"--trace-block-size {ns.trace_block_size} must be at least 1")
    duration = _duration("--trace-duration", ns.trace_duration) if ns.trace_duration else None
    if duration == 0:
        raise LoadSpecError("--trace-duration must be > 0 (leave it out to replay to the end)")
    return TraceSpec(
        ns.trace,
        speedup=ns.trace_speedup,
        start_s=_duration("--trace-start", ns.trace_start),
        duration_s=duration,
        block_size=ns.trace_block_size,
    )


def _duration(flag: str, text: str) -> float:
    try:
        seconds = parse_duration_s(text)
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise LoadSpecError(f"{flag} {text!r} must be a duration >= 0 like 90s, 10m or 5")
    return seconds


def check_trace_users(classes: Sequence[Any]) -> None:
    """A trace's rows are single requests: a multi-turn user class (sessions) cannot send them."""
    multi = [c.__name__ for c in classes if getattr(c, "multi_turn", False)]
    if multi:
        raise LoadSpecError(
            f"--trace sends each row as one request; {', '.join(multi)} holds conversations: "
            "replay it with the chat or completions scenario"
        )
