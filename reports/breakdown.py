"""The report's "Where the time goes" table: the numbers of ``dashboards.breakdown``.

Rows: the mean over the told requests, the requests around p50 and p99 of the client
latency (each row adds up), then each part's own p50 and p99 (percentiles of each part's own
distribution: they belong to different requests and do not add up). Under it: where the
figures come from, the load generator's own time after each last byte
(``client_processing_ms``) and the round trip measured before the run (run.json
``calibration``). Absent when no measured successful request carries server timings.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dashboards.breakdown import AROUND_PERCENTS, PARTS, Breakdown, breakdown, sources_text
from reports import fmt
from reports.html import Markup, esc, table
from sla.metrics import floats
from sla.reading import Reading

__all__ = ["breakdown_section"]


def breakdown_section(reading: Reading) -> Markup:
    b = breakdown(reading.measured_ok)
    if not len(b):
        return Markup("")
    headers = ("", "n", "client latency (ms)", *(f"{name} (ms)" for _, name, _ in PARTS))
    keys = [key for key, _, _ in PARTS]
    rows = [("mean", fmt.count(len(b)), *_cells(b.latency_ms.mean(), [_mean(b, k) for k in keys]))]
    for p in AROUND_PERCENTS:
        around = b.around(p)
        cells = _cells(around["latency"], [around[k] for k in keys])
        rows.append((f"requests around p{p:g}", fmt.count(int(around["n"])), *cells))
    for p in AROUND_PERCENTS:
        each = [float(np.percentile(b.parts[k], p)) for k in keys]
        latency = float(np.percentile(b.latency_ms, p))
        rows.append((f"p{p:g} of each part", fmt.count(len(b)), *_cells(latency, each)))
    notes = [
        f"From each request's own server timings: {sources_text(b)} ({len(b):,} of "
        f"{b.of:,} successful measured requests). Client latency is from the send "
        "(the open-loop schedule lag is not in it); client + network = that latency minus "
        "the server's total."
    ]
    if len(b) > b.with_total:
        notes.append(
            f"{len(b) - b.with_total:,} requests' servers told no total: their client + "
            "network part holds the server time they did not tell."
        )
    notes += _tool_notes(reading)
    note = " ".join(notes)
    return Markup(
        '<section id="where-the-time-goes"><h2>Where the time goes</h2>'
        f'{table(headers, rows, cls="breakdown")}<p class="note">{esc(note)}</p></section>'
    )


def _mean(b: Breakdown, key: str) -> float:
    return float(b.parts[key].mean())


def _cells(latency: float, parts: list[float]) -> list[str]:
    return [fmt.exact(latency), *(fmt.exact(v) for v in parts)]


def _tool_notes(reading: Reading) -> list[str]:
    """What the load generator itself costs: its time after the last byte and the round
    trip to the target before the run."""
    out = []
    rows = reading.measured_ok
    if "client_processing_ms" in rows:
        values = floats(rows, "client_processing_ms")
        values = values[np.isfinite(values)]
        if len(values):
            p50, p99 = np.percentile(values, [50, 99])
            out.append(
                f"The load generator's own time from a request's last byte to its record: "
                f"p50 {fmt.exact(float(p50))} ms, p99 {fmt.exact(float(p99))} ms."
            )
    calibration = reading.meta.get("calibration")
    if isinstance(calibration, dict):
        out.append(_calibration_text(calibration))
    return out


def _calibration_text(c: dict[str, Any]) -> str:
    connect, rtt = c.get("connect_ms"), c.get("rtt_ms")
    parts = []
    if isinstance(connect, dict):
        parts.append(f"TCP connect p50 {connect.get('p50')} ms, p90 {connect.get('p90')} ms")
    if isinstance(rtt, dict):
        path = c.get("path")
        parts.append(f"GET {path} round trip p50 {rtt.get('p50')} ms, p90 {rtt.get('p90')} ms")
    text = "Before the run: " + "; ".join(parts) + "." if parts else ""
    if c.get("error"):
        text += f" The round-trip calibration stopped: {c['error']}."
    return text.strip()
