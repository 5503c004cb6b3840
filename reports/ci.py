"""CI outputs of a verdict: JUnit XML (one test case per objective) and a markdown summary.

JUnit: a FAIL objective is a ``<failure>`` whose message is the objective's message; an
INCONCLUSIVE one is a failure too, or ``<skipped>`` with ``allow_inconclusive``. A saturated
load generator adds one failing case, "load generator not saturated" (its run is never a
PASS, and its exit code is 4: ``sla.verdict.exit_code``); an incomplete run adds a failing
case "run complete", a disturbed load generator "load generator not disturbed" (with or
without ``allow_inconclusive``). Characters that XML 1.0 forbids (control
characters in an error text) are replaced by U+FFFD so that every CI parser reads the file.

Markdown: for a CI job summary page (GitHub renders inline HTML there, so every string from
the run or the spec, objective labels included, is HTML-escaped and markdown-escaped: a
``|`` left in a label, as in ``[endpoint chat|completions]``, would split its table cell,
even inside a code span).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from reports import fmt
from reports.summary import RunSummary, summarize_run
from sla.files.run import Run
from sla.objectives import Status
from sla.reading import Reading
from sla.verdict import Verdict

__all__ = ["junit_xml", "markdown_summary"]

_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_RUN_CASES = {
    "INCOMPLETE": "run complete",
    "DISTURBED": "load generator not disturbed",
    "SATURATED": "load generator not saturated",
}
_ICONS = {Status.PASS: "✅", Status.FAIL: "❌", Status.INCONCLUSIVE: "⚠️"}


def _x(text: object) -> str:
    return _XML_INVALID.sub("\ufffd", str(text))


def junit_xml(verdict: Verdict, *, allow_inconclusive: bool = False) -> str:
    """The verdict as a JUnit XML document (one testsuite, one testcase per objective)."""
    suite_name = _x(f"sla.{verdict.spec_name}")
    cases, failures, skipped = [], 0, 0
    for r in verdict.objectives:
        case = ET.Element("testcase", classname=suite_name, name=_x(r.label), time="0")
        if r.status is Status.FAIL or (r.status is Status.INCONCLUSIVE and not allow_inconclusive):
            failure = ET.SubElement(case, "failure", message=_x(r.message), type=str(r.status))
            failure.text = _x(r.message)
            failures += 1
        elif r.status is Status.INCONCLUSIVE:
            ET.SubElement(case, "skipped", message=_x(r.message))
            skipped += 1
        cases.append(case)
    for kind, message in _run_problems(verdict):
        case = ET.Element("testcase", classname=suite_name, name=_RUN_CASES[kind], time="0")
        ET.SubElement(case, "failure", message=_x(message), type=kind).text = _x(message)
        cases.append(case)
        failures += 1
    counts = {
        "tests": str(len(cases)),
        "failures": str(failures),
        "errors": "0",
        "skipped": str(skipped),
    }
    root = ET.Element("testsuites", {"name": "slabench", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": suite_name, "time": "0", **counts})
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("run", verdict.run_path),
        ("spec", verdict.spec_source),
        ("verdict", str(verdict.status)),
        ("confidence", f"{verdict.confidence:g}"),
    ):
        ET.SubElement(props, "property", name=name, value=_x(value))
    suite.extend(cases)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _run_problems(verdict: Verdict) -> list[tuple[str, str]]:
    """What makes the whole run untrustworthy, each a failing case: (kind, message)."""
    out = []
    if verdict.incomplete:
        out.append(("INCOMPLETE", "incomplete run, never a PASS: " + "; ".join(verdict.incomplete)))
    if verdict.disturbed:
        out.append(
            (
                "DISTURBED",
                "load generator disturbed, never a PASS: " + "; ".join(verdict.disturbed),
            )
        )
    if verdict.saturated:
        out.append(
            (
                "SATURATED",
                "the load generator was saturated (run.json generator.saturated), never a "
                "PASS: its timings are not trustworthy: add load-generator processes and re-run",
            )
        )
    return out


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~!])")


def md(text: object) -> str:
    """A run's string as inert markdown text: HTML-escaped, markdown-escaped, one line."""
    escaped = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    escaped = _MD_SPECIAL.sub(r"\\\1", escaped)
    return " ".join(escaped.split())


def markdown_summary(
    run: Run | Reading, verdict: Verdict | None, summary: RunSummary | None = None
) -> str:
    """A short markdown summary: verdict, objective table, key numbers, warnings (of a run,
    or of a reading of it with its summary already made)."""
    s = summary if summary is not None else summarize_run(run)
    if isinstance(run, Reading):
        run = run.run
    lines = _md_head(run, verdict, s)
    if verdict is not None:
        lines += _md_objectives(verdict)
    lines += ["| metric (ms) | n | p50 | p90 | p99 | max |", "|---|---:|---:|---:|---:|---:|"]
    for m in s.metrics:
        if m.n:
            lines.append(
                f"| `{m.metric}` | {m.n:,} | {fmt.exact(m.p50)} | {fmt.exact(m.p90)} | "
                f"{fmt.exact(m.p99)} | {fmt.exact(m.max)} |"
            )
    if s.errors:
        lines += ["", "| error class | count | status | most frequent message |"]
        lines += ["|---|---:|---|---|"]
        lines += [
            f"| `{e.error_class}` | {e.count:,} | {e.statuses_text} | {md(e.example)} |"
            for e in s.errors[:5]
        ]
    return "\n".join(lines) + "\n"


def _md_head(run: Run, verdict: Verdict | None, s: RunSummary) -> list[str]:
    """The title, the key numbers and the warnings."""
    scenario = md(run.meta.get("scenario") or "run")
    if verdict is None:
        lines = [f"### slabench: {scenario}: no SLA", ""]
    else:
        icon = _ICONS[verdict.status]
        lines = [
            f"### slabench: {scenario}: {icon} {verdict.status} (SLA {md(verdict.spec_name)})",
            "",
        ]
    lines.append(
        f"{s.measured:,} requests measured ({s.ok:,} ok, {s.failed:,} failed) over "
        f"{fmt.duration(s.window_s)}: {fmt.exact(s.requests_per_s)} req/s, "
        f"{fmt.exact(s.output_tokens_per_s)} output tok/s; target "
        f"{md(run.meta.get('target_url') or 'n/a')}"
    )
    lines.append("")
    if run.saturated or (verdict is not None and verdict.saturated):
        lines += [
            "> **Warning:** the load generator was saturated, never a PASS: its timings are "
            "not trustworthy.",
            "",
        ]
    if run.incomplete:
        reasons = md("; ".join(run.incomplete))
        lines += [f"> **Warning:** incomplete run, never a PASS: {reasons}.", ""]
    if run.disturbed:
        reasons = md("; ".join(run.disturbed))
        lines += [f"> **Warning:** load generator disturbed, never a PASS: {reasons}.", ""]
    return lines


def _md_objectives(verdict: Verdict) -> list[str]:
    """The objective table, then the message of every objective that did not pass."""
    lines = [
        "| objective | observed | limit | margin | n | status |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in verdict.objectives:
        lines.append(
            f"| {md(r.label)} | {fmt.exact_value(r.metric, r.observed)} | "
            f"{fmt.limit_text(r)} | {fmt.margin_text(r)} | {r.n:,} | "
            f"{_ICONS[r.status]} {r.status} |"
        )
    lines.append("")
    lines += [f"- {md(r.message)}" for r in verdict.objectives if r.status is not Status.PASS]
    if any(r.status is not Status.PASS for r in verdict.objectives):
        lines.append("")
    return lines
