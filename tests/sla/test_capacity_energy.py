"""Energy at the capacity found: each step's J per output token and per request over its
segments' measured windows (their own server_metrics), kept in capacity.json beside the
cost (an older file without it still reads), printed at the end of the search and shown
in the capacity report; a target that reports no energy source says so, never 0 J."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest

from loadtests.capacity.progress import Progress
from reports import render_capacity_report
from sla.capacity import energy_at, summarize_step
from sla.energy import TARGET_REPORTS_NONE
from sla.files.capacity import (
    CapacityResult,
    StepResult,
    load_capacity,
    measurement_values,
    write_capacity,
)
from sla.files.run import Run
from tests.sla.test_capacity import result_of, run_of
from tests.sla.test_server_intervals import T0, scraped
from tests.sla.test_verdict import req, spec_of

URL = "http://127.0.0.1:8000/metrics"
SPEC = spec_of({"metric": "latency_ms", "stat": "p50", "max": 1000})


def energy_page(joules: float) -> str:
    """The reference server's NVML families, as prometheus_client writes them."""
    return (
        '# TYPE slabench_energy_source gauge\nslabench_energy_source{source="nvml"} 1.0\n'
        "# TYPE slabench_gpu_energy_joules counter\n"
        f'slabench_gpu_energy_joules_total{{gpu="0",uuid="GPU-1"}} {joules}\n'
    )


def segment(tmp_path: Path, start_s: float, joules: tuple[float, float], tokens: int) -> Run:
    """A 10 s segment of 5 requests of ``tokens`` output tokens each, scraped at its
    window's start and end with the energy counter at ``joules``."""
    rows = [req(start_s + 1 + i, 100.0, tokens=tokens) for i in range(5)]
    run = run_of(rows, name=f"seg{start_s:g}", started_s=start_s, ended_s=start_s + 10)
    pages = [(T0 + start_s, URL, energy_page(joules[0]))]
    pages.append((T0 + start_s + 10, URL, energy_page(joules[1])))
    return replace(run, server_metrics=scraped(tmp_path / f"s{start_s:g}", *pages))


def test_a_steps_energy_sums_its_segments_and_is_kept_in_capacity_json(tmp_path: Path) -> None:
    """Segment 1: 500 J over 10 s, 5 x 20 tokens; segment 2: 1,500 J, 5 x 60 tokens. The
    step: 2,000 J over 20 s (100 W), 400 tokens (5 J/token), 10 requests (200 J/request)."""
    runs = [
        segment(tmp_path, 0, (1000.0, 1500.0), 20),
        segment(tmp_path, 20, (1500.0, 3000.0), 60),
    ]
    _, measured = summarize_step(SPEC, runs)
    e = measured.energy
    assert e is not None and e.none is None
    assert e.joules == pytest.approx(2000.0) and e.mean_power_w == pytest.approx(100.0)
    assert e.j_per_output_token == pytest.approx(5.0)
    assert e.j_per_request == pytest.approx(200.0)
    assert e.metric == "slabench_gpu_energy_joules"

    step = StepResult(**{**measurement_values(measured), "step": 3, "load": 8.0, "phase": "bisect"})
    result = replace(CapacityResult.from_dict(result_of()), steps=(step,), energy=energy_at(step))
    written = json.loads(write_capacity(tmp_path, result).read_text())
    assert written["energy"]["at_load"] == 8.0 and written["energy"]["step"] == 3
    assert written["energy"]["j_per_output_token"] == pytest.approx(5.0)
    assert written["steps"][0]["energy"]["j_per_request"] == pytest.approx(200.0)
    assert load_capacity(tmp_path) == replace(result, path=tmp_path)

    lines: list[str] = []
    progress = Progress(cast(Any, None), cast(Any, None))
    progress.say = lines.append
    progress.result(result, tmp_path)
    assert "energy at capacity (step 3): 5 J/output token, 200 J/request (mean 100 W" in (
        "\n".join(lines)
    )
    html = render_capacity_report(tmp_path)
    assert "Energy at capacity" in html and "5 J/output token, 200 J/request" in html


def test_an_older_capacity_json_without_energy_still_reads(tmp_path: Path) -> None:
    step = {"step": 1, "load": 10.0, "phase": "widen", "status": "PASS", "requests": 3}
    step.update(ok=3, failed=0, objectives=[])
    data = {"schema_version": 1, **result_of(steps=[step])}
    (tmp_path / "capacity.json").write_text(json.dumps(data))
    loaded = load_capacity(tmp_path)
    assert loaded.energy is None and loaded.steps[0].energy is None
    assert "Energy at" not in render_capacity_report(tmp_path)


def test_a_target_reporting_no_energy_source_says_so_never_0_joules(tmp_path: Path) -> None:
    """The reference server on a CPU exports only ``slabench_energy_source{source="none"}``."""
    none = '# TYPE slabench_energy_source gauge\nslabench_energy_source{source="none"} 1.0\n'
    run = run_of([req(1 + i, 100.0) for i in range(5)], ended_s=10)
    run = replace(run, server_metrics=scraped(tmp_path / "s", (T0, URL, none), (T0 + 9, URL, none)))
    _, measured = summarize_step(SPEC, [run])
    e = measured.energy
    assert e is not None and e.joules is None and e.j_per_output_token is None
    assert e.none == TARGET_REPORTS_NONE
    assert e.none.startswith("no energy source: the target reports none")
    step = StepResult(**{**measurement_values(measured), "step": 1, "load": 2.0, "phase": "widen"})
    result = replace(CapacityResult.from_dict(result_of()), steps=(step,), energy=energy_at(step))
    write_capacity(tmp_path, result)
    assert json.loads((tmp_path / "capacity.json").read_text())["energy"]["joules"] is None
    lines: list[str] = []
    progress = Progress(cast(Any, None), cast(Any, None))
    progress.say = lines.append
    progress.result(load_capacity(tmp_path), tmp_path)
    assert f"energy at capacity (step 1): {TARGET_REPORTS_NONE}" in lines
    assert "0 J" not in "\n".join(lines)
    assert "no energy source: the target reports none" in render_capacity_report(tmp_path)
