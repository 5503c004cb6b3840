"""The report of production-shaped traffic (turns, a prefix cache, reasoning, a schedule)
and of a run without any of it: the new panels and the turn table appear only with their
columns."""

from __future__ import annotations

import re
from pathlib import Path

from reports.render import render_report
from sla.files.run import load_run
from tests.reports import production_shaped, steady, write_run


def _slots(text: str) -> list[str]:
    return re.findall(r'<div class="figure" id="fig-\d+-([a-z0-9-]+)"></div>', text)


def test_a_report_of_sessions_shows_the_new_panels_and_the_turn_table(tmp_path: Path) -> None:
    text = render_report(load_run(write_run(tmp_path / "run", production_shaped(60))))
    slots = _slots(text)
    for key in ("arrivals", "prefix-cache", "turns", "reasoning"):
        assert key in slots, slots
    table = re.search(r'<section id="turns">.*?</section>', text, flags=re.DOTALL)
    assert table is not None
    rows = re.findall(r"<tr><td>(\d+\+?)</td><td class=\"num\">(\d+)</td>(.*?)</tr>", table[0])
    assert [(turn, n) for turn, n, _ in rows] == [("1", "20"), ("2", "20"), ("3", "20")]
    cells = re.findall(r'<td class="num">([^<]*)</td>', rows[1][2])
    assert cells == ["20.000"] * 3 + ["200.000"] * 3  # turn 2: TTFT 20 ms, E2E 200 ms


def test_a_report_without_the_new_columns_has_none_of_them(tmp_path: Path) -> None:
    text = render_report(load_run(write_run(tmp_path / "run", steady(60))))
    assert not {"arrivals", "prefix-cache", "turns", "reasoning"} & set(_slots(text))
    assert 'id="turns"' not in text and "Latency by turn" not in text
