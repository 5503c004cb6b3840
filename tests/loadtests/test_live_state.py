"""The live state, fed the records the run directory gets, equals the exact figures of
``sla.metrics`` within the sketch's stated error; the monitor's lines say so provisionally."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from loadtests.live.monitor import LiveMonitor, looks_for
from loadtests.live.state import LiveState
from sla.files import error_class as ec
from sla.files.run import CANCELLED_ERROR, REQUEST_COLUMNS, RequestRecord
from sla.live import BATCH, Tally
from sla.metrics import itl_ms, with_request_metrics
from sla.sketch import RELATIVE_ERROR
from sla.spec import parse_spec

T0 = 1_764_400_000.0


def stream(n: int, seed: int = 5) -> list[RequestRecord]:
    """Open-loop requests every 10 ms from T0, 1 in 20 failed, a few cut off at the end."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        scheduled = T0 + i * 0.01
        sent = scheduled + rng.exponential(0.002)
        ttft = rng.lognormal(-2.5, 0.5)
        gaps = rng.exponential(8.0, size=7).tolist()
        done = sent + ttft + sum(gaps) / 1000.0
        failed, cancelled = i % 20 == 7, i >= n - 3
        error = CANCELLED_ERROR if cancelled else ("HTTP 503" if failed else None)
        out.append(
            RequestRecord(
                f"r{i}", "local", "chat", scheduled, sent, sent + ttft, done,
                503 if failed else 200, error, 16, 8, "usage", 8,
                () if failed else tuple(gaps),
                ec.CANCELLED if cancelled else (ec.HTTP_5XX if failed else None),
                first_output_at=sent + ttft,
            )
        )  # fmt: skip
    return out


def test_live_figures_equal_the_exact_ones_within_the_sketch_error() -> None:
    records = stream(3000)
    measured_from = T0 + 5.0  # the first 500 started in the warm-up
    live = LiveState(measured_from=measured_from)
    for rec in records[:1000]:
        live.add_record(rec)
    live.add_rows([tuple(getattr(r, c) for c in REQUEST_COLUMNS) for r in records[1000:]])
    df = with_request_metrics(pd.DataFrame([tuple(r) for r in map(_row, records)],
                                           columns=list(REQUEST_COLUMNS)))  # fmt: skip
    kept = df[(df["start"] >= measured_from) & (df["error"] != CANCELLED_ERROR)]
    ok = kept[kept["ok"]]
    window = live.window["chat"]
    assert (window.n, window.failed) == (len(kept), int((~kept["ok"]).sum()))
    assert window.errors == {ec.HTTP_5XX: int((~kept["ok"]).sum())}
    exact = {m: ok[m].to_numpy() for m in ("ttft_ms", "latency_ms", "tpot_ms", "schedule_lag_ms")}
    exact["itl_ms"] = itl_ms(kept)
    for metric, values in exact.items():
        sketch = window.latency[metric].sketch
        assert sketch.n == len(values), metric
        for q, got in zip((0.5, 0.9, 0.99), sketch.quantiles((0.5, 0.9, 0.99)), strict=True):
            want = float(np.percentile(values, 100 * q))
            assert abs(got - want) <= RELATIVE_ERROR * want + 1e-9, (metric, q, got, want)
    assert math.isclose(window.latency["ttft_ms"].mean(), float(exact["ttft_ms"].mean()))


def test_the_monitor_prints_provisional_lines_and_stops_a_failing_run() -> None:
    records = stream(600)
    spec = parse_spec({"objectives": [{"metric": "ttft_ms", "stat": "p99", "max": 20}]})
    live = LiveState(measured_from=T0)
    for rec in records:
        live.add_record(rec)
    lines: list[str] = []
    monitor = LiveMonitor(
        live, started_at=T0, scenario="chat", interval_s=1.0, spec=spec, stop_early=True,
        looks=looks_for(60.0, 1.0), printer=lines.append,
    )  # fmt: skip
    monitor.stop(ended_at=T0 + 6.0)  # frozen at that time: no greenlet, the looks by hand
    snap = monitor.look()
    assert snap["provisional"] and snap["endpoints"][0]["n"] == 597
    assert lines[0].startswith("slabench live 6s (provisional, ±1%) chat: n=597 TTFT p50 ")
    assert "errors 30 (http_5xx 30)" in lines[0]
    assert lines[1].startswith("slabench live SLA (provisional) p99 ttft_ms: ")
    assert "FAIL so far (95% CI" in lines[1]
    assert monitor.stopped_early is not None and "FAIL settled at 99.9167% per look" in lines[-1]


def _row(rec: RequestRecord) -> tuple[object, ...]:
    return tuple(getattr(rec, c) for c in REQUEST_COLUMNS)


def test_a_tally_buffers_and_counts_what_it_was_given() -> None:
    """``Tally.add`` only buffers: every figure read counts the buffer first, exactly."""
    values = [3.0, float("nan"), 0.5, 12.25] * (BATCH // 2)  # crosses the batch size
    tally = Tally()
    tally.add_all(values[:10])
    for v in values[10:]:
        tally.add(v)
    kept = [v for v in values if v == v]
    assert tally.n == len(kept)
    assert (tally.total, tally.low, tally.high) == (sum(kept), 0.5, 12.25)
    assert math.isclose(tally.total_sq, sum(v * v for v in kept))
    assert math.isclose(tally.mean(), sum(kept) / len(kept))
    assert abs(tally.sketch.quantile(0.99) - 12.25) <= RELATIVE_ERROR * 12.25
