from __future__ import annotations

import json
from pathlib import Path

import pytest

from dashboards import (
    capacity_comparison_panel,
    capacity_panels,
    latency_throughput_panel,
    load_throughput_panel,
)
from dashboards.capacity import STATUS_SYMBOLS, SWEEP_COLOURS
from dashboards.panel import STATUS_COLOURS
from sla.files.capacity import CapacityError, Percentiles
from tests.capacity_helpers import (
    STEPS,
    capacity_result,
    read_result,
    run_name,
    step_record,
    write_sweep,
)
from tests.dashboards import trace

# The measured steps by load: what the curves join, in order.
BY_LOAD = sorted((r for r in STEPS if r[4] is not None), key=lambda r: (r[2], r[0]))


def test_the_curve_has_a_point_per_measured_step_by_load_coloured_by_status() -> None:
    panel = latency_throughput_panel(read_result(capacity_result()))
    assert panel is not None
    fig = panel.figure
    p99, p50 = trace(fig, "p99 latency"), trace(fig, "p50 latency")
    assert list(p99.x) == [r[4] for r in BY_LOAD]
    assert list(p99.y) == [r[6] for r in BY_LOAD]
    assert list(p50.y) == [r[5] for r in BY_LOAD]
    assert [r[0] for r in BY_LOAD] == [1, 2, 3, 4, 5, 7, 10, 9, 6]
    expected = [STATUS_COLOURS[r[3]] for r in BY_LOAD]
    assert list(p99.marker.color) == expected
    assert expected.count(STATUS_COLOURS["FAIL"]) == 2
    assert list(p99.marker.symbol) == [STATUS_SYMBOLS[r[3]] for r in BY_LOAD]
    assert list(trace(fig, "p99 TTFT").y) == pytest.approx([r[6] / 5 for r in BY_LOAD])
    assert list(trace(fig, "p99 TPOT").y) == pytest.approx([r[6] / 60 for r in BY_LOAD])
    # The ERROR step (8) is in no trace, and the note says where it went.
    curves = [t for t in fig.data if t.legendgroup != "status"]
    assert len(curves) == 4
    assert all([row[0] for row in t.customdata] == [r[0] for r in BY_LOAD] for t in curves)
    assert "ERROR steps left out: 8" in panel.note


def test_status_legend_has_the_statuses_of_the_curve_only() -> None:
    fig = latency_throughput_panel(read_result(capacity_result()))
    assert fig is not None
    legend = [t for t in fig.figure.data if t.legendgroup == "status"]
    assert [t.name for t in legend] == ["PASS", "FAIL"]
    assert [t.marker.color for t in legend] == [STATUS_COLOURS["PASS"], STATUS_COLOURS["FAIL"]]
    assert all(list(t.x) == [None] for t in legend)


def test_an_inconclusive_step_is_an_amber_diamond() -> None:
    result = capacity_result()
    result["steps"][6]["status"] = "INCONCLUSIVE"  # step 7, 22.627 req/s: 6th by load
    panel = latency_throughput_panel(read_result(result))
    assert panel is not None
    p99 = trace(panel.figure, "p99 latency")
    assert (p99.marker.color[5], p99.marker.symbol[5]) == (
        STATUS_COLOURS["INCONCLUSIVE"],
        "diamond",
    )
    legend = [t.name for t in panel.figure.data if t.legendgroup == "status"]
    assert legend == ["PASS", "INCONCLUSIVE", "FAIL"]


def test_hover_names_step_load_and_status() -> None:
    panel = latency_throughput_panel(read_result(capacity_result()))
    assert panel is not None
    p99 = trace(panel.figure, "p99 latency")
    assert list(p99.customdata[6]) == [10, 24.675, "PASS", "bisect"]
    assert list(p99.customdata[7]) == [9, 26.909, "FAIL", "bisect"]
    assert "step %{customdata[0]}" in p99.hovertemplate
    assert "req/s, %{customdata[2]}" in p99.hovertemplate


