"""One page comparing capacity searches (sweep directories), and how they are ranked.

    render_capacity_comparison(["runs/a", "runs/b"], ["before", "after"], out_dir=Path("."))

A row per sweep (outcome, capacity, lowest FAIL, precision, costs, p99 latency and TTFT at
the capacity step), the best marked, each sweep's warnings, and the latency–throughput
curves overlaid. The best is only ever a *trusted* capacity: a search stopped by its own
load generator measured the generator, not the server. Capacities are ranked within a load
unit only (req/s against users means nothing). Text helpers come from ``reports.capacity_pieces``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from dashboards.capacity import capacity_comparison_panel
from dashboards.capacity_points import percentile
from reports import fmt
from reports.capacity_pieces import (
    OUTCOME_TEXT,
    STYLE,
    StrPath,
    capacity_text,
    capacity_warnings,
    currency_of,
    href,
    link,
    load_text,
    money,
    sweep_of,
    warning_banners,
    wide_table,
)
from reports.errors import ReportError
from reports.html import Markup, esc, figure_slots, page
from reports.render import REPORT_FILE
from sla.files.capacity import CapacityResult, load_capacity

__all__ = ["best_capacity", "lowest_cost", "render_capacity_comparison"]

CostKey = Literal["per_1m_output_tokens", "per_1k_requests"]

_HEADERS = (
    "sweep",
    "scenario",
    "target",
    "outcome",
    "capacity",
    "lowest fail",
    "precision",
    "cost per 1M output tokens",
    "cost per 1k requests",
    "p99 latency at capacity (ms)",
    "p99 TTFT at capacity (ms)",
)


def render_capacity_comparison(
    sweep_dirs: Sequence[StrPath],
    labels: Sequence[str] | None = None,
    *,
    out_dir: StrPath | None = None,
) -> str:
    """One page comparing capacity searches: a row per sweep, the highest capacity (per load
    unit) and the lowest costs marked, and their latency–throughput curves overlaid. Labels
    default to the directory names; sweeps link to their ``report.html`` when ``out_dir``
    (where the page goes) is given."""
    if not sweep_dirs:
        raise ReportError("give at least one sweep directory to compare")
    if labels is not None and len(labels) != len(sweep_dirs):
        raise ReportError(
            f"got {len(labels)} labels for {len(sweep_dirs)} sweeps; give one per sweep or none"
        )
    results = [load_capacity(d) for d in sweep_dirs]
    names = list(labels) if labels is not None else [sweep_of(r).resolve().name for r in results]
    panel = capacity_comparison_panel(results, names)
    slots, figures_json = figure_slots([panel] if panel else [], prefix="capcmp")
    warnings = [
        f"{name}: {w}" for r, name in zip(results, names, strict=True) for w in capacity_warnings(r)
    ]
    body = Markup(
        STYLE
        + Markup("<header><h1>slabench capacity comparison</h1>")
        + Markup(f'<p class="sub">{esc(_comparison_summary(results, names))}</p></header>')
        + warning_banners(warnings)
        + _comparison_table(results, names, Path(out_dir) if out_dir is not None else None)
        + Markup(f'<section id="figures"><h2>Figures</h2><div class="grid">{slots}</div></section>')
    )
    return page("slabench capacity comparison", body, figures_json)


def _trusted_capacity(result: CapacityResult) -> float | None:
    """The capacity load when it is the server's (not the load generator's limit)."""
    if result.capacity is None or result.outcome == "generator_saturated":
        return None
    return result.capacity.load


def best_capacity(results: Sequence[CapacityResult]) -> set[int]:
    """The indexes of the highest trusted capacity of each load unit (ties: all of them);
    a rate and a concurrency are not comparable."""
    loads = [(_trusted_capacity(r), r.load_unit) for r in results]
    best: dict[str, float] = {}
    for load, unit in loads:
        if load is not None:
            best[unit] = max(load, best.get(unit, load))
    return {i for i, (load, unit) in enumerate(loads) if load is not None and load == best[unit]}


def _cost(result: CapacityResult, key: CostKey) -> float | None:
    return None if result.cost is None else getattr(result.cost, key)


def lowest_cost(results: Sequence[CapacityResult], key: CostKey) -> set[int]:
    """The indexes of the lowest trusted ``cost.<key>`` (ties: all of them)."""
    costs = {i: _cost(r, key) for i, r in enumerate(results) if _trusted_capacity(r) is not None}
    known = {i: c for i, c in costs.items() if c is not None}
    return {i for i, c in known.items() if c == min(known.values())} if known else set()


def _comparison_summary(results: Sequence[CapacityResult], names: Sequence[str]) -> str:
    parts = [f"{len(results)} capacity searches."]
    for i in sorted(best_capacity(results)):
        parts.append(f"Highest capacity: {names[i]} ({capacity_text(results[i])}).")
    cheapest = sorted(lowest_cost(results, "per_1m_output_tokens"))
    if cheapest:
        first = results[cheapest[0]]
        cost = money(_cost(first, "per_1m_output_tokens"), currency_of(first))
        who = ", ".join(names[i] for i in cheapest)
        parts.append(f"Lowest cost per 1M output tokens: {who} ({cost}).")
    return " ".join(parts)


def _mark(text: str, best: bool, why: str) -> Markup:
    return Markup(
        f'<mark class="best" title="{esc(why)}">{esc(text)}</mark>' if best else esc(text)
    )


def _sweep_cell(result: CapacityResult, name: str, out_dir: Path | None) -> Markup:
    target = sweep_of(result) / REPORT_FILE
    return link(name, href(target, out_dir) if out_dir is not None else None)


def _comparison_table(
    results: Sequence[CapacityResult], names: Sequence[str], out_dir: Path | None
) -> Markup:
    best = (
        best_capacity(results),
        lowest_cost(results, "per_1m_output_tokens"),
        lowest_cost(results, "per_1k_requests"),
    )
    rows = [
        _row(r, name, tuple(i in b for b in best), out_dir)
        for i, (r, name) in enumerate(zip(results, names, strict=True))
    ]
    body = wide_table(_HEADERS, rows, frozenset(range(4, 11)), [""] * len(rows))
    return Markup(f'<section id="sweeps"><h2>Sweeps</h2><div class="scroll">{body}</div></section>')


def _row(
    result: CapacityResult, name: str, best: tuple[bool, ...], out_dir: Path | None
) -> tuple[str, ...]:
    """The cells of one sweep; ``best``: is it the highest capacity, the lowest cost per 1M
    output tokens, the lowest cost per 1k requests."""
    fail, capacity, cur = result.lowest_fail, result.capacity, currency_of(result)
    at = result.find_step(capacity.step) if capacity else None
    precision = result.precision
    per_tokens = money(_cost(result, "per_1m_output_tokens"), cur)
    per_requests = money(_cost(result, "per_1k_requests"), cur)
    return (
        _sweep_cell(result, name, out_dir),
        result.scenario or "n/a",
        result.target_url or "n/a",
        OUTCOME_TEXT.get(result.outcome, result.outcome),
        _mark(capacity_text(result), best[0], "highest capacity"),
        load_text(fail.load, result.load_unit) if fail else "none",
        "n/a" if precision is None else f"{precision * 100:.1f}%",
        _mark(per_tokens, best[1], "lowest cost per 1M output tokens"),
        _mark(per_requests, best[2], "lowest cost per 1k requests"),
        fmt.exact(percentile(at.latency_ms, "p99") if at else None),
        fmt.exact(percentile(at.ttft_ms, "p99") if at else None),
    )
