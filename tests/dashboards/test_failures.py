from __future__ import annotations

import numpy as np

from dashboards import Panel, build_panels
from dashboards.failures import TOP_REASONS, reason_counts
from sla.files.run import Run
from sla.metrics import with_request_metrics
from tests.dashboards import T0, synthetic_run, trace, with_columns


def _errors(run: Run) -> Panel | None:
    return {p.key: p for p in build_panels(run, window_s=10.0)}.get("errors")


def test_errors_by_reason_and_by_status_over_time() -> None:
    run = synthetic_run(4_000, duration_s=60.0, error_share=0.1, cancelled=4)
    panel = _errors(run)
    assert panel is not None
    rows = with_request_metrics(run.requests).iloc[:-4]  # the cancelled are not failures
    failed = rows[~rows["ok"]]
    bars = panel.figure.data[0]
    counts = failed["error"].value_counts()
    # Run text is escaped: plotly.js would render <b> as bold; escaped it shows as typed.
    assert dict(zip(bars.y, bars.x, strict=True)) == {
        "rate limited": counts["rate limited"],
        "server error &lt;b&gt;x&lt;/b&gt;": counts["server error <b>x</b>"],
    }
    t = failed["start"].to_numpy() - T0
    for status in (500, 429):
        per_window = trace(panel.figure, f"HTTP {status}")
        mine = t[failed["status"].to_numpy() == status]
        assert list(per_window.y) == np.histogram(mine, bins=np.arange(0.0, 61.0, 10.0))[0].tolist()
        assert per_window.xaxis == "x2"
    assert "4 requests cancelled" in panel.note
    assert panel.title == f"Errors ({len(failed):,} failed requests)"


def test_reasons_past_the_top_are_pooled() -> None:
    run = synthetic_run(300, error_share=1.0)
    run = with_columns(run, error=[f"timeout {i % 25}" for i in range(300)])
    counts = reason_counts(with_request_metrics(run.requests))
    assert len(counts) == TOP_REASONS + 1
    assert counts["other"] == 300 - counts.iloc[:TOP_REASONS].sum()


def test_a_failure_without_error_text_is_named_by_its_status() -> None:
    run = synthetic_run(100)
    status = np.where(np.arange(100) < 10, 503, 200).astype(np.int32)
    panel = _errors(with_columns(run, status=status))
    assert panel is not None
    assert list(panel.figure.data[0].y) == ["HTTP 503"]


def test_no_failure_no_errors_panel() -> None:
    assert _errors(synthetic_run(500, cancelled=3)) is None