def test_capacity_and_knee_are_annotated_at_their_steps() -> None:
    panel = latency_throughput_panel(read_result(capacity_result()))
    assert panel is not None
    notes = {a.text.split(":")[0]: a for a in panel.figure.layout.annotations}
    assert (notes["capacity"].x, notes["capacity"].y) == (24.5, 940.0)
    assert notes["capacity"].text == "capacity: 24.68 req/s (step 10)"
    # The knee sits at its own point: the p90 it was found on, between the drawn curves.
    assert (notes["knee"].x, notes["knee"].y) == (15.9, 448.0)
    assert notes["knee"].text == "knee: 16 req/s (p90 latency_ms)"


def test_a_knee_without_its_own_point_or_metric_is_drawn_at_its_step_p99() -> None:
    result = capacity_result(knee={"load": 8.0, "step": 4})  # an older capacity.json
    panel = latency_throughput_panel(read_result(result))
    assert panel is not None
    knee = [a for a in panel.figure.layout.annotations if a.text.startswith("knee")]
    assert [(a.x, a.y, a.text) for a in knee] == [(7.95, 380.0, "knee: 8 req/s")]


@pytest.mark.parametrize(
    ("metric", "label"),
    [
        ("<b>p90</b> latency_ms", "knee: 16 req/s (&lt;b&gt;p90&lt;/b&gt; latency_ms)"),
        ("", "knee: 16 req/s"),
        (None, "knee: 16 req/s"),
    ],
)
def test_the_knee_metric_is_escaped_and_ignored_when_empty(metric: object, label: str) -> None:
    result = capacity_result()
    result["knee"]["metric"] = metric
    panel = latency_throughput_panel(read_result(result))
    assert panel is not None
    assert [a.text for a in panel.figure.layout.annotations if a.text.startswith("knee")] == [label]


def test_a_knee_metric_that_is_not_text_is_refused_when_read() -> None:
    result = capacity_result()
    result["knee"]["metric"] = 90
    with pytest.raises(CapacityError, match=r"^capacity.json: knee.metric must be text, got 90$"):
        read_result(result)


def test_no_ttft_no_ttft_curve_and_no_knee_no_annotation() -> None:
    result = capacity_result(knee=None, capacity=None)
    for step in result["steps"]:
        step["ttft_ms"] = step["tpot_ms"] = None
    panel = latency_throughput_panel(read_result(result))
    assert panel is not None
    names = {t.name for t in panel.figure.data}
    assert {"p50 latency", "p99 latency"} <= names
    assert not names & {"p99 TTFT", "p99 TPOT"}
    assert panel.figure.layout.annotations == ()


def test_load_figure_draws_throughput_goodput_and_shades_the_bracket() -> None:
    panel = load_throughput_panel(read_result(capacity_result()))
    assert panel is not None
    fig = panel.figure
    assert list(trace(fig, "throughput (req/s)").x) == [r[2] for r in BY_LOAD]
    assert list(trace(fig, "throughput (req/s)").y) == [r[4] for r in BY_LOAD]
    assert list(trace(fig, "goodput (req/s)").y) == pytest.approx([r[4] * r[7] for r in BY_LOAD])
    assert list(trace(fig, "offered (sent, req/s)").y) == [r[2] for r in BY_LOAD]
    assert list(trace(fig, "throughput (req/s)").marker.color) == [
        STATUS_COLOURS[r[3]] for r in BY_LOAD
    ]
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert [(s.x0, s.x1) for s in rects] == [(24.675, 26.909)]
    assert fig.layout.xaxis.title.text == "offered load (req/s)"
    assert "highest PASS (24.68 req/s)" in panel.note and "lowest FAIL (26.91" in panel.note


def test_load_figure_of_a_closed_loop_search_that_never_failed() -> None:
    result = capacity_result(
        mode="concurrency",
        load_unit="users",
        outcome="sla_holds_at_max",
        lowest_fail=None,
        capacity={"load": 16.0, "step": 5},
    )
    result["steps"] = result["steps"][:5]
    for step in result["steps"]:
        step["offered_rps"] = step["goodput_rps"] = None
    panel = load_throughput_panel(read_result(result))
    assert panel is not None
    fig = panel.figure
    assert fig.layout.xaxis.title.text == "concurrency (users)"
    assert {t.name for t in fig.data if t.legendgroup != "status"} == {"throughput (req/s)"}
    assert [(s.type, s.x0) for s in fig.layout.shapes] == [("line", 16.0)]
    assert "no step failed above it" in panel.note


