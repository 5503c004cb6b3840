from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest

from dashboards import build_panels, comparison_panels
from reports.render import render_comparison, render_report, write_report
from reports.summary import summarize_run
from sla.compare import compare
from sla.files.run import Run, load_run
from sla.files.verdict import write_verdict
from sla.objectives import Status
from sla.spec import parse_spec
from sla.verdict import Verdict, evaluate
from tests.reports import Req, steady, write_run

HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"
SPEC = {
    "name": "render",
    "confidence": 0.9,
    "objectives": [{"metric": "latency_ms", "stat": "p50", "max": 1000}],
}


@dataclass(frozen=True)
class FakePanel:
    key: str
    title: str
    figure: go.Figure
    note: str = ""


PANELS = [FakePanel("a", "Latency", go.Figure(go.Scatter(x=[1, 2], y=[1, 2])), "a note")]


def figures(text: str) -> list[dict[str, object]]:
    found = re.search(r'id="slabench-figures">(.*?)</script>', text, flags=re.DOTALL)
    assert found is not None
    specs: list[dict[str, object]] = json.loads(found.group(1))
    return specs


def badge(text: str) -> str:
    found = re.search(r'id="verdict-badge">([^<]*)<', text)
    assert found is not None
    return found.group(1)


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return load_run(write_run(tmp_path / "run", steady(100)))


def test_header_names_the_run_and_the_badge_says_no_sla_without_one(run: Run) -> None:
    text = render_report(run, None, panels=PANELS)
    assert badge(text) == "no SLA"
    for expected in (
        "slabench report: chat",
        "http://127.0.0.1:8000",
        "mode=closed · users=4",
        "python 3.11 · slabench 0.1.0",
        "2023-11-14 22:13:20 UTC",
        "10.00 s",
    ):
        assert expected in text
    assert [spec["id"] for spec in figures(text)] == ["fig-0-a"]
    assert "a note" in text and "The load generator was saturated" not in text


@pytest.mark.parametrize("status", list(Status))
def test_the_badge_shows_the_verdict(run: Run, status: Status) -> None:
    verdict = replace(evaluate(parse_spec(SPEC), run), status=status)
    text = render_report(run, verdict, panels=PANELS)
    assert badge(text) == str(status)
    assert f'class="badge {status}"' in text


def test_tables_hold_the_exact_numbers_of_the_run_and_the_verdict(run: Run) -> None:
    verdict = evaluate(parse_spec(SPEC), run)
    text = render_report(run, verdict, panels=PANELS)
    summary = summarize_run(run)
    latency = next(m for m in summary.metrics if m.metric == "latency_ms")
    values = (run.requests["done_at"] - run.requests["sent_at"]).to_numpy() * 1000.0
    assert latency.p99 == np.percentile(values, 99)
    assert f'<td class="num">{latency.p99:.3f}</td>' in text
    assert f'<td class="num">{latency.p99_9:.3f}</td>' in text
    observed = verdict.objectives[0].observed
    assert observed == latency.p50  # the SLA package and the table agree
    assert f"{observed:.3f} ms" in text
    assert verdict.objectives[0].message not in text  # PASS: no message listed
    assert '<tr class="PASS">' in text


def test_failures_are_listed_with_their_messages(tmp_path: Path) -> None:
    run = load_run(
        write_run(
            tmp_path / "run",
            [*steady(50), *[Req(at_s=1.0, latency_s=0.1, status=500, error="HTTP 500")] * 3],
        )
    )
    spec = {**SPEC, "objectives": [{"metric": "error_rate", "max": 0}]}
    verdict = evaluate(parse_spec(spec), run)
    assert verdict.status is Status.FAIL
    text = render_report(run, verdict, panels=PANELS)
    assert html.escape(verdict.objectives[0].message) in text
    assert '<tr class="FAIL">' in text
    assert '<td>http_5xx</td><td>HTTP 500</td><td>HTTP 500</td><td class="num">3</td>' in text


def test_saturation_and_recovery_from_parts_are_warned_about(tmp_path: Path) -> None:
    saturated = write_run(tmp_path / "sat", steady(10), meta={"generator": {"saturated": True}})
    text = render_report(load_run(saturated), None, panels=PANELS)
    assert "The load generator was saturated" in text
    killed = write_run(tmp_path / "killed", steady(10), close=False)
    text = render_report(load_run(killed), None, panels=PANELS)
    assert "This run was never closed" in text and "requests.parts/" in text


