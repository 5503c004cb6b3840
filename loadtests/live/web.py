"""The slabench tabs of Locust's own web UI, through its extension points (no fork of its
UI): ``template_args`` ``extended_tabs``/``extended_tables`` name two tabs, "slabench"
(per endpoint) and "slabench SLA" (each objective, provisional), and their rows ride on
Locust's own ``/stats/requests`` poll as ``extended_stats``. Two routes serve the snapshot
as JSON (``/slabench/live.json``) and a page of its charts (``/slabench/live``: TTFT p50/p99
and throughput over time, plotly.js inlined as in the reports, nothing fetched)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

from flask import Response, request

from loadtests.live.monitor import LiveMonitor

__all__ = ["ENDPOINT_COLUMNS", "SLA_COLUMNS", "install", "table_rows"]

TAB, SLA_TAB = "slabench", "slabench-sla"
ENDPOINT_COLUMNS = (
    ("endpoint", "Endpoint"),
    ("n", "n"),
    ("ttft_p50_ms", "TTFT p50 ms"),
    ("ttft_p90_ms", "TTFT p90 ms"),
    ("ttft_p99_ms", "TTFT p99 ms"),
    ("itl_p50_ms", "ITL p50 ms"),
    ("itl_p99_ms", "ITL p99 ms"),
    ("tpot_p50_ms", "TPOT p50 ms"),
    ("e2e_p50_ms", "E2E p50 ms"),
    ("e2e_p99_ms", "E2E p99 ms"),
    ("recent_ttft_p99_ms", "TTFT p99 ms (last 30 s)"),
    ("requests_per_s", "req/s"),
    ("output_tokens_per_s", "tok/s"),
    ("errors", "errors"),
    ("schedule_lag_p99_ms", "schedule lag p99 ms"),
    ("dropped", "dropped"),
    ("generator", "load generator"),
)
SLA_COLUMNS = (
    ("objective", "Objective (provisional)"),
    ("observed", "observed"),
    ("limit", "limit"),
    ("status", "so far"),
    ("ci", "CI"),
    ("n", "n"),
)
_METRIC = {"ttft": "ttft_ms", "itl": "itl_ms", "tpot": "tpot_ms", "e2e": "latency_ms"}


def table_rows(snap: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows of the two tabs from a snapshot."""
    gen = snap.get("generator") or {}
    state = "saturated" if gen.get("saturated") else "disturbed" if gen.get("disturbed") else "ok"
    rows = []
    for e in snap["endpoints"]:
        row: dict[str, Any] = {"endpoint": e["endpoint"], "n": e["n"]}
        for short, metric in _METRIC.items():
            for q in ("p50", "p90", "p99"):
                row[f"{short}_{q}_ms"] = e["window"][metric][q]
        row["recent_ttft_p99_ms"] = e["recent"]["ttft_ms"]["p99"]
        row["requests_per_s"] = e["requests_per_s"]
        row["output_tokens_per_s"] = e["output_tokens_per_s"]
        row["errors"] = ", ".join(f"{k} {v}" for k, v in e["errors"].items()) or "0"
        row["schedule_lag_p99_ms"] = e["schedule_lag_ms"]["p99"]
        row["dropped"] = e["dropped"]
        row["generator"] = state
        rows.append(row)
    objectives = [
        {
            "objective": o["objective"],
            "observed": o["observed"],
            "limit": f"{'≤' if o['op'] == 'max' else '≥'} {o['limit']:g}",
            "status": o["status"] + (" (stopped early)" if snap.get("stopped_early") else ""),
            "ci": f"{_end(o['ci_low'])}–{_end(o['ci_high'])}",
            "n": o["n"],
        }
        for o in snap.get("sla") or ()
    ]
    return rows, objectives


def _end(x: float | None) -> str:
    return "?" if x is None else f"{x:g}"


def install(web_ui: Any, current: Callable[[], LiveMonitor | None]) -> None:
    """Add the tabs and routes to Locust's web UI; ``current`` is the live view of the run
    going (or of the last one), None before the first."""
    web_ui.template_args["extended_tabs"] = [
        {"title": "slabench", "key": TAB},
        {"title": "slabench SLA", "key": SLA_TAB},
    ]
    web_ui.template_args["extended_tables"] = [
        {"key": TAB, "structure": [{"key": k, "title": t} for k, t in ENDPOINT_COLUMNS]},
        {"key": SLA_TAB, "structure": [{"key": k, "title": t} for k, t in SLA_COLUMNS]},
    ]
    app = web_ui.app

    @app.after_request
    def _extend_stats(response: Response) -> Response:
        monitor = current()
        if request.path != "/stats/requests" or monitor is None or not response.is_json:
            return response
        rows, objectives = table_rows(monitor.snapshot())
        extended = [{"key": TAB, "data": rows}, {"key": SLA_TAB, "data": objectives}]
        response.set_data(json.dumps({**response.get_json(), "extended_stats": extended}))
        return response

    @app.route("/slabench/live.json")
    def _live_json() -> Response:
        monitor = current()
        body = {"running": False, "endpoints": []} if monitor is None else monitor.snapshot()
        return Response(json.dumps(body), mimetype="application/json")

    @app.route("/slabench/live")
    def _live_page() -> Response:
        return Response(_page(), mimetype="text/html")


_PAGE_JS = """(function () {
  "use strict";
  function draw(snap) {
    var h = snap.history || [];
    var x = h.map(function (p) { return p.elapsed_s; });
    Plotly.react("ttft", [
      {x: x, y: h.map(function (p) { return p.ttft_p50_ms; }), name: "TTFT p50"},
      {x: x, y: h.map(function (p) { return p.ttft_p99_ms; }), name: "TTFT p99"}],
      {title: "TTFT (ms, last 30 s, provisional)", xaxis: {title: "s"}});
    Plotly.react("rate", [
      {x: x, y: h.map(function (p) { return p.requests_per_s; }), name: "req/s"},
      {x: x, y: h.map(function (p) { return p.output_tokens_per_s; }), name: "tok/s",
       yaxis: "y2"}],
      {title: "Throughput (last 30 s)", yaxis2: {overlaying: "y", side: "right"}});
    document.getElementById("state").textContent = (snap.running ? "running" : "ended") +
      (snap.stopped_early ? ": " + snap.stopped_early : "");
  }
  function poll() {
    fetch("/slabench/live.json").then(function (r) { return r.json(); }).then(draw)
      .catch(function (e) { console.error("slabench: " + e); });
  }
  poll();
  setInterval(poll, 2000);
})();"""


def _page() -> str:
    from reports.html import inline_plotly_js  # plotly: imported when the page is first asked for

    plotly_js = inline_plotly_js()
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in (plotly_js, _PAGE_JS)
    )
    csp = (
        f"default-src 'none'; script-src {hashes} 'unsafe-eval'; connect-src 'self'; "
        "style-src 'unsafe-inline'; img-src data: blob:"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        f"<title>slabench live</title><script>{plotly_js}</script></head><body>"
        "<h1>slabench live (provisional)</h1><p id='state'></p>"
        "<div id='ttft' style='height:320px'></div><div id='rate' style='height:320px'></div>"
        f"<script>{_PAGE_JS}</script></body></html>"
    )
