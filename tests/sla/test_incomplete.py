"""A gate never passes on data it does not have: ``Run.incomplete`` (the one test) and what
the judge, the table, ``verdict.json`` and ``python -m sla check`` make of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sla.files.run import Run, load_run
from sla.files.verdict import VERDICT_FILE, load_verdict, verdict_to_dict, write_verdict
from sla.objectives import Status
from sla.spec import parse_spec
from sla.table import format_table
from sla.verdict import EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_PASS, evaluate, exit_code
from tests.reports import steady, write_run
from tests.sla.test_cli import run_cli

SPEC = parse_spec(
    {"name": "t", "objectives": [{"metric": "latency_ms", "stat": "p50", "max": 500}]},
    source="t.yaml",
)
FAILING = parse_spec(
    {"name": "t", "objectives": [{"metric": "latency_ms", "stat": "p50", "max": 1}]},
    source="t.yaml",
)
CAUSES = ("killed", "status", "missing_workers")


def incomplete_run(path: Path, cause: str, n: int = 400) -> Path:
    """A run of ``n`` fast requests that lacks data for ``cause``."""
    if cause == "killed":  # never closed: parts only, run.json still says "running"
        return write_run(path, steady(n), close=False)
    if cause == "missing_workers":
        generator = {"saturated": False, "missing_workers": ["worker-b"]}
        return write_run(path, steady(n), meta={"generator": generator})
    write_run(path, steady(n))
    meta_path = path / "run.json"
    meta = json.loads(meta_path.read_text())
    meta["status"] = "interrupted"
    meta_path.write_text(json.dumps(meta))
    return path


def test_the_complete_helper_run_is_complete(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "run", steady(50)))
    assert run.incomplete == ()
    verdict = evaluate(SPEC, run)
    assert verdict.status is Status.PASS and verdict.incomplete == ()
    assert exit_code(verdict) == EXIT_PASS


@pytest.mark.parametrize(
    ("cause", "reason"),
    [
        ("killed", "never closed"),
        ("status", 'run.json status is "interrupted", not "complete"'),
        ("missing_workers", "workers never handed over their records: worker-b"),
    ],
)
def test_each_cause_gives_its_reason(tmp_path: Path, cause: str, reason: str) -> None:
    run = load_run(incomplete_run(tmp_path / "run", cause))
    assert any(reason in r for r in run.incomplete), run.incomplete


def test_a_run_json_without_status_is_incomplete(tmp_path: Path) -> None:
    meta = {"schema_version": 1, "started_at": 0.0}
    run = Run(tmp_path, meta, load_run(write_run(tmp_path / "r", steady(5))).requests, None)
    assert run.incomplete == ('run.json has no status (a complete run says "complete")',)


@pytest.mark.parametrize("cause", CAUSES)
def test_an_incomplete_run_is_never_a_pass(tmp_path: Path, cause: str) -> None:
    run = load_run(incomplete_run(tmp_path / "run", cause))
    verdict = evaluate(SPEC, run)
    assert verdict.objectives[0].status is Status.PASS  # what the rows it has say
    assert verdict.status is Status.INCONCLUSIVE
    assert verdict.incomplete == run.incomplete
    # --sla-allow-inconclusive excuses too few samples, never lost ones
    assert exit_code(verdict, allow_inconclusive=True) == EXIT_INCONCLUSIVE
    assert exit_code(verdict) == EXIT_INCONCLUSIVE
    table = format_table(verdict)
    assert "INCONCLUSIVE" in table.splitlines()[0]
    for reason in run.incomplete:
        assert f"INCOMPLETE RUN, never a PASS: {reason}" in table


@pytest.mark.parametrize("cause", CAUSES)
def test_a_fail_stays_a_fail(tmp_path: Path, cause: str) -> None:
    verdict = evaluate(FAILING, load_run(incomplete_run(tmp_path / "run", cause)))
    assert verdict.status is Status.FAIL
    assert exit_code(verdict, allow_inconclusive=True) == EXIT_FAIL
    assert verdict.incomplete


def test_verdict_json_keeps_the_reasons_and_reads_old_files(tmp_path: Path) -> None:
    run_dir = incomplete_run(tmp_path / "run", "missing_workers")
    verdict = evaluate(SPEC, load_run(run_dir))
    write_verdict(run_dir, verdict)
    data = json.loads((run_dir / VERDICT_FILE).read_text())
    assert data["incomplete"] == list(verdict.incomplete)
    assert data["status"] == "INCONCLUSIVE" and data["exit_code"] == EXIT_INCONCLUSIVE
    assert load_verdict(run_dir) == verdict
    old = verdict_to_dict(evaluate(SPEC, load_run(write_run(tmp_path / "ok", steady(50)))))
    del old["incomplete"]  # a verdict.json written before the field existed
    (run_dir / VERDICT_FILE).write_text(json.dumps(old))
    loaded = load_verdict(run_dir)
    assert loaded is not None and loaded.incomplete == () and loaded.status is Status.PASS


@pytest.mark.parametrize("cause", CAUSES)
def test_sla_check_exits_3_even_with_allow_inconclusive(tmp_path: Path, cause: str) -> None:
    run_dir = incomplete_run(tmp_path / "run", cause)
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: t\nobjectives:\n  - {metric: latency_ms, stat: p50, max: 500}\n")
    result = run_cli("check", run_dir, spec, "--allow-inconclusive")
    assert result.returncode == EXIT_INCONCLUSIVE, result.stdout + result.stderr
    assert "INCOMPLETE RUN, never a PASS" in result.stdout
    assert json.loads((run_dir / VERDICT_FILE).read_text())["incomplete"]
