from __future__ import annotations

import numpy as np

from dashboards import Panel, build_panels
from dashboards.failures import class_counts
from sla.files.run import Run
from sla.metrics import with_request_metrics
from tests.dashboards import T0, synthetic_run, trace, with_columns


def _errors(run: Run) -> Panel | None:
    return {p.key: p for p in build_panels(run, window_s=10.0)}.get("errors")


def test_errors_by_class_and_by_status_over_time() -> None:
    run = synthetic_run(4_000, duration_s=60.0, error_share=0.1, cancelled=4)
    panel = _errors(run)
    assert panel is not None
    rows = with_request_metrics(run.requests).iloc[:-4]  # the cancelled are not failures
    failed = rows[~rows["ok"]]
    bars = panel.figure.data[0]
    counts = failed["status"].value_counts()
    assert dict(zip(bars.y, bars.x, strict=True)) == {
        "http_429": counts[429],
        "http_5xx": counts[500],
    }
    t = failed["start"].to_numpy() - T0
    for status in (500, 429):
        per_window = trace(panel.figure, f"HTTP {status}")
        mine = t[failed["status"].to_numpy() == status]
        assert list(per_window.y) == np.histogram(mine, bins=np.arange(0.0, 61.0, 10.0))[0].tolist()
        assert per_window.xaxis == "x2"
    assert "4 requests cancelled" in panel.note
    assert panel.title == f"Errors ({len(failed):,} failed requests)"


def test_one_bar_per_class_however_many_distinct_messages() -> None:
    # 25 texts of one kind of failure (each embeds its own number): one class, one bar.
    run = synthetic_run(300, error_share=1.0)
    errors = [f"malformed SSE event: {{'n': {i % 25}}}" for i in range(300)]
    run = with_columns(run, error=errors, status=np.full(300, 200), error_class=None)
    counts = class_counts(with_request_metrics(run.requests))
    assert counts.to_dict() == {"malformed_sse": 300}


def test_a_failure_without_error_text_is_named_by_its_status() -> None:
    run = synthetic_run(100)
    status = np.where(np.arange(100) < 10, 503, 200).astype(np.int32)
    panel = _errors(with_columns(run, status=status, error_class=None))
    assert panel is not None
    assert list(panel.figure.data[0].y) == ["http_5xx"]


def test_no_failure_no_errors_panel() -> None:
    assert _errors(synthetic_run(500, cancelled=3)) is None
