from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from dashboards import DashboardError, Panel, build_panels
from dashboards.view import default_window_s
from sla.files.run import Run
from sla.spec import parse_spec
from sla.verdict import evaluate
from tests.dashboards import T0, shown_axes, synthetic_run, with_columns, with_traffic

SPEC = parse_spec(
    {
        "objectives": [
            {"metric": "ttft_ms", "stat": "p99", "max": 200},
            {"metric": "itl_ms", "stat": "p90", "max": 40},
            {"metric": "error_rate", "max": "5%"},
        ]
    }
)
_UNIT = re.compile(r"\(.+\)")


def _everything_run(n: int) -> Run:
    scrapes = np.arange(0.0, 100.0, 1.0)
    server = pd.DataFrame(
        {
            "scraped_at": np.tile(T0 + scrapes, 5),
            "name": np.repeat(
                [
                    "slabench_queue_depth",
                    "slabench_prefix_cache_hit_tokens_total",
                    "slabench_prefix_cache_query_tokens_total",
                    # a timing family: the server-timing panel is drawn only with one
                    "slabench_queue_time_seconds_sum",
                    "slabench_queue_time_seconds_count",
                ],
                len(scrapes),
            ),
            "labels": '{"queue": "lm"}',
            "value": np.concatenate(
                (scrapes % 7, scrapes * 30.0, scrapes * 100.0, scrapes * 0.5, scrapes * 10.0)
            ),
        }
    )
    profile = {"mode": "closed", "shape": "steps:users=2,4,8,step=34s"}
    run = synthetic_run(
        n,
        error_share=0.03,
        cancelled=2,
        load_profile=profile,
        server_metrics=server,
        open_loop=True,  # a schedule: the offered against achieved arrivals
    )
    return with_server_timings(with_traffic(run))


def with_server_timings(run: Run) -> Run:
    """Every request telling the server's queue, prefill and decode: 10/20/50% of its latency."""
    rows = run.requests
    latency_ms = (rows["done_at"] - rows["sent_at"]).to_numpy() * 1000.0
    return with_columns(
        run,
        server_queue_ms=latency_ms * 0.1,
        server_prefill_ms=latency_ms * 0.2,
        server_decode_ms=latency_ms * 0.5,
        server_total_ms=latency_ms * 0.9,
        server_timing_source=pd.array(["timings"] * len(rows), dtype="string"),
    )


def test_every_figure_has_a_title_and_axis_titles_with_units() -> None:
    run = _everything_run(20_000)
    panels = build_panels(run, evaluate(SPEC, run))
    keys = [p.key for p in panels]
    assert keys == [
        "sla",
        "latency_over_time",
        "ttft_over_time",
        "throughput_over_time",
        "inflight_over_time",
        "arrivals",
        "server_metrics",
        "server_timing",
        "prefix_cache",
        "errors",
        "distribution_ttft_ms",
        "distribution_itl_ms",
        "distribution_tpot_ms",
        "distribution_latency_ms",
        "turns",
        "reasoning",
        "where_the_time_goes",
        "ttft_vs_input_tokens",
        "latency_vs_throughput",
    ]
    for panel in panels:
        assert isinstance(panel, Panel)
        assert panel.title and panel.figure.layout.title.text == panel.title
        assert panel.note and "\n" not in panel.note
        axes = shown_axes(panel.figure)
        assert axes, panel.key
        for name, axis in axes.items():
            text = axis.get("title", {}).get("text", "")
            assert text, f"{panel.key}: {name} has no title"
            if axis.get("type") != "category":
                assert _UNIT.search(text), f"{panel.key}: {name} title {text!r} has no unit"


def test_figures_stay_small_however_many_requests() -> None:
    run = _everything_run(200_000)
    panels = build_panels(run, evaluate(SPEC, run))
    for panel in panels:
        for trace in panel.figure.data:
            assert len(trace.x if trace.x is not None else trace.y) <= 2_000, panel.key
    size = sum(len(p.figure.to_json()) for p in panels)
    assert size < 600_000


def test_an_empty_run_builds_no_data_panels() -> None:
    run = synthetic_run(0)
    assert build_panels(run) == []
    panels = build_panels(run, evaluate(SPEC, run))
    assert [p.key for p in panels] == ["sla"]


def test_a_run_where_everything_failed_shows_throughput_and_errors() -> None:
    run = with_columns(synthetic_run(300), status=np.full(300, 503, dtype=np.int32))
    keys = {p.key for p in build_panels(run)}
    assert {"throughput_over_time", "errors", "inflight_over_time"} <= keys
    assert not keys & {"latency_over_time", "distribution_latency_ms"}


@pytest.mark.parametrize("window_s", [0.0, -1.0, float("nan"), 0.001])
def test_an_unusable_window_is_one_clear_line(window_s: float) -> None:
    with pytest.raises(DashboardError) as info:
        build_panels(synthetic_run(100), window_s=window_s)
    assert "\n" not in str(info.value) and "window" in str(info.value)


@pytest.mark.parametrize(
    ("duration_s", "expected"),
    [(60.0, 0.5), (100.0, 1.0), (3_600.0, 50.0), (86_400.0, 1_000.0), (1.0, 0.01), (0.0, 1.0)],
)
def test_default_window_is_a_round_step_with_at_most_150_windows(
    duration_s: float, expected: float
) -> None:
    window = default_window_s(duration_s)
    assert window == expected
    assert duration_s / window <= 150


def test_panels_are_json_serialisable_with_their_notes() -> None:
    panels = build_panels(synthetic_run(1_000, error_share=0.1))
    for panel in panels:
        data = json.loads(panel.figure.to_json())
        assert data["layout"]["title"]["text"] == panel.title
