"""The live state, fed the records the run directory gets, equals the exact figures of
``sla.metrics`` within the sketch's stated error; the monitor's lines say so provisionally."""

from __future__ import annotations

import math
from dataclasses import replace

import gevent
import numpy as np
import pandas as pd

from loadtests.live.monitor import LiveMonitor, looks_for
from loadtests.live.state import LiveState
from sla.files import error_class as ec
from sla.files.run import CANCELLED_ERROR, REQUEST_COLUMNS, RequestRecord
from sla.live import BATCH, Tally
from sla.metrics import itl_ms, with_request_metrics
from sla.sketch import RELATIVE_ERROR, LogHistogram
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


def test_a_small_batch_counts_as_a_large_one_does() -> None:
    """A handful of buffered values is counted one by one, more with numpy: the same
    buckets, count, extremes and (to rounding) sums."""
    rng = np.random.default_rng(2)
    values = [*rng.lognormal(2.0, 1.0, 40).tolist(), float("nan"), 0.0, 1e-9]
    small, large = Tally(), Tally()
    large.add_all(values * 2)  # over SMALL: numpy
    for _ in range(2):
        small.add_all(values)  # under SMALL: one by one
        small.flush()
    assert (large.n, large.low, large.high) == (small.n, small.low, small.high)
    assert large.sketch.counts == small.sketch.counts
    assert math.isclose(large.total, small.total) and math.isclose(large.total_sq, small.total_sq)


def test_recent_figures_are_the_rows_of_the_last_seconds_through_stragglers_and_stalls() -> None:
    """The running sums give, at every look, exactly what counting the rows that ended in the
    last ``recent_s`` whole seconds gives: rows arrive out of order (stragglers into closed
    seconds and into seconds no row had ended in), looks come every few seconds and after a
    stall with no rows at all."""
    rng = np.random.default_rng(9)
    recent_s = 5
    live = LiveState(measured_from=T0, recent_s=recent_s)
    # Dense for 20 s, then a row every 1.3 s, late by up to 3 s: these rows often reach the
    # recorder after a row of a later second did (some seconds have no row at all).
    dense = np.sort(T0 + rng.uniform(0.0, 20.0, 1000))
    sparse = T0 + 22.1 + np.arange(14) * 1.3
    done = np.concatenate([dense, sparse])
    late = np.concatenate([rng.exponential(0.6, len(dense)), rng.uniform(0.0, 3.0, len(sparse))])
    arrival = done + late  # the order rows reach the recorder
    fed: list[RequestRecord] = []
    looks = [T0 + t for t in (3.5, 9.2, 14.0, 21.7, 27.3, 31.0, 39.9)] + [T0 + 60.0, T0 + 90.0]
    order = np.argsort(arrival)
    i = 0
    for at in looks:
        while i < len(order) and arrival[order[i]] <= at:
            k = int(order[i])
            ok = k % 11 != 0
            rec = RequestRecord(
                f"r{k}", "local", f"ep{k % 3}", math.nan, done[k] - 0.2, done[k] - 0.15,
                done[k], 200 if ok else 500, None if ok else "HTTP 500", 8, 4 + k % 5, "usage",
                4, (1.0 + k % 7, 2.0), None if ok else ec.HTTP_5XX,
            )  # fmt: skip
            live.add_record(rec)
            fed.append(rec)
            i += 1
        got = live.recent(at)
        since = int(at) - recent_s
        for ep in ("ep0", "ep1", "ep2"):
            rows = [r for r in fed if r.endpoint == ep and int(r.done_at) >= since]
            good = [r for r in rows if r.error is None]
            piece = got.get(ep)
            n = piece.n if piece is not None else 0
            assert n == len(rows), (at - T0, ep)
            if piece is None:
                continue
            assert (piece.failed, piece.done_ok) == (len(rows) - len(good), len(good))
            assert piece.done_tokens == sum(r.output_tokens or 0 for r in good)
            exact = LogHistogram()
            exact.add_all([(r.first_token_at - r.sent_at) * 1000.0 for r in good])
            ttft = piece.latency["ttft_ms"].sketch
            assert (ttft.n, ttft.counts) == (exact.n, exact.counts), (at - T0, ep)
            gaps = piece.latency["itl_ms"].sketch
            assert gaps.n == sum(len(r.chunk_gaps_ms) for r in good)
    assert all(p.n == 0 for p in live.recent(T0 + 90.0).values())  # after the stall: none


def test_a_look_lets_requests_in_flight_run_between_endpoints() -> None:
    """A look at many endpoints must not hold the event loop for its whole length (the
    timestamps of every request in flight would wait for it): it yields after each."""
    live = LiveState(measured_from=T0)
    for i, rec in enumerate(stream(400)):
        live.add_record(replace(rec, endpoint=f"ep{i % 40}"))
    monitor = LiveMonitor(live, started_at=T0, scenario="chat", interval_s=1.0)
    monitor.stop(ended_at=T0 + 5.0)
    turns: list[int] = []

    def in_flight() -> None:
        while True:
            turns.append(len(turns))
            gevent.sleep(0)

    other = gevent.spawn(in_flight)
    gevent.sleep(0)  # it runs once, then waits for its next turn
    before = len(turns)
    snap = monitor.snapshot()
    other.kill()
    assert len(snap["endpoints"]) == 40
    assert len(turns) - before >= 39  # a turn after (nearly) every endpoint's figures
