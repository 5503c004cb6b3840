"""The pieces of a capacity result that the report of one search (``reports.capacity``) and
the page comparing several (``reports.capacity_compare``) share: loads, money and the
capacity as text, the warnings a result calls for, and small HTML helpers (a wide table,
relative links, warning banners, the extra stylesheet).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from reports.html import Markup, esc
from sla.files.capacity import CapacityResult

__all__ = [
    "OUTCOME_TEXT",
    "STYLE",
    "capacity_text",
    "capacity_warnings",
    "currency_of",
    "energy_items",
    "href",
    "link",
    "load_text",
    "money",
    "sweep_of",
    "warning_banners",
    "wide_table",
]

StrPath = str | os.PathLike[str]
OUTCOME_TEXT = {
    "found": "capacity found",
    "sla_holds_at_max": "SLA holds at the largest load",
    "sla_fails_at_min": "SLA fails at the smallest load",
    "generator_saturated": "load generator saturated",
    "budget_exhausted": "budget exhausted",
    "unresolved": "unresolved",
    "interrupted": "interrupted",
}
# Added to the shared stylesheet (inline styles are allowed by the page's CSP).
STYLE = Markup(
    "<style>.headline{font-size:16px;margin:14px 0 0}.headline b{font-size:22px}"
    "tr.ERROR td{background:#eaeef2;color:#59636e}tr.capacity td{font-weight:600}"
    "mark.best{background:#dafbe1;padding:0 4px;border-radius:4px}"
    ".scroll{overflow-x:auto}table.wide td{overflow-wrap:normal;white-space:nowrap}"
    "table.wide td.text{white-space:normal;min-width:18em}</style>"
)


def load_text(load: float | None, unit: str) -> str:
    """``24.675 req/s``: to a thousandth, trailing zeros dropped."""
    return "n/a" if load is None else f"{round(load, 3):g} {unit}"


def money(x: float | None, currency: str = "$") -> str:
    """Four significant digits and at least cents: ``$2.50``, ``$0.2214``, ``$0.0002834``."""
    if x is None:
        return "n/a"
    digits = 2 if abs(x) >= 100 or x == 0 else max(2, 3 - int(f"{abs(x):e}".split("e")[1]))
    text = f"{x:,.{digits}f}"
    whole, _, cents = text.partition(".")
    return f"{currency}{whole}.{cents[:2]}{cents[2:].rstrip('0')}"


def capacity_text(result: CapacityResult) -> str:
    """The capacity with its unit; ``≥`` when no load failed (the SLA held at the largest)."""
    if result.capacity is None:
        return "none"
    prefix = "≥ " if result.outcome == "sla_holds_at_max" else ""
    return prefix + load_text(result.capacity.load, result.load_unit)


def currency_of(result: CapacityResult) -> str:
    return (result.cost.currency if result.cost else None) or "$"


def capacity_warnings(result: CapacityResult) -> list[str]:
    """One line per thing that makes the capacity less than a clean answer."""
    outcome, out = result.outcome, []
    saturated = ", ".join(str(p.step) for p in result.steps if p.saturated)
    if outcome == "generator_saturated":
        out.append(
            f"The load generator saturated (step {saturated or '?'}) before the server failed "
            "the SLA: the capacity found would be the generator's, not the server's. Add "
            "load-generator processes (--processes N) or a bigger machine and search again."
        )
    elif saturated:
        out.append(f"The load generator was saturated in step {saturated}: not trustworthy.")
    out += [
        f"The load generator was disturbed in step {p.step} (INCONCLUSIVE, never a PASS): "
        f"{p.disturbed}."
        for p in result.steps
        if p.disturbed
    ]
    out += _outcome_warnings(outcome)
    errored = [p for p in result.steps if p.status == "ERROR"]
    if errored:
        what = "; ".join(f"step {p.step}: {p.error or 'no error text'}" for p in errored)
        out.append(f"{len(errored)} step(s) errored and are left out of the figures ({what}).")
    return out


def _outcome_warnings(outcome: str) -> list[str]:
    if outcome == "budget_exhausted":
        return [
            "The search ran out of budget before reaching the precision asked: the capacity "
            "is only known to lie between the highest PASS and the lowest FAIL. Give "
            "the search more time or steps, or ask for a coarser precision."
        ]
    if outcome == "unresolved":
        return [
            "The search could not resolve a capacity: steps near the limit were INCONCLUSIVE "
            "or erred. Lengthen the steps (more requests per judgement) and search again."
        ]
    if outcome == "interrupted":
        return ["The search was interrupted: only the steps that ran are reported."]
    return []


def warning_banners(lines: Sequence[str]) -> Markup:
    return Markup("".join(f'<div class="warning bad" role="alert">{esc(w)}</div>' for w in lines))


def wide_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    numeric: frozenset[int],
    row_classes: Sequence[str],
    text_column: int | None = None,
) -> Markup:
    """``reports.html.table`` with any set of right-aligned columns, cells kept on one line
    (the section scrolls) but for ``text_column`` (free text, wrapped)."""

    def cell(tag: str, index: int, text: str) -> str:
        cls = ' class="num"' if index in numeric else ""
        if index == text_column:
            cls = ' class="text"'
        return f"<{tag}{cls}>{esc(text)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = "".join(
        (f'<tr class="{esc(c)}">' if c else "<tr>")
        + "".join(cell("td", i, text) for i, text in enumerate(row))
        + "</tr>"
        for row, c in zip(rows, row_classes, strict=True)
    )
    return Markup(
        f'<table class="wide"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def href(target: Path, out_dir: Path) -> str | None:
    """The link from a page in ``out_dir`` to ``target``, if that file exists."""
    if not target.is_file():
        return None
    try:
        return quote(Path(os.path.relpath(target, out_dir)).as_posix())
    except ValueError:  # on another drive: no relative path
        return None


def link(text: str, url: str | None) -> Markup:
    return Markup(f'<a href="{esc(url)}">{esc(text)}</a>') if url else esc(text)


def sweep_of(result: CapacityResult) -> Path:
    """The sweep directory ``result`` was read from (a result built in memory: ``.``)."""
    return result.path if result.path is not None else Path(".")


def energy_items(result: CapacityResult) -> list[tuple[str, str]]:
    """The energy at the capacity found and at the knee (when another step), in plain words:
    J per output token and per request, or why there is none (never 0 J)."""
    items = []
    if result.energy is not None:
        items.append(("Energy at capacity", result.energy.energy.describe()))
    knee = result.find_step(result.knee.step) if result.knee else None
    other = knee is not None and (result.energy is None or knee.step != result.energy.step)
    if knee is not None and knee.energy is not None and other:
        items.append((f"Energy at the knee (step {knee.step})", knee.energy.describe()))
    return items
