"""Synthetic run directories for the report tests, written the way the load generator does
(``loadtests.recording.recorder``: pure, no gevent), so that ``sla.files.run.load_run`` reads
them back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests.recording.recorder import RequestRecorder, finish_run_json, start_run_json
from sla.files.run import RequestRecord

T0 = 1_700_000_000.0


@dataclass(frozen=True)
class Req:
    """One request relative to the run start; ``ttft_s`` None for a non-streamed one."""

    at_s: float
    latency_s: float
    ttft_s: float | None = 0.01
    gaps_ms: Sequence[float] = (1.0, 2.0, 3.0)
    status: int = 200
    error: str | None = None
    endpoint: str = "chat"
    output_tokens: int | None = 4
    scheduled: bool = False
    turn: int | None = None  # its turn in a conversation
    cached_tokens: int | None = None
    reasoning_s: float = 0.0  # from the first token to the first visible output


def record(index: int, req: Req) -> RequestRecord:
    sent = T0 + req.at_s
    first = sent + req.ttft_s if req.ttft_s is not None else float("nan")
    return RequestRecord(
        request_id=f"r{index}",
        worker="local",
        endpoint=req.endpoint,
        scheduled_at=sent if req.scheduled else float("nan"),
        sent_at=sent,
        first_token_at=first,
        done_at=sent + req.latency_s,
        status=req.status,
        error=req.error,
        input_tokens=16,
        output_tokens=req.output_tokens,
        output_tokens_source="usage",
        chunk_count=len(req.gaps_ms) + 1,
        chunk_gaps_ms=list(req.gaps_ms),
        session_id=None if req.turn is None else "conversation",
        turn=req.turn,
        cached_tokens=req.cached_tokens,
        first_output_at=first + req.reasoning_s,
    )


def write_run(
    path: Path,
    requests: Iterable[Req],
    *,
    duration_s: float = 10.0,
    meta: Mapping[str, Any] | None = None,
    close: bool = True,
) -> Path:
    """A run directory at ``path``; ``close=False`` leaves it as a killed run (parts only)."""
    base = {
        "status": "running",
        "scenario": "chat",
        "target_url": "http://127.0.0.1:8000",
        "load_profile": {"mode": "closed", "users": 4},
        "started_at": T0,
        "measured_from": T0,
        "versions": {"python": "3.11", "slabench": "0.1.0"},
        "command": "locust -f chat.py",
    }
    start_run_json(path, {**base, **(meta or {})})
    recorder = RequestRecorder(path, flush_rows=50)
    for index, req in enumerate(requests):
        recorder.add(record(index, req))
    if not close:
        recorder.flush()
        return path
    recorder.close()
    finish_run_json(
        path,
        {
            "status": "complete",
            "ended_at": T0 + duration_s,
            "generator": {"saturated": False},
            **{k: v for k, v in (meta or {}).items() if k == "generator"},
        },
    )
    return path


def steady(n: int, *, duration_s: float = 10.0, latency_s: float = 0.1) -> list[Req]:
    """``n`` successful requests spread evenly, latencies rising from ``latency_s``."""
    return [Req(at_s=duration_s * i / n, latency_s=latency_s + 0.001 * (i % 50)) for i in range(n)]


def production_shaped(n: int) -> list[Req]:
    """Production-shaped traffic: conversations of three turns, open loop; turn t's TTFT is
    t * 10 ms, its latency t * 100 ms; even rows report half of their 16 input tokens
    cached; a third of the rows reason for 5 ms."""
    return [
        Req(
            at_s=10.0 * i / n,
            latency_s=0.1 * (1 + i % 3),
            ttft_s=0.01 * (1 + i % 3),
            scheduled=True,
            turn=1 + i % 3,
            cached_tokens=8 if i % 2 == 0 else None,
            reasoning_s=0.005 if i % 3 == 0 else 0.0,
        )
        for i in range(n)
    ]
