from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from reports.ci import junit_xml, markdown_summary
from reports.render import render_report
from sla.files.run import load_run
from sla.objectives import Status
from sla.spec import parse_spec
from sla.verdict import Verdict, evaluate
from tests.reports import Req, steady, write_run

SPEC = {
    "name": "ci",
    "confidence": 0.9,
    "objectives": [
        {"metric": "latency_ms", "stat": "p50", "max": 1000},  # PASS
        {"metric": "latency_ms", "stat": "p90", "max": 50},  # FAIL: every request is >= 100 ms
        {"metric": "ttft_ms", "stat": "p99.9", "max": 100},  # INCONCLUSIVE: too few samples
    ],
}


@pytest.fixture
def verdict(tmp_path: Path) -> Verdict:
    return evaluate(parse_spec(SPEC), load_run(write_run(tmp_path / "run", steady(60))))


def cases(xml_text: str) -> dict[str, ET.Element]:
    root = ET.fromstring(xml_text)
    return {case.attrib["name"]: case for case in root.iter("testcase")}


def test_one_testcase_per_objective_with_the_objectives_message(verdict: Verdict) -> None:
    assert [r.status for r in verdict.objectives] == [Status.PASS, Status.FAIL, Status.INCONCLUSIVE]
    text = junit_xml(verdict)
    root = ET.fromstring(text)
    assert root.attrib["tests"] == "3" and root.attrib["failures"] == "2"
    got = cases(text)
    assert list(got) == ["p50 latency_ms", "p90 latency_ms", "p99.9 ttft_ms"]
    assert list(got["p50 latency_ms"]) == []
    failure = got["p90 latency_ms"].find("failure")
    assert failure is not None
    assert failure.attrib["message"] == verdict.objectives[1].message
    assert failure.text == verdict.objectives[1].message
    assert got["p99.9 ttft_ms"].find("failure") is not None
    suite = root.find("testsuite")
    assert suite is not None and suite.attrib["name"] == "sla.ci"


def test_allow_inconclusive_skips_instead_of_failing(verdict: Verdict) -> None:
    text = junit_xml(verdict, allow_inconclusive=True)
    got = cases(text)
    skipped = got["p99.9 ttft_ms"].find("skipped")
    assert skipped is not None and skipped.attrib["message"] == verdict.objectives[2].message
    root = ET.fromstring(text)
    assert (root.attrib["failures"], root.attrib["skipped"]) == ("1", "1")


def test_a_saturated_generator_adds_a_failing_case(verdict: Verdict) -> None:
    passing = replace(verdict, objectives=verdict.objectives[:1], status=Status.PASS)
    assert "load generator not saturated" not in cases(junit_xml(passing))
    got = cases(junit_xml(replace(passing, saturated=True)))
    failure = got["load generator not saturated"].find("failure")
    assert failure is not None and "saturated" in failure.attrib["message"]


def test_strings_xml_cannot_hold_are_replaced_not_fatal(verdict: Verdict) -> None:
    bad = replace(verdict, spec_name="a\x00b\x1b<&>\"'")
    root = ET.fromstring(junit_xml(bad))  # parses: control characters were replaced
    suite = root.find("testsuite")
    assert suite is not None and suite.attrib["name"] == "sla.a\ufffdb\ufffd<&>\"'"


def test_markdown_summary_has_the_verdict_table_and_key_numbers(
    tmp_path: Path, verdict: Verdict
) -> None:
    run = load_run(tmp_path / "run")
    text = markdown_summary(run, verdict)
    assert text.startswith("### slabench: chat: ❌ FAIL (SLA ci)")
    assert "60 requests measured (60 ok, 0 failed) over 10.00 s: 6.000 req/s" in text
    assert "| p90 latency\\_ms |" in text and "❌ FAIL |" in text
    assert f"- {verdict.objectives[1].message}" in html.unescape(text.replace("\\", ""))
    assert "| `latency_ms` | 60 |" in text
    assert "no SLA" in markdown_summary(run, None)


def test_markdown_escapes_strings_from_the_run(tmp_path: Path) -> None:
    hostile = "<script>alert(1)</script> | [x](javascript:alert(2)) *b*"
    run_dir = write_run(
        tmp_path / "run",
        [Req(0.1, 0.1, status=500, error=hostile)],
        meta={"scenario": hostile, "target_url": hostile},
    )
    text = markdown_summary(load_run(run_dir), None)
    assert "<script>" not in text and "[x](" not in text
    assert "&lt;script&gt;alert\\(1\\)" in text or "&lt;script&gt;alert(1)" in text
    assert "\\|" in text  # a pipe cannot split a table row
    for line in text.splitlines():
        if line.startswith("| &lt;script"):
            assert line.count(" | ") == 2  # error, status, count: still three cells


def test_a_label_with_a_pipe_stays_in_its_cell(tmp_path: Path) -> None:
    # `p50 ttft_ms [endpoint chat|completions]` in a code span split the GitHub table row.
    run = load_run(write_run(tmp_path / "run", steady(60)))
    where = {"endpoint": ["chat", "completions"]}
    spec = {"objectives": [{"metric": "ttft_ms", "stat": "p50", "max": 450, "where": where}]}
    text = markdown_summary(run, evaluate(parse_spec(spec), run))
    (row,) = [line for line in text.splitlines() if "ttft" in line and "endpoint" in line]
    assert row.startswith("| p50 ttft\\_ms \\[endpoint chat\\|completions\\] | ")
    assert len(re.findall(r"(?<!\\)\|", row)) == 7  # six cells: the label's pipe is escaped


def test_a_saturated_run_reads_inconclusive_in_every_output(tmp_path: Path) -> None:
    # It exits 4: its status must not read PASS (once: markdown ✅ PASS, the badge, JUnit).
    run = load_run(write_run(tmp_path / "run", steady(60), meta={"generator": {"saturated": True}}))
    spec = {"objectives": [{"metric": "latency_ms", "stat": "p50", "max": 1000}]}
    verdict = evaluate(parse_spec(spec), run)
    assert verdict.objectives[0].status is Status.PASS and verdict.status is Status.INCONCLUSIVE
    text = markdown_summary(run, verdict)
    assert text.startswith("### slabench: chat: ⚠️ INCONCLUSIVE (SLA ")
    assert "saturated, never a PASS" in text
    suite = ET.fromstring(junit_xml(verdict)).find("testsuite")
    assert suite is not None
    props = {p.attrib["name"]: p.attrib["value"] for p in suite.iter("property")}
    assert props["verdict"] == "INCONCLUSIVE"
    page = render_report(run, verdict, panels=[])
    assert 'id="verdict-badge">INCONCLUSIVE<' in page
    assert "Load generator saturated, never a PASS" in page