def test_strings_from_the_run_are_escaped_everywhere(tmp_path: Path) -> None:
    reqs = [
        Req(at_s=0.1 * i, latency_s=0.1, endpoint=HOSTILE, status=500, error=HOSTILE)
        for i in range(5)
    ]
    meta = {
        "scenario": HOSTILE,
        "target_url": "http://h/" + HOSTILE,
        "command": HOSTILE,
        "load_profile": {"mode": HOSTILE},
        "versions": {HOSTILE: HOSTILE},
    }
    run = load_run(write_run(tmp_path / "run", reqs, meta=meta))
    verdict = replace(evaluate(parse_spec(SPEC), run), spec_name=HOSTILE, spec_source=HOSTILE)
    panel = FakePanel(HOSTILE, HOSTILE, go.Figure(go.Scatter(x=[1], y=[1], name=HOSTILE)), HOSTILE)
    text = render_report(run, verdict, panels=[panel])
    body = text.split("</head>", 1)[1]
    assert "<script>alert" not in body and "<img" not in body
    assert body.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 8
    assert "\\u003cscript\\u003ealert(1)" in body  # inside the figure JSON
    assert figures(text)[0]["figure"]["data"][0]["name"] == HOSTILE  # type: ignore[index]


def test_write_report_writes_report_html_with_the_runs_verdict(run: Run) -> None:
    write_verdict(run.path, evaluate(parse_spec(SPEC), run))
    path = write_report(run.path, None)
    assert path == run.path / "report.html"
    assert badge(path.read_text(encoding="utf-8")) == "PASS"
    explicit: Verdict = replace(evaluate(parse_spec(SPEC), run), status=Status.FAIL)
    assert badge(write_report(run.path, explicit).read_text(encoding="utf-8")) == "FAIL"
    assert [p.name for p in run.path.iterdir() if p.name.startswith(".")] == []  # no tmp left


def test_the_comparison_report_has_a_delta_table_and_the_overlays(tmp_path: Path) -> None:
    base = load_run(write_run(tmp_path / "base", steady(400, latency_s=0.1)))
    cand = load_run(write_run(tmp_path / "cand", steady(400, latency_s=0.2)))
    comparison = compare(base, cand, max_regression=0.1, n_boot=200)
    text = render_comparison(base, cand, comparison, panels=PANELS)
    assert badge(text).startswith("REGRESSED (")
    p50 = next(c for c in comparison.changes if c.label == "p50 latency_ms")
    assert f"{p50.baseline:.3f} ms" in text and f"{p50.candidate:.3f} ms" in text
    assert '<tr class="regressed">' in text
    assert [spec["id"] for spec in figures(text)] == ["cmp-0-a"]
    same = compare(base, base, max_regression=0.1, n_boot=200)
    assert badge(render_comparison(base, base, same, panels=PANELS)) == "NO REGRESSION"


def test_by_default_the_figures_are_the_dashboards_panels(run: Run, tmp_path: Path) -> None:
    verdict = evaluate(parse_spec(SPEC), run)
    panels = build_panels(run, verdict)
    specs = figures(render_report(run, verdict))
    assert len(specs) == len(panels) >= 5
    assert [s["id"] for s in specs] == [
        f"fig-{i}-{p.key.replace('_', '-')}" for i, p in enumerate(panels)
    ]
    other = load_run(write_run(tmp_path / "other", steady(400, latency_s=0.15)))
    comparison = compare(run, other, n_boot=100)
    expected = comparison_panels(run, other, comparison)
    assert len(figures(render_comparison(run, other, comparison))) == len(expected) > 0


def test_a_figure_with_its_own_title_keeps_the_heading_for_screen_readers(run: Run) -> None:
    titled = go.Figure(layout={"title": {"text": "Own title"}})
    text = render_report(run, None, panels=[FakePanel("t", "Heading", titled), *PANELS])
    assert '<h3 class="visually-hidden">Heading</h3>' in text
    assert "<h3>Latency</h3>" in text
