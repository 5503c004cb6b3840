from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass

import plotly.graph_objects as go
import plotly.offline

from reports.html import Markup, esc, figure_slots, page, script_json, table

HOSTILE = "</script><script>alert(1)</script><!-- <img src=x onerror=alert(2)> & \u2028"


@dataclass(frozen=True)
class FakePanel:
    key: str
    title: str
    figure: go.Figure
    note: str = ""


def test_script_json_cannot_close_the_element_and_parses_back_unchanged() -> None:
    text = json.dumps({"name": HOSTILE, "nested": [HOSTILE]})
    safe = script_json(text)
    assert "<" not in safe and ">" not in safe and "&" not in safe and "\u2028" not in safe
    assert json.loads(safe) == {"name": HOSTILE, "nested": [HOSTILE]}


def test_esc_escapes_text_and_passes_markup_through() -> None:
    assert esc('<b a="1">&\'') == "&lt;b a=&quot;1&quot;&gt;&amp;&#x27;"
    assert esc(Markup("<b>x</b>")) == "<b>x</b>"


def test_table_cells_are_escaped_and_figures_right_aligned() -> None:
    html = table(("name", "n"), [("<script>x</script>", "3")], row_classes=["FAIL"])
    assert "<script>x" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert '<td class="num">3</td>' in html and '<tr class="FAIL">' in html


def test_figure_slots_escape_titles_notes_and_embedded_json() -> None:
    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4], name=HOSTILE))
    panels = [FakePanel("Latency over time!", HOSTILE, fig, note=HOSTILE)]
    slots, figures_json = figure_slots(panels)
    assert "<script>" not in slots and "<img" not in slots
    assert 'id="fig-0-latency-over-time"' in slots
    specs = json.loads(figures_json)
    assert specs[0]["id"] == "fig-0-latency-over-time"
    assert specs[0]["figure"]["data"][0]["name"] == HOSTILE
    assert "</" not in figures_json and "<!--" not in figures_json


def test_the_page_inlines_plotly_once_and_its_csp_admits_exactly_its_scripts() -> None:
    fig = go.Figure(go.Bar(x=["a"], y=[1]))
    slots, figures_json = figure_slots([FakePanel("k", "t", fig)])
    html = page("<title>", Markup(slots), figures_json)
    plotly_js = plotly.offline.get_plotlyjs()
    assert html.count(plotly_js) == 1
    assert html.count("plotly.js v") == 1  # its banner comment: one copy, no CDN loader
    assert "<title>&lt;title&gt;</title>" in html
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    assert len(scripts) == 2  # plotly.js and the figure loader; the data is type=json
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html)
    assert csp is not None
    policy = csp.group(1).replace("&#x27;", "'")
    assert "default-src 'none'" in policy
    for body in scripts:
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]


def test_the_page_references_nothing_outside_itself() -> None:
    fig = go.Figure(go.Scatter(x=[1], y=[1]))
    slots, figures_json = figure_slots([FakePanel("k", "t", fig)])
    html = page("t", Markup(slots), figures_json)
    outside_plotly = html.replace(plotly.offline.get_plotlyjs(), "")
    assert not re.search(r"\b(src|href)\s*=", outside_plotly)
    assert "@import" not in outside_plotly and "url(" not in outside_plotly
    assert "mathjax" not in outside_plotly.lower()