def test_only_errored_steps_give_no_figures() -> None:
    result = capacity_result(outcome="unresolved", capacity=None, lowest_fail=None, knee=None)
    result["steps"] = [step_record(STEPS[7])]
    assert capacity_panels(read_result(result)) == []
    assert [p.key for p in capacity_panels(read_result(capacity_result()))] == [
        "capacity_latency_throughput",
        "capacity_load_throughput",
    ]


@pytest.mark.parametrize(
    ("step", "words"),
    [
        ({"load": "fast"}, "steps[0].load must be a number, got 'fast'"),
        ({"throughput_rps": True}, "steps[0].throughput_rps must be a number, got True"),
        ({"latency_ms": 3}, "steps[0].latency_ms must be an object, got 3"),
        ({"latency_ms": {"p50": float("nan"), "p90": 1, "p99": 12}}, "p50 must be a finite"),
        ({"runs": "x"}, "steps[0].runs must be a list of text, got 'x'"),
        ({"status": "?"}, "steps[0].status must be one of PASS, FAIL, INCONCLUSIVE, ERROR"),
        ({"step": None}, "steps[0].step must be a whole number, got None"),
    ],
)
def test_wrong_values_are_refused_once_when_the_result_is_read(
    step: dict[str, object], words: str
) -> None:
    result = capacity_result()
    result["steps"][0].update(step)
    with pytest.raises(CapacityError) as info:
        read_result(result)
    assert str(info.value).startswith("capacity.json: ") and words in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_numbers_read_as_none_and_draw_nothing() -> None:
    result = capacity_result()
    result["steps"] = [
        {"step": 1, "load": 1.0, "phase": "widen", "status": "PASS"},  # no numbers at all
        {"step": 2, "load": 2.0, "phase": "widen", "status": "PASS", "requests": 5, "ok": 5,
         "failed": 0, "latency_ms": {"p50": 1.0, "p90": 2.0, "p99": 12}},
    ]  # fmt: skip
    first, second = read_result(result).steps
    assert (first.requests, first.throughput_rps, first.latency_ms) == (None, None, None)
    assert (second.throughput_rps, second.runs, second.latency_ms) == (
        None,
        (),
        Percentiles(1, 2, 12),
    )
    assert latency_throughput_panel(read_result(result)) is None  # no step has a throughput


def test_comparison_overlays_one_colour_per_sweep_and_stars_capacities() -> None:
    faster = capacity_result(capacity={"load": 22.627, "step": 7})
    for step in faster["steps"]:
        if step["throughput_rps"] is not None:
            step["throughput_rps"] *= 1.5
    panel = capacity_comparison_panel(
        [read_result(capacity_result()), read_result(faster)], ["before", "<b>after</b>"]
    )
    assert panel is not None
    fig = panel.figure
    before, after = trace(fig, "before p99"), trace(fig, "&lt;b&gt;after&lt;/b&gt; p99")
    assert (before.line.color, after.line.color) == SWEEP_COLOURS[:2]
    assert list(after.x) == pytest.approx([r[4] * 1.5 for r in BY_LOAD])
    assert trace(fig, "before p50").line.dash == "dot"
    stars = [t for t in fig.data if t.marker.symbol == "star"]
    assert [(t.name, t.x[0], t.y[0]) for t in stars] == [
        ("before capacity", 24.5, 940.0),
        ("&lt;b&gt;after&lt;/b&gt; capacity", pytest.approx(22.4 * 1.5), 820.0),
    ]
    assert capacity_comparison_panel([], []) is None


def test_write_sweep_round_trips_through_load_capacity(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path / "sweep", run_reports={10})
    data = json.loads((sweep / "capacity.json").read_text())
    assert data["schema_version"] == 1 and len(data["steps"]) == 10
    assert (sweep / run_name(10, 24.675) / "report.html").is_file()
