"""A run directory and a capacity sweep written by slabench before issue 10 (schema 1,
recorded by the real load generator against the bundled server: ``tests/fixtures/schema1``)
still load, judge to the verdict recorded at the time and render."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

from reports import render_capacity_report, summarize_run, write_report
from sla.capacity import summarize_step
from sla.files.capacity import (
    CAPACITY_FILE,
    CAPACITY_SCHEMA_VERSION,
    CapacityResult,
    load_capacity,
    write_capacity,
)
from sla.files.run import load_run
from sla.files.verdict import load_verdict
from sla.objectives import Status
from sla.reading import read_run
from sla.spec import load_spec
from sla.verdict import evaluate

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "schema1"
RUN = FIXTURES / "chat-run"
SWEEP = FIXTURES / "sweep"
SPEC = ROOT / "sla" / "examples" / "smoke.yaml"


def test_an_old_run_directory_loads() -> None:
    run = load_run(RUN)
    assert run.meta["schema_version"] == 1
    assert len(run.requests) == run.meta["requests"] == 144
    assert run.server_metrics is not None and len(run.server_metrics) > 0
    assert not run.from_parts and not run.saturated


def test_it_judges_to_the_verdict_recorded_at_the_time() -> None:
    recorded = load_verdict(RUN)
    assert recorded is not None and recorded.status is Status.PASS
    reading = read_run(load_run(RUN))
    verdict = evaluate(load_spec(SPEC), reading)
    same_names = replace(verdict, run_path=recorded.run_path, spec_source=recorded.spec_source)
    assert same_names == recorded
    assert summarize_run(reading).measured == recorded.counts.measured


def test_it_renders_a_report(tmp_path: Path) -> None:
    run_dir = shutil.copytree(RUN, tmp_path / "chat-run")
    path = write_report(run_dir)
    html = path.read_text(encoding="utf-8")
    assert path == run_dir / "report.html"
    assert "slabench: chat (PASS)" in html and "smoke" in html
    # Written before turns, cached_tokens, reasoning and its server's prefix-cache counters
    # (and closed loop): none of the figures drawn from them, no turn table.
    for key in ("arrivals", "prefix-cache", "turns", "reasoning"):
        assert f'-{key}"></div>' not in html
    assert '-latency-over-time"></div>' in html and 'id="turns"' not in html


def test_an_old_sweep_loads_judges_and_renders(tmp_path: Path) -> None:
    result = load_capacity(SWEEP)
    assert result.outcome == "sla_holds_at_max" and len(result.steps) == 2
    spec = load_spec(SPEC)
    for step in result.steps:
        run = load_run(SWEEP / step.runs[0])
        assert evaluate(spec, run).status.value == step.status
        assert load_verdict(run.path) is not None
        _, numbers = summarize_step(spec, [run])
        for key in ("requests", "ok", "failed", "window_s", "throughput_rps", "latency_ms"):
            assert getattr(numbers, key) == getattr(step, key), key
    sweep = shutil.copytree(SWEEP, tmp_path / "sweep")
    html = render_capacity_report(sweep)
    assert "4 users" in html


def test_an_old_capacity_json_reads_back_to_the_same_object(tmp_path: Path) -> None:
    on_disk = json.loads((SWEEP / CAPACITY_FILE).read_text(encoding="utf-8"))
    result = load_capacity(SWEEP)
    assert result.path == SWEEP
    assert {"schema_version": CAPACITY_SCHEMA_VERSION, **result.to_dict()} == on_disk
    # Not only equal numbers: the same types (2.0 stays 2.0), keys and order, byte for byte.
    assert write_capacity(tmp_path, result).read_bytes() == (SWEEP / CAPACITY_FILE).read_bytes()
    assert CapacityResult.from_dict(on_disk) == replace(result, path=None)
