"""Where the time goes: client latency split by each request's own server timings, per
window and around p50/p99; the report's section and table; absent for runs without them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dashboards.breakdown import breakdown, breakdown_panel
from dashboards.build import build_panels
from dashboards.view import RunView
from reports.render import render_report
from sla.files.run import Run, load_run
from sla.reading import read_run
from tests.dashboards import synthetic_run, with_columns

FIXTURE_RUN = Path(__file__).resolve().parents[1] / "fixtures" / "schema1" / "chat-run"


def _told(run: Run) -> Run:
    """Every request's server tells queue 10% of its latency, prefill 20%, decode 60% and a
    total of 95%; every fourth is llama.cpp's (no queue, no total)."""
    rows = run.requests
    latency = (rows["done_at"] - rows["sent_at"]).to_numpy() * 1000.0
    llama = np.arange(len(rows)) % 4 == 3
    return with_columns(
        run,
        server_queue_ms=np.where(llama, np.nan, 0.1 * latency),
        server_prefill_ms=0.2 * latency,
        server_decode_ms=0.6 * latency,
        server_total_ms=np.where(llama, np.nan, 0.95 * latency),
        server_timing_source=pd.array(np.where(llama, "llama.cpp", "timings"), dtype="string"),
    )


def test_parts_add_up_to_the_client_latency() -> None:
    run = _told(synthetic_run(800))
    b = breakdown(read_run(run).measured_ok)
    assert len(b) == b.of > 700 and b.sources == {"timings": len(b) - b.sources["llama.cpp"],
                                                   "llama.cpp": b.sources["llama.cpp"]}  # fmt: skip
    total = sum(b.parts.values())
    assert total == pytest.approx(b.latency_ms)
    told = b.parts["queue"] > 0  # ours: 5% of the latency is the client's and the network's
    assert b.parts["client"][told] == pytest.approx(0.05 * b.latency_ms[told])
    assert b.parts["other"][told] == pytest.approx(0.05 * b.latency_ms[told])
    # llama.cpp: no total, so the untold 20% sits in client + network
    assert b.parts["client"][~told] == pytest.approx(0.2 * b.latency_ms[~told])
    p99 = b.around(99.0)
    assert p99["latency"] == pytest.approx(np.percentile(b.latency_ms, 99), rel=0.05)
    assert sum(p99[k] for k in b.parts) == pytest.approx(p99["latency"])


def test_panel_and_report_section() -> None:
    run = _told(synthetic_run(800))
    panel = breakdown_panel(RunView.of(run))
    assert panel is not None and panel.key == "where_the_time_goes"
    assert "timings object (slabench reference server)" in panel.note
    assert "llama.cpp timings" in panel.note and "told no total" in panel.note
    names = {t.name for t in panel.figure.data}
    assert names == {"server queue", "server prefill", "server decode", "server, other",
                     "client + network"}  # fmt: skip
    calibration = {
        "path": "/v1/models",
        "connect_ms": {"p50": 0.1, "p90": 0.2, "n": 10},
        "rtt_ms": {"p50": 0.5, "p90": 0.7, "n": 10},
        "error": None,
    }
    meta = {**run.meta, "calibration": calibration}
    html = render_report(Run(run.path, meta, run.requests, None))
    assert '<section id="where-the-time-goes">' in html and "requests around p99" in html
    assert "GET /v1/models round trip p50 0.5 ms" in html


def test_runs_without_server_timings_have_no_section() -> None:
    plain = synthetic_run(200)
    assert breakdown_panel(RunView.of(plain)) is None
    assert "where-the-time-goes" not in render_report(plain)
    old = load_run(FIXTURE_RUN)  # written before the columns existed: read as NaN/null
    assert old.requests["server_total_ms"].isna().all()
    assert old.requests["server_timing_source"].isna().all()
    panels = build_panels(old)
    assert "where_the_time_goes" not in {p.key for p in panels}
    assert "where-the-time-goes" not in render_report(old, panels=panels)
