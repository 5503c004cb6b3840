"""The self-contained HTML report and CI outputs (JUnit XML, markdown summary).

    from reports import render_report, write_report, junit_xml, markdown_summary
    html_text = render_report(load_run("runs/x"), verdict)   # one offline HTML file
    write_report(Path("runs/x"), verdict)                     # -> runs/x/report.html

A caller that already loaded the run reads it once and hands the same objects on::

    reading = read_run(load_run("runs/x"))        # sla.reading: window and metrics, once
    summary = summarize_run(reading)
    verdict = evaluate(spec, reading)             # sla.verdict
    write_report(reading, verdict, summary=summary)

Command line: ``python -m reports RUN_DIR``, ``compare``, ``junit``, ``markdown``,
``capacity``, ``capacity-compare`` (see ``reports.__main__``). Errors a user can cause
raise a ``sla.errors.SlabenchError`` (``ReportError`` here; ``RunDirError``,
``SpecError``, ``CapacityError`` from ``sla``; ``DashboardError``), each one line.

- ``reports.summary``: exact numbers of a run for the tables.
- ``reports.html``: escaping, tables, the page (plotly.js inlined once, strict CSP).
- ``reports.render``: single-run and comparison reports; ``write_report``,
  ``resolve_verdict`` (a spec given, else the run's verdict.json).
- ``reports.ci``: ``junit_xml``, ``markdown_summary``.
- ``reports.capacity``: the report of a capacity search (a sweep directory);
  ``reports.capacity_compare``: the comparison of several; ``reports.capacity_pieces``:
  the text and HTML pieces both use.
- ``reports.errors``: ``ReportError``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reports.capacity import render_capacity_report, write_capacity_report
    from reports.capacity_compare import render_capacity_comparison
    from reports.ci import junit_xml, markdown_summary
    from reports.errors import ReportError
    from reports.render import (
        REPORT_FILE,
        render_comparison,
        render_report,
        resolve_verdict,
        write_html,
        write_report,
    )
    from reports.summary import RunSummary, summarize_run

__all__ = [
    "REPORT_FILE",
    "ReportError",
    "RunSummary",
    "junit_xml",
    "markdown_summary",
    "render_capacity_comparison",
    "render_capacity_report",
    "render_comparison",
    "render_report",
    "resolve_verdict",
    "summarize_run",
    "write_capacity_report",
    "write_html",
    "write_report",
]

# Each name is imported from its module when first asked for: a locust imports
# ``reports.summary`` for its summary, and plotly (``reports.render``, ``reports.capacity``)
# only when it writes a report (~0.1 s of every start otherwise).
_MODULES = {
    "REPORT_FILE": "reports.render",
    "ReportError": "reports.errors",
    "RunSummary": "reports.summary",
    "junit_xml": "reports.ci",
    "markdown_summary": "reports.ci",
    "render_capacity_comparison": "reports.capacity_compare",
    "render_capacity_report": "reports.capacity",
    "render_comparison": "reports.render",
    "render_report": "reports.render",
    "resolve_verdict": "reports.render",
    "summarize_run": "reports.summary",
    "write_capacity_report": "reports.capacity",
    "write_html": "reports.render",
    "write_report": "reports.render",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
