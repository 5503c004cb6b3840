"""The server's own timings as metrics: ``server_*_ms`` and ``client_overhead_ms``, in SLA
specs and verdicts; a run whose server told nothing never passes an objective on them."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from sla.files.run import RequestRecord, load_run
from sla.metrics import with_request_metrics
from sla.objectives import Status
from sla.verdict import evaluate
from tests.sla.test_verdict import req, spec_of, write_run


def _told(rec: RequestRecord, queue_ms: float) -> RequestRecord:
    """``rec`` with server timings: queue, 10 ms prefill, the rest of its latency decode,
    and a total 2 ms short of what the client saw from its send."""
    latency_ms = (rec.done_at - rec.sent_at) * 1000.0
    return replace(
        rec,
        server_queue_ms=queue_ms,
        server_prefill_ms=10.0,
        server_decode_ms=latency_ms - queue_ms - 12.0,
        server_total_ms=latency_ms - 2.0,
        server_timing_source="timings",
    )


def test_client_overhead_is_from_the_send_not_the_schedule(tmp_path: Path) -> None:
    rec = _told(req(0.0, 300.0), queue_ms=5.0)
    late = replace(rec, scheduled_at=rec.sent_at - 0.050)  # open loop, sent 50 ms late
    silent = req(1.0, 300.0)  # the server said nothing
    rows = with_request_metrics(load_run(write_run(tmp_path, [rec, late, silent])).requests)
    assert rows["client_overhead_ms"].iloc[0] == pytest.approx(2.0)
    assert rows["client_overhead_ms"].iloc[1] == pytest.approx(2.0)  # not 52: the lag is ours
    assert rows["latency_ms"].iloc[1] == pytest.approx(350.0)
    assert math.isnan(rows["client_overhead_ms"].iloc[2])
    assert math.isnan(rows["server_queue_ms"].iloc[2])


def test_objectives_on_server_timings(tmp_path: Path) -> None:
    told = [_told(req(i * 0.1, 300.0), queue_ms=float(i % 10)) for i in range(400)]
    run = load_run(write_run(tmp_path / "told", told))
    spec = spec_of(
        {"metric": "server_queue_ms", "stat": "p99", "max": 100},  # "p99 server queue <= 100 ms"
        {"metric": "client_overhead_ms", "stat": "p50", "max": 1},
        {"metric": "server_total_ms", "stat": "max", "max": 1000},
    )
    queue, overhead, total = evaluate(spec, run).objectives
    assert (queue.status, queue.n) == (Status.PASS, 400)
    assert queue.observed == pytest.approx(9.0)
    assert overhead.status is Status.FAIL and overhead.observed == pytest.approx(2.0)
    assert total.status is Status.PASS

    silent = load_run(write_run(tmp_path / "silent", [req(i * 0.1, 300.0) for i in range(400)]))
    verdict = evaluate(spec, silent)
    assert [o.status for o in verdict.objectives] == [Status.INCONCLUSIVE] * 3
    assert [o.n for o in verdict.objectives] == [0, 0, 0]
    assert verdict.status is Status.INCONCLUSIVE  # never a PASS on no data
