from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from reports.ci import markdown_summary
from reports.summary import summarize_run
from sla.files.run import CANCELLED_ERROR, load_run
from tests.reports import Req, record, steady, write_run
from tests.sla.test_verdict import req
from tests.sla.test_verdict import write_run as write_judged_run


def test_percentiles_are_numpys_linear_percentiles_of_every_record(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    latencies_s = rng.lognormal(-2.0, 0.6, size=1000)
    reqs = [
        Req(
            at_s=i * 0.01,
            latency_s=float(x),
            ttft_s=float(x) / 4,
            gaps_ms=[float(x) * 100, float(x) * 200],
        )
        for i, x in enumerate(latencies_s)
    ]
    s = summarize_run(load_run(write_run(tmp_path / "run", reqs, duration_s=10.0)))
    latency = next(m for m in s.metrics if m.metric == "latency_ms")
    recs = [record(i, r) for i, r in enumerate(reqs)]
    # From the stored epoch floats, as sla does: exact equality, not an approximation.
    expected_ms = np.array([(r.done_at - r.sent_at) * 1000.0 for r in recs])
    assert latency.n == 1000
    assert latency.p50 == np.percentile(expected_ms, 50)
    assert latency.p99_9 == np.percentile(expected_ms, 99.9)
    assert latency.max == expected_ms.max()
    itl = next(m for m in s.metrics if m.metric == "itl_ms")
    gaps = np.concatenate([[x * 100, x * 200] for x in latencies_s])
    assert itl.n == 2000
    assert itl.p90 == np.percentile(gaps, 90)
    lag = next(m for m in s.metrics if m.metric == "schedule_lag_ms")
    assert lag.n == 0 and math.isnan(lag.p50)  # closed loop: no schedule


def test_counts_rates_and_errors_follow_the_measured_window(tmp_path: Path) -> None:
    reqs = [
        Req(at_s=0.5, latency_s=0.1),  # warm-up: before measured_from
        *steady(8, duration_s=8.0),
        Req(at_s=2.0, latency_s=0.1, status=500, error="HTTP 500: boom"),
        Req(at_s=3.0, latency_s=0.1, status=500, error="HTTP 500: boom"),
        Req(at_s=4.0, latency_s=0.1, status=0, error="timeout: no data for 30s"),
        Req(at_s=5.0, latency_s=0.1, status=503, error=None),
        Req(at_s=9.5, latency_s=0.5, status=0, error=CANCELLED_ERROR),
    ]
    reqs[1:9] = [Req(at_s=1.0 + i, latency_s=0.1, output_tokens=10) for i in range(8)]
    meta = {"measured_from": 1_700_000_001.0, "dropped": 3}
    s = summarize_run(load_run(write_run(tmp_path / "run", reqs, duration_s=11.0, meta=meta)))
    assert (s.recorded, s.warmup, s.cancelled) == (14, 1, 1)
    assert (s.measured, s.ok, s.failed, s.dropped) == (12, 8, 4, 3)
    assert s.window_s == pytest.approx(10.0)
    assert s.requests_per_s == pytest.approx(0.8)
    assert s.output_tokens_per_s == pytest.approx(8.0)
    assert s.errors_per_s == pytest.approx(0.4)
    # By class: a 503 without text joins the 500s; each class keeps its commonest message.
    assert [(e.error_class, e.count, e.statuses, e.example) for e in s.errors] == [
        ("http_5xx", 3, (500, 503), "HTTP 500: boom"),
        ("idle_timeout", 1, (0,), "timeout: no data for 30s"),
    ]
    assert s.errors[0].statuses_text == "HTTP 500, HTTP 503"
    assert sum(e.count for e in s.errors) + s.other_errors == s.failed


def test_endpoints_are_listed_busiest_first(tmp_path: Path) -> None:
    reqs = [
        Req(at_s=i * 0.1, latency_s=0.2 if i % 3 else 0.4, endpoint="a" if i % 3 else "b")
        for i in range(30)
    ]
    s = summarize_run(load_run(write_run(tmp_path / "run", reqs)))
    assert [(e.endpoint, e.requests, e.ok) for e in s.endpoints] == [("a", 20, 20), ("b", 10, 10)]
    assert s.endpoints[1].latency_p50_ms == pytest.approx(400.0)
    assert s.other_endpoints == 0


def test_a_killed_run_ends_its_window_at_the_last_completion(tmp_path: Path) -> None:
    reqs = [Req(at_s=float(i), latency_s=1.0) for i in range(5)]  # last done at +5 s
    run = load_run(write_run(tmp_path / "run", reqs, close=False))
    assert run.from_parts
    s = summarize_run(run)
    assert s.window_s == pytest.approx(5.0)
    assert s.requests_per_s == pytest.approx(1.0)


def test_an_empty_run_summarises_to_zeros_and_nans(tmp_path: Path) -> None:
    s = summarize_run(load_run(write_run(tmp_path / "run", [])))
    assert (s.recorded, s.measured, s.ok, s.failed) == (0, 0, 0, 0)
    assert all(m.n == 0 and math.isnan(m.max) for m in s.metrics)
    assert s.errors == () and s.endpoints == ()


def test_rates_count_the_requests_that_ended_in_the_window(tmp_path: Path) -> None:
    # A 2 s request every second; those still running at the end are cut off.
    records = [
        req(i + 0.5, 2000.0, tokens=4)
        if i + 2.5 <= 12.0
        else req(i + 0.5, 2000.0, status=0, error=CANCELLED_ERROR)
        for i in range(12)
    ]
    path = write_judged_run(tmp_path / "run", records, duration_s=12.0, warmup_s=2.0)

    s = summarize_run(load_run(path))

    assert s.window_s == 10.0
    assert s.ok == 8  # started in the window and finished
    assert s.requests_per_s == pytest.approx(1.0)  # ended in it: 10, two from the warm-up
    assert s.output_tokens_per_s == pytest.approx(4.0)
    assert s.errors_per_s == 0.0


def test_one_cause_with_many_texts_is_one_class_in_the_summary_and_the_markdown(
    tmp_path: Path,
) -> None:
    # A rate limiter whose text embeds a wait, and a stream whose bad event is quoted whole:
    # 39 + 22 distinct texts, two causes.
    reqs = [
        *[
            Req(at_s=i * 0.1, latency_s=0.01, error=f'malformed SSE event: {{"n": {i}}}')
            for i in range(39)
        ],
        *[
            Req(at_s=i * 0.1, latency_s=0.01, status=429, error=f"HTTP 429: wait 0.{i:02d}s")
            for i in range(22)
        ],
        *steady(5),
    ]
    run = load_run(write_run(tmp_path / "run", reqs))
    s = summarize_run(run)
    assert [(e.error_class, e.count, e.statuses) for e in s.errors] == [
        ("malformed_sse", 39, (200,)),
        ("http_429", 22, (429,)),
    ]
    assert s.errors[1].example == "HTTP 429: wait 0.00s"  # ties: the first text in order
    markdown = markdown_summary(run, None, s)
    assert "| `malformed_sse` | 39 | HTTP 200 |" in markdown
    assert "| `http_429` | 22 | HTTP 429 |" in markdown
