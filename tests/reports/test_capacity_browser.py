"""The capacity report in a real headless chromium, offline (the helpers of test_browser)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports import write_capacity_report
from tests.capacity_helpers import capacity_result, write_sweep
from tests.reports.test_browser import CHROMIUM, HOSTILE, open_report, problems, requested_urls

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)",
    ),
]


def test_the_capacity_report_draws_every_figure_offline_with_no_errors(tmp_path: Path) -> None:
    result = capacity_result(scenario=HOSTILE)
    result["steps"][7]["error"] = HOSTILE
    report = write_capacity_report(write_sweep(tmp_path / "sweep", result, run_reports={10}))
    state, events = open_report(report, tmp_path)
    assert state["figures"] == 2  # the latency–throughput curve, load against throughput
    assert state["drawn"] == state["plots"] == state["figures"], state
    assert state["mainSvgs"] >= state["figures"]
    assert state["badge"] == "capacity found" and state["badgeVisible"]
    assert "Capacity: 24.675 req/s" in state["text"]
    assert not state["pwned"] and state["foreign"] == 0 and state["scripts"] == 3
    assert state["title"] == f"slabench capacity: {HOSTILE} (24.675 req/s)"
    assert problems(events) == []
    assert [url for url in requested_urls(events) if not url.startswith("file://")] == []
