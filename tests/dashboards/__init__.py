"""Tests of ``dashboards``; ``synthetic_run`` builds runs of any size without Locust."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from loadtests.workloads.shapes import parse_shape
from sla.files.error_class import fill_error_classes
from sla.files.run import CANCELLED_ERROR, REQUESTS_SCHEMA, Run, requests_frame

T0 = 1_764_400_000.0


def synthetic_run(
    n: int,
    *,
    duration_s: float = 100.0,
    warmup_s: float = 10.0,
    seed: int = 0,
    gaps_per_request: int = 3,
    error_share: float = 0.0,
    cancelled: int = 0,
    open_loop: bool = False,
    load_profile: Mapping[str, Any] | None = None,
    server_metrics: pd.DataFrame | None = None,
    latency_trend: float = 0.0,
) -> Run:
    """A closed-loop (or open-loop) run of ``n`` requests started uniformly over
    ``duration_s`` from ``T0``; latency grows by ``latency_trend`` per second of run time.
    Failed requests (``error_share``) answer 500 or 429; the last ``cancelled`` requests are
    cut off by the end of the test."""
    rng = np.random.default_rng(seed)
    start = T0 + np.sort(rng.uniform(0.0, duration_s, n))
    latency_s = rng.lognormal(np.log(0.2), 0.5, n) * (1.0 + latency_trend * (start - T0))
    ttft_s = latency_s * rng.uniform(0.05, 0.3, n)
    tokens = rng.integers(2, 200, n).astype(np.int32)
    failed = rng.random(n) < error_share
    status = np.where(failed, np.where(rng.random(n) < 0.5, 500, 429), 200).astype(np.int32)
    error = np.full(n, None, dtype=object)
    error[failed] = np.where(status[failed] == 500, "server error <b>x</b>", "rate limited")
    if cancelled:
        error[-cancelled:] = CANCELLED_ERROR
        status[-cancelled:] = 0
    gaps = rng.exponential(20.0, n * gaps_per_request)
    offsets = (np.arange(n + 1) * gaps_per_request).astype(np.int32)
    scheduled = start if open_loop else np.full(n, np.nan)
    sent = start + (rng.exponential(0.001, n) if open_loop else 0.0)
    columns = {
        "request_id": pa.array(np.char.add("r", np.arange(n).astype(str))),
        "worker": pa.array(np.full(n, "w0")),
        "endpoint": pa.array(np.full(n, "chat")),
        "scheduled_at": scheduled,
        "sent_at": sent,
        "first_token_at": start + ttft_s,
        "done_at": start + latency_s,
        "status": status,
        "error": pa.array(error, type=pa.string()),
        "input_tokens": rng.integers(16, 2048, n).astype(np.int32),
        "output_tokens": tokens,
        "output_tokens_source": pa.array(np.full(n, "usage")),
        "chunk_count": np.full(n, gaps_per_request + 1, dtype=np.int32),
        "chunk_gaps_ms": pa.ListArray.from_arrays(pa.array(offsets), pa.array(gaps)),
        "error_class": pa.array([None] * n, type=pa.string()),
        "backoff_ms": np.zeros(n),
        "session_id": pa.nulls(n, pa.string()),
        "turn": pa.nulls(n, pa.int32()),
        "cached_tokens": pa.nulls(n, pa.int32()),
        "reasoning_tokens": pa.nulls(n, pa.int32()),
        "first_output_at": start + ttft_s,
        "server_queue_ms": np.full(n, np.nan),
        "server_prefill_ms": np.full(n, np.nan),
        "server_decode_ms": np.full(n, np.nan),
        "server_total_ms": np.full(n, np.nan),
        "server_timing_source": pa.nulls(n, pa.string()),
        "client_processing_ms": np.full(n, np.nan),
    }
    classes = fill_error_classes(pd.DataFrame({"status": status, "error": error}))
    columns["error_class"] = pa.array(classes, type=pa.string())
    table = pa.table(columns, schema=REQUESTS_SCHEMA)
    profile = as_written(load_profile or {"mode": "open" if open_loop else "closed", "users": 8})
    meta = {
        "schema_version": 1,
        "status": "complete",
        "scenario": "synthetic",
        "load_profile": profile,
        "started_at": T0,
        "measured_from": T0 + warmup_s,
        "ended_at": T0 + duration_s,
        "generator": {"saturated": False},
    }
    return Run(Path("synthetic"), meta, requests_frame(table), server_metrics)


def with_columns(run: Run, **columns: Any) -> Run:
    """The same run with some request columns replaced."""
    return Run(run.path, run.meta, run.requests.assign(**columns), run.server_metrics)


def with_traffic(run: Run, *, reasoning_s: float = 0.05) -> Run:
    """The same run as production-shaped traffic: conversations of 12 turns (row i is turn
    ``1 + i % 12``), every even row reporting half its input tokens cached, and every third
    row reasoning for ``reasoning_s`` before its first visible output."""
    rows = run.requests
    index = np.arange(len(rows))
    prompt = rows["input_tokens"].to_numpy(dtype=np.int64)
    cached = pd.array(np.where(index % 2 == 0, prompt // 2, 0), dtype="Int32")
    cached[index % 2 == 1] = pd.NA
    first = rows["first_token_at"].to_numpy(dtype=np.float64)
    return with_columns(
        run,
        session_id=pd.array([f"s{i // 12}" for i in index], dtype="string"),
        turn=pd.array(1 + index % 12, dtype="Int32"),
        cached_tokens=cached,
        first_output_at=np.where(index % 3 == 0, first + reasoning_s, first),
    )


def as_written(profile: Mapping[str, Any]) -> dict[str, Any]:
    """A load profile as the load generator writes it: a shape comes with its stages."""
    out = dict(profile)
    if isinstance(out.get("shape"), str) and "stages" not in out:
        out["stages"] = [list(stage) for stage in parse_shape(out["shape"]).levels()]
    return out


def with_meta(run: Run, **meta: Any) -> Run:
    """The same run with some run.json keys replaced (None removes a key)."""
    merged = {k: v for k, v in {**run.meta, **meta}.items() if v is not None}
    return Run(run.path, merged, run.requests, run.server_metrics)


def trace(figure: Any, name: str) -> Any:
    """The one trace of ``figure`` called ``name``."""
    found = [t for t in figure.data if t.name == name]
    assert len(found) == 1, f"{len(found)} traces named {name!r}: {[t.name for t in figure.data]}"
    return found[0]


def shown_axes(figure: Any) -> dict[str, Any]:
    """The axes of a figure that show tick labels, by layout name (``xaxis``, ``yaxis2``)."""
    layout = figure.layout.to_plotly_json()
    return {
        name: axis
        for name, axis in layout.items()
        if name[1:5] == "axis" and name[0] in "xy" and axis.get("showticklabels", True)
    }
