"""A disturbed load generator is never a PASS: ``Run.disturbed`` (the one test, on what the
generator recorded in run.json) and what the judge, the table, ``verdict.json`` and
``python -m sla check`` make of it. Old runs, without the loop lag, judge as before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dashboards.capacity_points import step_notes
from loadtests.recording.disturbance import (
    merge_loop_lag,
    summarize_loop_lag,
    summarize_machine_cpu,
)
from reports.capacity_pieces import capacity_warnings
from sla.capacity import summarize_step
from sla.files.run import load_run
from sla.files.verdict import VERDICT_FILE, load_verdict, verdict_to_dict, write_verdict
from sla.objectives import Status
from sla.table import format_table
from sla.verdict import EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_PASS, evaluate, exit_code
from tests.capacity_helpers import capacity_result, read_result
from tests.reports import steady, write_run
from tests.sla.test_cli import run_cli
from tests.sla.test_incomplete import FAILING, SPEC

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "schema1" / "chat-run"


def generator(*lags_ms: list[float]) -> dict[str, Any]:
    """run.json ``generator`` of processes whose loops woke with these lags (20 ms apart),
    as the load generator writes it at the end of a run."""
    processes = [
        {
            "worker": f"worker-{i}",
            "cpu": {"samples": 10, "mean_percent": 20.0, "saturated": False},
            "loop_lag": summarize_loop_lag(lags, 0.02, 50.0),
            "machine_cpu": summarize_machine_cpu([60.0, 80.0], 2),
        }
        for i, lags in enumerate(lags_ms)
    ]
    merged = merge_loop_lag([p["loop_lag"] for p in processes])
    return {
        "processes": processes,
        "saturated": False,
        "loop_lag": merged,
        "disturbed": bool(merged and merged["disturbed"]),
    }


CALM = [0.5] * 500
HELD = [0.5] * 490 + [350.0] * 10  # ten 350 ms stalls in ~13 s


def run_with(path: Path, gen: dict[str, Any]) -> Path:
    return write_run(path, steady(400), meta={"generator": gen})


def test_a_calm_generator_is_not_disturbed(tmp_path: Path) -> None:
    run = load_run(run_with(tmp_path / "run", generator(CALM, CALM)))
    assert run.disturbed == ()
    verdict = evaluate(SPEC, run)
    assert verdict.status is Status.PASS and verdict.disturbed == ()
    assert exit_code(verdict) == EXIT_PASS


def test_one_held_worker_disturbs_the_run_with_its_figures(tmp_path: Path) -> None:
    run = load_run(run_with(tmp_path / "run", generator(CALM, HELD)))
    (reason,) = run.disturbed
    assert reason.startswith(
        "worker-1's event loop ran more than 50 ms (--max-loop-lag) late for 21.8% of the "
        "measured time (lag p99 350 ms, max 350 ms)"
    )
    assert "max 350 ms" in reason and "70% of the machine's 2 cores" in reason


def test_a_disturbed_run_is_never_a_pass(tmp_path: Path) -> None:
    run = load_run(run_with(tmp_path / "run", generator(HELD)))
    verdict = evaluate(SPEC, run)
    assert verdict.objectives[0].status is Status.PASS  # what the rows say
    assert verdict.status is Status.INCONCLUSIVE and verdict.disturbed == run.disturbed
    # --sla-allow-inconclusive excuses too few samples, never untrustworthy timestamps
    assert exit_code(verdict, allow_inconclusive=True) == EXIT_INCONCLUSIVE
    table = format_table(verdict)
    assert "INCONCLUSIVE" in table.splitlines()[0]
    assert f"DISTURBED LOAD GENERATOR, never a PASS: {run.disturbed[0]}" in table


def test_a_fail_stays_a_fail(tmp_path: Path) -> None:
    verdict = evaluate(FAILING, load_run(run_with(tmp_path / "run", generator(HELD))))
    assert verdict.status is Status.FAIL and verdict.disturbed
    assert exit_code(verdict, allow_inconclusive=True) == EXIT_FAIL


def test_verdict_json_keeps_the_reasons_and_reads_old_files(tmp_path: Path) -> None:
    run_dir = run_with(tmp_path / "run", generator(HELD))
    verdict = evaluate(SPEC, load_run(run_dir))
    write_verdict(run_dir, verdict)
    data = json.loads((run_dir / VERDICT_FILE).read_text())
    assert data["disturbed"] == list(verdict.disturbed)
    assert data["status"] == "INCONCLUSIVE" and data["exit_code"] == EXIT_INCONCLUSIVE
    assert load_verdict(run_dir) == verdict
    old = verdict_to_dict(evaluate(SPEC, load_run(write_run(tmp_path / "ok", steady(50)))))
    del old["disturbed"]  # a verdict.json written before the field existed
    (run_dir / VERDICT_FILE).write_text(json.dumps(old))
    loaded = load_verdict(run_dir)
    assert loaded is not None and loaded.disturbed == () and loaded.status is Status.PASS


def test_sla_check_exits_3_even_with_allow_inconclusive(tmp_path: Path) -> None:
    run_dir = run_with(tmp_path / "run", generator(HELD))
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: t\nobjectives:\n  - {metric: latency_ms, stat: p50, max: 500}\n")
    result = run_cli("check", run_dir, spec, "--allow-inconclusive")
    assert result.returncode == EXIT_INCONCLUSIVE, result.stdout + result.stderr
    assert "DISTURBED LOAD GENERATOR, never a PASS: worker-0's event loop" in result.stdout


def test_runs_from_before_the_loop_lag_judge_as_before() -> None:
    run = load_run(FIXTURE)
    assert "loop_lag" not in json.dumps(run.meta) and run.disturbed == ()
    recorded = load_verdict(FIXTURE)
    assert recorded is not None and recorded.disturbed == ()


def test_a_bare_flag_without_figures_still_counts(tmp_path: Path) -> None:
    run = load_run(run_with(tmp_path / "run", {"saturated": False, "disturbed": True}))
    assert run.disturbed == ("run.json generator.disturbed is set",)


# --- capacity search: a step with a disturbed segment never counts as a PASS --------------


def test_a_step_with_a_disturbed_segment_is_inconclusive_and_says_why(tmp_path: Path) -> None:
    calm = load_run(run_with(tmp_path / "a", generator(CALM)))
    held = load_run(run_with(tmp_path / "b", generator(HELD)))
    verdict, step = summarize_step(SPEC, [calm, held])
    assert verdict.objectives[0].status is Status.PASS  # the pooled numbers would pass
    assert step.status == "INCONCLUSIVE" and step.disturbed == held.disturbed[0]
    _, clean = summarize_step(SPEC, [calm])
    assert clean.status == "PASS" and clean.disturbed is None


def test_capacity_json_keeps_why_a_step_was_disturbed_and_reads_old_files() -> None:
    result = capacity_result()
    result["steps"][6]["disturbed"] = "worker-0's event loop ran more than 50 ms late"
    read = read_result(json.loads(json.dumps(read_result(result).to_dict())))
    assert read.steps[6].disturbed == "worker-0's event loop ran more than 50 ms late"
    assert read.steps[5].disturbed is None  # written before the field existed
    assert "load generator disturbed: worker-0's event loop" in step_notes(read.steps[6])[0]
    warnings = capacity_warnings(read)
    assert any(w.startswith("The load generator was disturbed in step 7") for w in warnings)
