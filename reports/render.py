"""Render a run, or a baseline-vs-candidate comparison, into one self-contained HTML file.

The file inlines plotly.js once and fetches nothing (see ``reports.html``), so it opens
offline in any browser, years later. Figures come from ``dashboards``; the exact numbers in
the tables come from ``reports.summary`` and the SLA package.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from dashboards import build_panels, comparison_panels
from reports import fmt
from reports.breakdown import breakdown_section
from reports.errors import ReportError
from reports.html import Markup, PanelLike, esc, figure_slots, page, table
from reports.sections import (
    details_section,
    endpoints_section,
    errors_section,
    header,
    sla_section,
    summary_section,
    warnings,
)
from reports.summary import RunSummary, summarize_run
from reports.turns import turns_section
from sla.compare import Change, Comparison
from sla.files.jsonio import unique_temp
from sla.files.run import Run, load_run
from sla.files.verdict import load_verdict
from sla.reading import Reading, read_run
from sla.spec import load_spec
from sla.verdict import Verdict, evaluate

__all__ = [
    "REPORT_FILE",
    "render_comparison",
    "render_report",
    "resolve_verdict",
    "write_html",
    "write_report",
]

REPORT_FILE = "report.html"


def render_report(
    run: Run | Reading,
    verdict: Verdict | None = None,
    *,
    panels: Sequence[PanelLike] | None = None,
    window_s: float | None = None,
    summary: RunSummary | None = None,
) -> str:
    """The HTML report of ``run`` (pure), or of a reading already made of it. ``panels``
    defaults to ``dashboards.build_panels``; ``window_s`` is the time-series window passed
    to it (None: its default); ``summary`` defaults to ``summarize_run`` of the reading."""
    reading = run if isinstance(run, Reading) else read_run(run)
    if panels is None:
        panels = build_panels(reading, verdict, window_s=window_s)
    if summary is None:
        summary = summarize_run(reading)
    run = reading.run
    slots, figures_json = figure_slots(panels)
    body = Markup(
        header(run, verdict, summary)
        + warnings(run, summary)
        + sla_section(verdict)
        + summary_section(summary)
        + turns_section(reading)
        + breakdown_section(reading)
        + Markup(f'<section id="figures"><h2>Figures</h2><div class="grid">{slots}</div></section>')
        + errors_section(summary)
        + endpoints_section(summary)
        + details_section(run)
        + _footer()
    )
    scenario = str(run.meta.get("scenario") or "run")
    status = str(verdict.status) if verdict is not None else "no SLA"
    return page(f"slabench: {scenario} ({status})", body, figures_json)


def render_comparison(
    baseline: Run,
    candidate: Run,
    comparison: Comparison,
    *,
    panels: Sequence[PanelLike] | None = None,
) -> str:
    """The HTML comparison report (pure); ``panels`` defaults to
    ``dashboards.comparison_panels``."""
    if panels is None:
        panels = comparison_panels(baseline, candidate, comparison)
    slots, figures_json = figure_slots(panels, prefix="cmp")
    regressed = len(comparison.regressed)
    inconclusive = sum(c.verdict is Change.INCONCLUSIVE for c in comparison.changes)
    if regressed:
        badge = f'<span class="badge FAIL" id="verdict-badge">REGRESSED ({regressed})</span>'
    elif comparison.exit_code:  # saturated, incomplete, disturbed or nothing to compare
        badge = '<span class="badge INCONCLUSIVE" id="verdict-badge">NOT TRUSTWORTHY</span>'
    else:
        badge = '<span class="badge PASS" id="verdict-badge">NO REGRESSION</span>'
    sub = (
        f"Tolerated worsening {comparison.max_regression * 100:g}% at "
        f"{comparison.confidence * 100:g}% confidence; {inconclusive} metric(s) inconclusive."
    )
    body = Markup(
        f'<header><h1>slabench comparison {badge}</h1><p class="sub">{esc(sub)}</p></header>'
        + _comparison_warnings(comparison)
        + _runs_table(baseline, candidate)
        + _delta_section(comparison)
        + Markup(f'<section id="figures"><h2>Figures</h2><div class="grid">{slots}</div></section>')
        + _footer()
    )
    return page("slabench comparison", body, figures_json)


def write_html(text: str, path: Path) -> Path:
    """Write ``text`` to ``path`` atomically (readers never see half a report)."""
    if not path.parent.is_dir():
        raise ReportError(f"cannot write {path}: {path.parent} is not a directory; create it")
    tmp: Path | None = None
    try:
        fd, tmp = unique_temp(path)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise ReportError(f"cannot write {path} ({exc.strerror or exc}); pick another -o") from exc
    return path


def write_report(
    run: str | os.PathLike[str] | Run | Reading,
    verdict: Verdict | None = None,
    *,
    summary: RunSummary | None = None,
) -> Path:
    """Render ``<run directory>/report.html``: of a run directory, a loaded run, or a
    reading of it (then nothing is loaded or derived again), with the verdict given, else
    the run's verdict.json if any, and ``summary`` when already made.

    Raises a ``SlabenchError`` (``ReportError``, ``RunDirError``...; one line) on bad input.
    """
    if isinstance(run, str | os.PathLike):
        run = load_run(run)
    if verdict is None:
        verdict = load_verdict(run.path)
    return write_html(render_report(run, verdict, summary=summary), run.path / REPORT_FILE)


def resolve_verdict(run: Run | Reading, sla_path: str | None) -> Verdict | None:
    """Judge ``run`` with the spec at ``sla_path`` when given, else read its verdict.json."""
    if sla_path is not None:
        return evaluate(load_spec(sla_path), run)
    return load_verdict(run.path)


def _runs_table(baseline: Run, candidate: Run) -> Markup:
    rows = []
    for role, run in (("baseline", baseline), ("candidate", candidate)):
        meta = run.meta
        rows.append(
            (
                role,
                str(run.path),
                str(meta.get("scenario") or "n/a"),
                str(meta.get("target_url") or "n/a"),
                fmt.timestamp(meta.get("started_at")),
                fmt.count(len(run.requests)),
            )
        )
    body = table(
        ("run", "directory", "scenario", "target", "started", "recorded"), rows, numeric_from=5
    )
    return Markup(f'<section id="runs"><h2>Runs</h2>{body}</section>')


def _delta_section(comparison: Comparison) -> Markup:
    rows, classes = [], []
    for c in comparison.changes:
        rows.append(
            (
                c.label,
                fmt.exact_value(c.metric, c.baseline),
                fmt.exact_value(c.metric, c.candidate),
                c.change_text,
                c.ci_text,
                f"{c.n_baseline:,} / {c.n_candidate:,}",
                str(c.verdict),
            )
        )
        classes.append(c.verdict.name.lower())
    headers = (
        "metric",
        "baseline",
        "candidate",
        "change",
        f"{comparison.confidence * 100:g}% CI",
        "n (base / cand)",
        "verdict",
    )
    body = table(headers, rows, cls="deltas", row_classes=classes)
    notes = "".join(
        f"<li>{esc(c.message)}</li>"
        for c in comparison.changes
        if c.verdict is not Change.NO_CHANGE
    )
    extra = f'<ul class="messages">{notes}</ul>' if notes else ""
    return Markup(f'<section id="deltas"><h2>Changes</h2>{body}{extra}</section>')


def _comparison_warnings(comparison: Comparison) -> Markup:
    out = []
    for role, flag in (
        ("baseline", comparison.baseline_saturated),
        ("candidate", comparison.candidate_saturated),
    ):
        if flag:
            out.append(
                f'<div class="warning bad" role="alert">The {role} run\'s load generator was '
                "saturated: its timings are not trustworthy.</div>"
            )
    out.extend(
        f'<div class="warning bad" role="alert">{esc(reason[0].upper() + reason[1:])}.</div>'
        for reason in comparison.untrusted
    )
    out.extend(
        f'<div class="warning" role="note">{esc(warning[0].upper() + warning[1:])}.</div>'
        for warning in comparison.warnings
    )
    return Markup("".join(out))


def _footer() -> Markup:
    version = "unknown"
    with contextlib.suppress(metadata.PackageNotFoundError):
        version = metadata.version("slabench")
    return Markup(
        f"<footer>Made by slabench {esc(version)}. This file is self-contained: it loads "
        "nothing from the network and opens offline.</footer>"
    )
