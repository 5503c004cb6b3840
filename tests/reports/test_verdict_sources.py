from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from reports.render import resolve_verdict
from sla.files.run import RunDirError, load_run
from sla.files.verdict import load_verdict, verdict_from_dict, write_verdict
from sla.objectives import Status
from sla.spec import parse_spec
from sla.verdict import evaluate
from tests.reports import steady, write_run

SPEC = {
    "name": "t",
    "confidence": 0.9,
    "objectives": [
        {"metric": "latency_ms", "stat": "p50", "max": 1000},
        {"metric": "ttft_ms", "stat": "p99.9", "max": 100},  # too few samples: INCONCLUSIVE
        {"metric": "error_rate", "max": 0.05},
    ],
}


def test_verdict_json_reads_back_into_the_same_verdict(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "run", steady(60)))
    verdict = evaluate(parse_spec(SPEC), run)
    write_verdict(run.path, verdict)
    loaded = load_verdict(run.path)
    assert loaded == verdict
    assert loaded is not None and loaded.objectives[1].status is Status.INCONCLUSIVE


def test_null_floats_come_back_as_nan(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "run", []))  # no samples: observed is NaN
    write_verdict(run.path, evaluate(parse_spec(SPEC), run))
    data = json.loads((run.path / "verdict.json").read_text())
    assert data["objectives"][0]["observed"] is None
    loaded = load_verdict(run.path)
    assert loaded is not None and math.isnan(loaded.objectives[0].observed)


def test_a_run_without_verdict_json_has_no_verdict(tmp_path: Path) -> None:
    assert load_verdict(write_run(tmp_path / "run", steady(3))) is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{not json", "not readable JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"schema_version": 9}', "schema version 9"),
        ('{"schema_version": 1, "spec_name": "x"}', "not a slabench verdict"),
    ],
)
def test_a_bad_verdict_json_is_one_clear_line(tmp_path: Path, text: str, words: str) -> None:
    (tmp_path / "verdict.json").write_text(text)
    with pytest.raises(RunDirError) as info:
        load_verdict(tmp_path)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_a_spec_judges_the_run_now_and_wins_over_verdict_json(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "run", steady(60)))
    stale = evaluate(parse_spec(SPEC), run)
    write_verdict(run.path, replace(stale, status=Status.FAIL, spec_name="stale"))
    spec_file = tmp_path / "sla.yaml"
    spec_file.write_text(json.dumps({**SPEC, "name": "fresh"}))
    fresh = resolve_verdict(run, str(spec_file))
    assert fresh is not None and fresh.spec_name == "fresh"
    from_file = resolve_verdict(run, None)
    assert from_file is not None and from_file.spec_name == "stale"
    with pytest.raises(RunDirError):
        verdict_from_dict({"schema_version": 1, "counts": {}}, "x.json")
