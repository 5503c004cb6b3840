"""The report's turn table: TTFT and E2E latency percentiles per turn of a multi-turn run.

The values are ``dashboards.sessions.turn_stats`` of the reading, the numbers the
"by turn" figure draws, shown exactly; the section is absent when no measured successful
request has a turn.
"""

from __future__ import annotations

from dashboards.sessions import LAST_TURN_GROUP, turn_label, turn_stats
from reports import fmt
from reports.html import Markup, table
from sla.reading import Reading

__all__ = ["turns_section"]


def turns_section(reading: Reading) -> Markup:
    stats = turn_stats(reading)
    if stats.empty:
        return Markup("")
    columns = [f"{prefix}_p{p}_ms" for prefix in ("ttft", "latency") for p in (50, 90, 99)]
    rows = [
        (str(row["turn"]), fmt.count(int(row["n"])), *(fmt.exact(float(row[c])) for c in columns))
        for _, row in stats.iterrows()
    ]
    headers = (
        "turn",
        "n",
        "TTFT p50 (ms)",
        "TTFT p90 (ms)",
        "TTFT p99 (ms)",
        "E2E p50 (ms)",
        "E2E p90 (ms)",
        "E2E p99 (ms)",
    )
    note = (
        "Successful measured requests of each turn of a conversation; turns from "
        f"{LAST_TURN_GROUP} on are pooled as {turn_label(LAST_TURN_GROUP)}."
    )
    return Markup(
        '<section id="turns"><h2>Latency by turn</h2>'
        f'{table(headers, rows, cls="turns")}<p class="note">{note}</p></section>'
    )
