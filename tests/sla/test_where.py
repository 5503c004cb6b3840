"""Objectives limited to a subset of requests (``where``, ``filters.turn``) and the time to
first output token (``ttfot_ms``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from sla.files.run import RequestRecord, load_run
from sla.files.verdict import load_verdict, write_verdict
from sla.objectives import Status
from sla.spec import SpecError, load_spec
from sla.verdict import evaluate
from tests.sla.test_verdict import req, spec_of, write_run


def _turns(count: int, first_ttft_ms: float, later_ttft_ms: float) -> list[RequestRecord]:
    """``count`` conversations of 3 turns: the first turn slow, the later ones fast; each
    request's first output 50 ms after its first token (reasoning before it)."""
    records = []
    for i in range(count):
        for turn in (1, 2, 3):
            ttft = first_ttft_ms if turn == 1 else later_ttft_ms
            rec = req(i * 0.25 + turn * 0.05, 800.0, ttft_ms=ttft)
            output_at = rec.first_token_at + 0.05
            records.append(
                replace(rec, request_id=f"c{i}t{turn}", session_id=f"c{i}", turn=turn,
                        first_output_at=output_at)
            )  # fmt: skip
    return records


def test_turn_filters_judge_first_and_later_turns_apart(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path, _turns(40, first_ttft_ms=600.0, later_ttft_ms=100.0)))
    spec = spec_of(
        {"metric": "ttft_ms", "stat": "p90", "max": 200, "where": {"turn": ">1"}},
        {"metric": "ttft_ms", "stat": "p90", "max": 200, "where": {"turn": 1}},
        {"metric": "ttft_ms", "stat": "p90", "max": 200, "where": {"turn": [">=2", "!=3"]}},
        {"metric": "ttfot_ms", "stat": "max", "max": 150, "where": {"turn": ">1"}},
        {"metric": "throughput_rps", "min": 0.5, "where": {"endpoint": "chat", "turn": "<2"}},
    )
    later, first, second, ttfot, rate = evaluate(spec, run).objectives
    assert (later.status, later.n, later.observed) == (Status.PASS, 80, pytest.approx(100.0))
    assert (first.status, first.n) == (Status.FAIL, 40)
    assert second.n == 40
    assert (ttfot.status, ttfot.observed) == (Status.PASS, pytest.approx(150.0))
    assert rate.observed == pytest.approx(40 / 100.0)  # first turns over the whole window
    assert later.label == "p90 ttft_ms [turn>1]" and later.message.startswith(
        "[p90 ttft_ms [turn>1]]"
    )
    # The filter is kept in verdict.json.
    verdict = evaluate(spec, run)
    write_verdict(tmp_path, verdict)
    loaded = load_verdict(tmp_path)
    assert loaded is not None and [o.where for o in loaded.objectives][:2] == ["turn>1", "turn=1"]


def test_a_turn_filter_on_single_turn_traffic_is_never_a_pass(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path, [req(i * 0.5, 100.0, ttft_ms=20.0) for i in range(50)]))
    spec = spec_of(
        {"metric": "ttft_ms", "stat": "p50", "max": 1000, "where": {"turn": ">1"}},
        {"metric": "throughput_rps", "max": 1000, "where": {"turn": ">1"}},
        {"metric": "error_rate", "max": 0.5, "where": {"turn": 1}},
        {"metric": "ttft_ms", "stat": "p50", "max": 1000},
        filters={"endpoint": "chat"},
    )
    verdict = evaluate(spec, run)
    assert [o.status for o in verdict.objectives] == [Status.INCONCLUSIVE] * 3 + [Status.PASS]
    for result in verdict.objectives[:3]:
        assert "no samples: no request in the judged window matches turn" in result.message
        assert "single-turn" in result.message
    assert verdict.status is Status.INCONCLUSIVE
    # The same filter spec-wide keeps nothing either.
    spec = spec_of({"metric": "ttft_ms", "stat": "p50", "max": 1000}, filters={"turn": ">1"})
    assert evaluate(spec, run).status is Status.INCONCLUSIVE


def test_ttfot_is_a_metric_of_specs_and_per_request_limits(tmp_path: Path) -> None:
    records = [
        replace(r, first_output_at=r.first_token_at + 0.2)
        for r in (req(i * 0.5, 500.0, ttft_ms=100.0) for i in range(50))
    ]
    run = load_run(write_run(tmp_path, records))
    spec = spec_of(
        {"metric": "ttfot_ms", "stat": "p50", "max": 250},
        {"metric": "goodput_ratio", "min": 1},
        per_request={"ttfot_ms": 350},
    )
    result, good = evaluate(spec, run).objectives
    assert (result.status, result.observed) == (Status.FAIL, pytest.approx(300.0))
    assert good.status is Status.PASS


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"turns": 2}, "objectives[0] (ttft_ms): where: unknown key 'turns'; did you mean 'turn'?"),
        ({"turn": ">>1"}, "objectives[0] (ttft_ms): where.turn: bad condition '>>1'; write a turn"),
        ({"turn": 0}, "objectives[0] (ttft_ms): where.turn: turns count from 1, not 0"),
        ({"turn": True}, "objectives[0] (ttft_ms): where.turn: bad condition True"),
        ({"endpoint": 3}, "objectives[0] (ttft_ms): where.endpoint must be a name or a list"),
        ("turn>1", "objectives[0] (ttft_ms): where must be a mapping like {endpoint: chat}"),
    ],
)
def test_a_bad_where_is_one_line_naming_the_file_and_the_key(
    tmp_path: Path, where: object, expected: str
) -> None:
    file = tmp_path / "sla.yaml"
    objective = {"metric": "ttft_ms", "stat": "p99", "max": 450, "where": where}
    file.write_text(yaml.safe_dump({"objectives": [objective]}), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(file)
    message = str(info.value)
    assert message.startswith(f"{file}: {expected}"), message
    assert "\n" not in message
