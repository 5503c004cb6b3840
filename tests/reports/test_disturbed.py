"""A disturbed load generator (``Run.disturbed``) says so in the HTML report (warning, badge,
SLA notes, the load generator table), JUnit, markdown and the SLA panel's title; the table
shows each process's loop lag next to its CPU, and old runs show n/a."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from dashboards.sla_panel import sla_panel
from reports.ci import junit_xml, markdown_summary
from reports.render import render_comparison, render_report
from sla.compare import compare, format_comparison
from sla.files.run import load_run
from sla.verdict import evaluate
from tests.reports import steady, write_run
from tests.sla.test_disturbed import CALM, HELD, generator, run_with
from tests.sla.test_incomplete import SPEC


def test_the_report_and_ci_outputs_give_the_reason(tmp_path: Path) -> None:
    run = load_run(run_with(tmp_path / "run", generator(CALM, HELD)))
    verdict = evaluate(SPEC, run)
    page = render_report(run, verdict, panels=[])
    (reason,) = run.disturbed
    assert 'id="verdict-badge">INCONCLUSIVE<' in page
    assert '<span class="badge warn">load generator disturbed</span>' in page
    assert html.escape(f"Load generator disturbed, never a PASS: {reason}") in page
    assert html.escape("The load generator was disturbed, never a PASS") in page
    junit = ET.fromstring(junit_xml(verdict, allow_inconclusive=True))
    failed = [c.get("name") for c in junit.iter("testcase") if c.find("failure") is not None]
    assert failed == ["load generator not disturbed"]
    assert "load generator disturbed, never a PASS" in markdown_summary(run, verdict)
    panel = sla_panel(verdict)
    assert panel is not None and "load generator disturbed" in panel.title


def generator_rows(page: str) -> list[list[str]]:
    body = page.split('<table class="generator">', 1)[1].split("</table>", 1)[0]
    return [
        [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body.split("<tbody>", 1)[1])
    ]


def test_the_load_generator_table_shows_lag_beside_cpu(tmp_path: Path) -> None:
    run = load_run(run_with(tmp_path / "run", generator(CALM, HELD)))
    page = render_report(run, evaluate(SPEC, run), panels=[])
    calm, held = generator_rows(page)
    assert calm == ["worker-0", "20.0", "n/a", "no", "0.5", "0.5", "0.5", "0.0% over 50.0 ms",
                    "no", "70.0", "80.0", "2"]  # fmt: skip
    assert held[0] == "worker-1" and held[6] == "350.0" and held[8] == "yes"
    assert held[7] == "21.8% over 50.0 ms"
    assert '<tr class="disturbed"><td>worker-1</td>' in page


def test_an_old_run_shows_n_a_for_what_it_did_not_measure(tmp_path: Path) -> None:
    old = {"processes": [{"worker": "local", "cpu": {"mean_percent": 12.5}}], "saturated": False}
    run = load_run(write_run(tmp_path / "run", steady(50), meta={"generator": old}))
    assert run.disturbed == ()
    page = render_report(run, evaluate(SPEC, run), panels=[])
    (row,) = generator_rows(page)
    assert row[:2] == ["local", "12.5"] and set(row[4:]) == {"n/a"}
    assert "load generator disturbed" not in page


def test_a_comparison_warns_of_a_disturbed_run(tmp_path: Path) -> None:
    baseline = load_run(run_with(tmp_path / "base", generator(CALM)))
    candidate = load_run(run_with(tmp_path / "cand", generator(HELD)))
    comparison = compare(baseline, candidate)
    assert comparison.baseline_disturbed == () and comparison.candidate_disturbed
    (reason,) = candidate.disturbed
    text = format_comparison(comparison)
    assert f"WARNING: the candidate run's load generator was disturbed: {reason}" in text
    assert "baseline run's load generator was disturbed" not in text
    page = render_comparison(baseline, candidate, comparison, panels=[])
    said = html.escape(f"The candidate run's load generator was disturbed: {reason}.")
    assert said in page


def test_the_report_states_the_timing_error_the_loop_lag_implies(tmp_path: Path) -> None:
    run = load_run(run_with(tmp_path / "run", generator(CALM, HELD)))
    page = render_report(run, evaluate(SPEC, run), panels=[])
    assert "TTFT and latency may read up to 350.00 ms high at p99" in page
    assert "max 350.00 ms" in page
    old = {"processes": [{"worker": "local", "cpu": {"mean_percent": 12.5}}], "saturated": False}
    before = load_run(write_run(tmp_path / "old", steady(50), meta={"generator": old}))
    assert "Timing error" not in render_report(before, evaluate(SPEC, before), panels=[])
