"""An incomplete run (``Run.incomplete``) says so in the HTML report, JUnit and markdown."""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from reports.ci import junit_xml, markdown_summary
from reports.render import render_report
from sla.files.run import load_run
from sla.verdict import evaluate
from tests.sla.test_incomplete import CAUSES, SPEC, incomplete_run


@pytest.mark.parametrize("cause", CAUSES)
def test_the_report_and_ci_outputs_give_the_reason(tmp_path: Path, cause: str) -> None:
    run = load_run(incomplete_run(tmp_path / "run", cause, n=60))
    verdict = evaluate(SPEC, run)
    page = render_report(run, verdict, panels=[])
    assert 'id="verdict-badge">INCONCLUSIVE<' in page
    for reason in run.incomplete:
        assert html.escape(f"Incomplete run, never a PASS: {reason}") in page
    junit = ET.fromstring(junit_xml(verdict, allow_inconclusive=True))
    failed = [c.get("name") for c in junit.iter("testcase") if c.find("failure") is not None]
    assert failed == ["run complete"]
    assert "incomplete run, never a PASS" in markdown_summary(run, verdict)
