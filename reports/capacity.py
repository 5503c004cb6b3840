"""The HTML report of a capacity search (its sweep directory): one self-contained page.

    render_capacity_report("runs/sweep")           # one self-contained page (str)
    write_capacity_report("runs/sweep")            # -> runs/sweep/report.html

A sweep directory holds ``capacity.json`` (``sla.files.capacity``) and one run directory per step.
The page is built like the run report (``reports.html``: the same CSP, plotly.js inlined
once, every string from the file escaped). A step's run directory is linked when it has a
``report.html``, relative to where the page is written (``out_dir``), so links survive
``-o`` elsewhere. Bad input raises ``sla.files.capacity.CapacityError`` or ``ReportError``.
The comparison of several searches is ``reports.capacity_compare``; the text and HTML pieces
both pages use (``capacity_text``, ``money``, ``capacity_warnings``, ``wide_table``...) are
``reports.capacity_pieces``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from dashboards.capacity import capacity_panels
from dashboards.capacity_points import percentile, step_notes
from reports import fmt
from reports.capacity_pieces import (
    OUTCOME_TEXT,
    STYLE,
    StrPath,
    capacity_text,
    capacity_warnings,
    currency_of,
    energy_items,
    href,
    link,
    load_text,
    money,
    sweep_of,
    warning_banners,
    wide_table,
)
from reports.html import Markup, esc, figure_slots, page
from reports.render import REPORT_FILE, write_html
from sla.files.capacity import CapacityResult, StepResult, load_capacity

__all__ = ["render_capacity_report", "write_capacity_report"]

_BADGE_CLASS = {"found": "PASS", "sla_holds_at_max": "PASS", "sla_fails_at_min": "FAIL"}
_STEP_HEADERS = (
    "step",
    "phase",
    "load",
    "arrived (req/s)",
    "status",
    "throughput (req/s)",
    "goodput (req/s)",
    "goodput ratio",
    "error rate",
    "p50 latency (ms)",
    "p99 latency (ms)",
    "p99 TTFT (ms)",
    "p99 TPOT (ms)",
    "window",
    "saturated",
    "error",
    "run",
)
_STEP_NUMERIC = frozenset({0, 2, 3, *range(5, 14)})


def render_capacity_report(sweep_dir: StrPath, *, out_dir: StrPath | None = None) -> str:
    """The HTML report of the capacity search in ``sweep_dir``; run links are relative to
    ``out_dir`` (default: the sweep directory, where ``write_capacity_report`` writes)."""
    result = load_capacity(sweep_dir)
    return _report(result, Path(out_dir) if out_dir is not None else sweep_of(result))


def write_capacity_report(sweep_dir: StrPath, output: StrPath | None = None) -> Path:
    """Write the report to ``output`` (default ``<sweep>/report.html``); the path written."""
    result = load_capacity(sweep_dir)
    path = Path(output) if output is not None else sweep_of(result) / REPORT_FILE
    return write_html(_report(result, path.parent), path)


def _report(result: CapacityResult, out_dir: Path) -> str:
    slots, figures_json = figure_slots(capacity_panels(result), prefix="cap")
    body = Markup(
        STYLE
        + _header(result)
        + warning_banners(capacity_warnings(result))
        + _result_section(result)
        + Markup(f'<section id="figures"><h2>Figures</h2><div class="grid">{slots}</div></section>')
        + _steps_section(result, out_dir)
        + _details_section(result)
    )
    scenario = result.scenario or "capacity search"
    return page(f"slabench capacity: {scenario} ({capacity_text(result)})", body, figures_json)


def _badge(result: CapacityResult) -> Markup:
    cls = _BADGE_CLASS.get(result.outcome, "INCONCLUSIVE")
    text = OUTCOME_TEXT.get(result.outcome, result.outcome)
    return Markup(f'<span class="badge {cls}" id="verdict-badge">{esc(text)}</span>')


def _header(result: CapacityResult) -> Markup:
    scenario = result.scenario or "unnamed scenario"
    spec = result.spec
    sla = f"{spec.name or 'unnamed'} ({spec.source or 'n/a'})" if spec else "unnamed (n/a)"
    if spec and spec.confidence is not None:
        sla += f", judged at {spec.confidence * 100:g}% confidence"
    errored = sum(p.status == "ERROR" for p in result.steps)
    closed = result.mode == "concurrency"
    items = [
        ("Target", Markup(f'<span class="mono">{esc(result.target_url or "n/a")}</span>')),
        ("SLA", sla),
        ("Load", "closed loop (concurrency)" if closed else "open loop (rate)"),
        ("Started", fmt.timestamp(result.started_at)),
        ("Wall time", fmt.duration(result.wall_s)),
        ("Steps", f"{len(result.steps)}" + (f" ({errored} errored)" if errored else "")),
        ("Sweep directory", Markup(f'<span class="mono">{esc(result.path)}</span>')),
    ]
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items)
    return Markup(
        f"<header><h1>slabench capacity: {esc(scenario)} {_badge(result)}</h1>"
        f'<p class="sub" id="outcome-message">{esc(result.message)}</p>'
        f'<dl class="meta">{rows}</dl></header>'
    )


def _step_ref(step: StepResult | None, step_no: int) -> str:
    return f"step {step_no}" if step is None else f"step {step.step}, {step.status}"


def _result_section(result: CapacityResult) -> Markup:
    unit = result.load_unit
    bracket = " · ".join(
        f"{what} {load_text(b.load, unit)} ({_step_ref(result.find_step(b.step), b.step)})"
        for what, b in (("highest PASS", result.capacity), ("lowest FAIL", result.lowest_fail))
        if b is not None
    )
    precision = result.precision
    items = [
        ("Bracket", bracket or "none"),
        ("Precision reached", "n/a" if precision is None else f"{precision * 100:.1f}%"),
        ("Knee", _knee_text(result)),
        *_cost_items(result),
        *energy_items(result),
    ]
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items)
    return Markup(
        '<section id="result"><h2>Capacity</h2>'
        f'<p class="headline">Capacity: <b id="capacity-value">{esc(capacity_text(result))}'
        f'</b></p><dl class="meta">{rows}</dl></section>'
    )


def _knee_text(result: CapacityResult) -> str:
    """The knee's load, its step's throughput, and the metric it was found on."""
    knee = result.knee
    if knee is None:
        return "none found"
    text = load_text(knee.load, result.load_unit)
    step = result.find_step(knee.step)
    if step is not None:
        text += f" (step {step.step}: {fmt.exact(step.throughput_rps)} req/s)"
    return text + (f", where {knee.metric} starts to climb" if knee.metric else "")


def _cost_items(result: CapacityResult) -> list[tuple[str, str]]:
    cost, cur = result.cost, currency_of(result)
    if cost is None:
        return []
    at = (
        f"{money(cost.per_hour, cur)}/hour, at {load_text(cost.at_load, result.load_unit)}: "
        f"{fmt.exact(cost.requests_per_s)} req/s, "
        f"{fmt.exact(cost.output_tokens_per_s)} output tok/s"
    )
    return [
        ("Cost per 1M output tokens", money(cost.per_1m_output_tokens, cur)),
        ("Cost per 1k requests", money(cost.per_1k_requests, cur)),
        ("Cost assumed", at),
    ]


def _run_links(sweep: Path, runs: Sequence[str], out_dir: Path) -> Markup:
    links = [
        link(run, None if Path(run).is_absolute() else href(sweep / run / REPORT_FILE, out_dir))
        for run in runs
    ]
    return Markup("<br>".join(links) or "-")


def _marks(result: CapacityResult, step: int) -> list[str]:
    return [
        name
        for point, name in (
            (result.capacity, "capacity"),
            (result.lowest_fail, "lowest fail"),
            (result.knee, "knee"),
        )
        if point is not None and point.step == step
    ]


def _step_row(
    result: CapacityResult, p: StepResult, marks: list[str], out_dir: Path
) -> tuple[str | Markup, ...]:
    return (
        str(p.step),
        p.phase,
        load_text(p.load, result.load_unit),
        fmt.exact(p.arrival_rps),
        p.status + (f" ({', '.join(marks)})" if marks else ""),
        fmt.exact(p.throughput_rps),
        fmt.exact(p.goodput_rps),
        fmt.exact_value("goodput_ratio", p.goodput_ratio),
        fmt.exact_value("error_rate", p.error_rate),
        *(fmt.exact(percentile(p.latency_ms, stat)) for stat in ("p50", "p99")),
        *(fmt.exact(percentile(stats, "p99")) for stats in (p.ttft_ms, p.tpot_ms)),
        fmt.duration(p.window_s),
        "yes" if p.saturated else "no",
        p.error or "",
        _run_links(sweep_of(result), p.runs, out_dir),
    )


def _steps_section(result: CapacityResult, out_dir: Path) -> Markup:
    rows, classes = [], []
    for p in result.steps:
        marks = _marks(result, p.step)
        rows.append(_step_row(result, p, marks, out_dir))
        classes.append(" ".join([p.status, *(["capacity"] if "capacity" in marks else [])]))
    body = wide_table(_STEP_HEADERS, rows, _STEP_NUMERIC, classes, _STEP_HEADERS.index("error"))
    return Markup(
        f'<section id="steps"><h2>Steps</h2><div class="scroll">{body}</div>'
        f"{_failure_notes(result.steps)}</section>"
    )


def _failure_notes(steps: Sequence[StepResult]) -> Markup:
    """Why each FAIL or INCONCLUSIVE step did not pass, from its objectives' messages."""
    notes = []
    for step in steps:
        notes += [f"Step {step.step} ({step.status}): {note}" for note in step_notes(step)]
        if step.status in ("PASS", "ERROR"):
            continue
        for objective in step.objectives:
            if objective.status != "PASS":
                notes.append(f"Step {step.step} ({step.status}): {objective.message}")
    listed = "".join(f"<li>{esc(n)}</li>" for n in notes)
    return Markup(f'<ul class="messages">{listed}</ul>' if notes else "")


def _details_section(result: CapacityResult) -> Markup:
    settings = json.dumps(dict(result.settings), indent=2, sort_keys=True, default=str)
    spec_dict = result.spec.to_dict() if result.spec else None
    spec = json.dumps(spec_dict, indent=2, sort_keys=True, default=str)
    return Markup(
        '<section id="details"><h2>Search details</h2>'
        f"<details><summary>Search settings (capacity.json)</summary><pre>{esc(settings)}</pre>"
        f"</details><details><summary>SLA spec (capacity.json)</summary><pre>{esc(spec)}</pre>"
        "</details></section>"
    )
