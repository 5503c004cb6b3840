"""The parts of a single-run report: header, warnings, SLA table, summary tables, details.

Every function takes parsed objects and returns ``Markup``; strings from the run (scenario,
target URL, endpoint names, error texts, spec name, versions, the command line) are escaped
by ``reports.html``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from reports import fmt
from reports.generator import generator_table, timing_error_note
from reports.html import Markup, esc, join, table
from reports.summary import RunSummary
from sla.files.run import PARTS_DIR, Run
from sla.objectives import Status
from sla.verdict import Verdict

__all__ = [
    "details_section",
    "endpoints_section",
    "errors_section",
    "header",
    "sla_section",
    "summary_section",
    "verdict_badge",
    "warnings",
]


def verdict_badge(verdict: Verdict | None) -> Markup:
    if verdict is None:
        return Markup('<span class="badge none" id="verdict-badge">no SLA</span>')
    status = str(verdict.status)
    return Markup(f'<span class="badge {esc(status)}" id="verdict-badge">{esc(status)}</span>')


def header(run: Run, verdict: Verdict | None, summary: RunSummary) -> Markup:
    meta = run.meta
    scenario = str(meta.get("scenario") or "unnamed scenario")
    extra = ' <span class="badge warn">load generator saturated</span>' if run.saturated else ""
    if run.disturbed:
        extra += ' <span class="badge warn">load generator disturbed</span>'
    lines = [f"<header><h1>slabench report: {esc(scenario)} {verdict_badge(verdict)}{extra}</h1>"]
    if verdict is not None:
        c = verdict.counts
        lines.append(
            f'<p class="sub">SLA <b>{esc(verdict.spec_name)}</b> '
            f'(<span class="mono">{esc(verdict.spec_source)}</span>): {c.measured:,} requests '
            f"judged ({c.ok:,} ok, {c.failed:,} failed) over {esc(fmt.duration(verdict.window_s))}"
            f", bounds at {verdict.confidence * 100:g}% confidence</p>"
        )
    else:
        lines.append('<p class="sub">No SLA spec was given for this run.</p>')
    started, ended = meta.get("started_at"), meta.get("ended_at")
    length = _number(ended) - _number(started)
    items = [
        ("Target", Markup(f'<span class="mono">{esc(meta.get("target_url") or "n/a")}</span>')),
        ("Started", fmt.timestamp(started)),
        ("Duration", fmt.duration(length)),
        ("Measured window", f"{fmt.duration(summary.window_s)} (after warm-up)"),
        ("Load profile", _load_profile(meta.get("load_profile"))),
        ("Tools", _versions(meta.get("versions"))),
        ("Run directory", Markup(f'<span class="mono">{esc(run.path)}</span>')),
    ]
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items)
    lines.append(f'<dl class="meta">{rows}</dl></header>')
    return Markup("".join(lines))


def warnings(run: Run, summary: RunSummary | None = None) -> Markup:
    meta, out = run.meta, list[str]()
    if summary is not None:
        out.extend(w[0].upper() + w[1:] + "." for w in summary.size_warnings)
    if run.saturated:
        out.append(
            "The load generator was saturated (run.json generator.saturated), never a PASS "
            "(INCONCLUSIVE at best): it delivered less load than asked and its timings are "
            "not trustworthy. Add load-generator processes (--processes) or lower the load, "
            "and re-run."
        )
    out.extend(
        f"The load generator was disturbed, never a PASS (INCONCLUSIVE at best): {reason}. "
        "Every timestamp taken while its loop was late is late by as much; re-run on a "
        "quieter machine (see the load generator table under Run details)."
        for reason in run.disturbed
    )
    if run.from_parts:
        out.append(
            f"This run was never closed (the load generator was killed): it was recovered "
            f"from {PARTS_DIR}/. Requests not yet flushed when it stopped are missing, and "
            "without ended_at the window ends at the last completed request."
        )
    if run.incomplete:
        out.append(
            "Incomplete run, never a PASS (INCONCLUSIVE at best): "
            + "; ".join(run.incomplete)
            + "."
        )
    scrape = meta.get("server_metrics")
    if isinstance(scrape, Mapping) and scrape.get("problem"):
        out.append(f"Server metrics are missing or incomplete: {scrape['problem']}")
    return join(Markup(f'<div class="warning bad" role="alert">{esc(w)}</div>') for w in out)


def sla_section(verdict: Verdict | None) -> Markup:
    if verdict is None:
        return Markup("")
    headers = (
        "objective",
        "observed",
        "limit",
        "margin",
        "n",
        f"{verdict.confidence * 100:g}% CI",
        "status",
    )
    rows = [
        (
            r.label,
            fmt.exact_value(r.metric, r.observed),
            fmt.limit_text(r),
            fmt.margin_text(r),
            fmt.count(r.n),
            fmt.ci_text(r),
            str(r.status),
        )
        for r in verdict.objectives
    ]
    classes = [str(r.status) for r in verdict.objectives]
    body = table(headers, rows, cls="objectives", row_classes=classes)
    notes = [f"Incomplete run, never a PASS: {reason}" for reason in verdict.incomplete]
    notes += [f"Load generator disturbed, never a PASS: {reason}" for reason in verdict.disturbed]
    if verdict.saturated:
        notes.append(
            "Load generator saturated, never a PASS: its timings are not trustworthy "
            "(run.json generator.saturated)"
        )
    if verdict.stopped_early:
        notes.insert(0, f"Stopped early (--sla-stop-early): {verdict.stopped_early}")
    notes += [r.message for r in verdict.objectives if r.status is not Status.PASS]
    if verdict.counts.good is not None:
        notes.insert(
            0,
            f"{verdict.counts.good:,} of {verdict.counts.measured:,} judged "
            "requests met every per-request limit (good).",
        )
    listed = "".join(f"<li>{esc(n)}</li>" for n in notes)
    extra = f'<ul class="messages">{listed}</ul>' if notes else ""
    return Markup(f'<section id="sla"><h2>SLA objectives</h2>{body}{extra}</section>')


def summary_section(s: RunSummary) -> Markup:
    counts = table(
        ("requests", "count"),
        [
            ("recorded", fmt.count(s.recorded)),
            ("before the measured window (warm-up)", fmt.count(s.warmup)),
            ("cancelled by the end of the test", fmt.count(s.cancelled)),
            ("measured", fmt.count(s.measured)),
            ("successful", fmt.count(s.ok)),
            ("failed", fmt.count(s.failed)),
            ("open-loop sends dropped (run.json)", fmt.count(s.dropped)),
        ],
    )
    rates = table(
        ("over the measured window", "value"),
        [
            ("window", fmt.duration(s.window_s)),
            ("throughput", f"{fmt.exact(s.requests_per_s)} req/s"),
            ("output tokens", f"{fmt.exact(s.output_tokens_per_s)} tok/s"),
            ("errors", f"{fmt.exact(s.errors_per_s)} /s"),
            ("input tokens (successful)", fmt.count(s.input_tokens)),
            ("output tokens (successful)", fmt.count(s.output_tokens)),
        ],
    )
    latency = table(
        ("metric (ms)", "n", "mean", "p50", "p90", "p99", "p99.9", "max"),
        [
            (
                m.metric,
                fmt.count(m.n),
                *(fmt.exact(x) for x in (m.mean, m.p50, m.p90, m.p99, m.p99_9, m.max)),
            )
            for m in s.metrics
            if m.n
        ],
        cls="latency",
    )
    return Markup(
        '<section id="summary"><h2>Summary</h2><div class="tables">'
        f'<div style="display:flex;gap:28px;flex-wrap:wrap">{counts}{rates}</div>'
        f"<h3>Latency of successful measured requests (exact, from every record)</h3>"
        f"{latency}</div></section>"
    )


def errors_section(s: RunSummary) -> Markup:
    if s.failed == 0:
        return Markup('<section id="errors"><h2>Errors</h2><p>No failed requests.</p></section>')
    rows = [(e.error_class, e.statuses_text, e.example, fmt.count(e.count)) for e in s.errors]
    if s.other_errors:
        rows.append(("(other classes)", "", "", fmt.count(s.other_errors)))
    headers = ("error class", "status", "most frequent message", "count")
    body = table(headers, rows, numeric_from=3, cls="errors")
    return Markup(f'<section id="errors"><h2>Errors</h2>{body}</section>')


def endpoints_section(s: RunSummary) -> Markup:
    rows = [
        (
            e.endpoint,
            fmt.count(e.requests),
            fmt.count(e.ok),
            fmt.count(e.failed),
            fmt.exact(e.latency_p50_ms),
            fmt.exact(e.latency_p99_ms),
        )
        for e in s.endpoints
    ]
    if s.other_endpoints:
        rows.append((f"({s.other_endpoints:,} more endpoints)", "", "", "", "", ""))
    body = table(
        ("endpoint", "requests", "ok", "failed", "p50 latency (ms)", "p99 latency (ms)"), rows
    )
    return Markup(f'<section id="endpoints"><h2>Endpoints</h2>{body}</section>')


def details_section(run: Run) -> Markup:
    meta = run.meta
    profile = json.dumps(meta.get("load_profile"), indent=2, sort_keys=True, default=str)
    generator = json.dumps(meta.get("generator"), indent=2, sort_keys=True, default=str)
    command = str(meta.get("command") or "n/a")
    return Markup(
        '<section id="details"><h2>Run details</h2>'
        f"<p>Command: <code>{esc(command)}</code></p>"
        f"<details><summary>Load profile (run.json)</summary><pre>{esc(profile)}</pre></details>"
        "<h3>Load generator: its CPU, its event loop's lag, the rest of the machine</h3>"
        f"{generator_table(meta)}{timing_error_note(meta)}"
        "<details><summary>Load generator (run.json)</summary>"
        f"<pre>{esc(generator)}</pre></details></section>"
    )


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def _load_profile(profile: object) -> str:
    if not isinstance(profile, Mapping):
        return "n/a"
    parts = []
    for key, value in profile.items():
        if value is None or value == [] or value == {}:
            continue
        text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        if isinstance(value, dict):
            text = json.dumps(value, sort_keys=True, default=str)
        parts.append(f"{key}={text}")
    return " · ".join(parts) or "n/a"


def _versions(versions: object) -> str:
    if not isinstance(versions, Mapping) or not versions:
        return "n/a"
    return " · ".join(f"{name} {version}" for name, version in versions.items())
