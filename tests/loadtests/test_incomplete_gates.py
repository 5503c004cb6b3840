"""An incomplete run fails the pytest gate (even with ``--sla-allow-inconclusive``) and
makes a capacity step ERROR."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests.capacity.steps import Segment, StepRunner
from tests.loadtests.conftest import GATE_PLUGINS
from tests.loadtests.test_pytest_plugin import gate
from tests.reports import steady, write_run
from tests.sla.test_incomplete import CAUSES, incomplete_run

SPEC = """
name: gate
objectives:
  - {metric: latency_ms, stat: p50, max: 500}
"""


@pytest.mark.parametrize("cause", CAUSES)
def test_the_pytest_gate_fails_an_incomplete_run(
    pytester: pytest.Pytester, tmp_path: Path, cause: str
) -> None:
    run_dir = incomplete_run(tmp_path / "run", cause)
    gate(pytester, run_dir, SPEC)
    result = pytester.runpytest_subprocess(*GATE_PLUGINS, "--sla-allow-inconclusive")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["INCONCLUSIVE ?p50 latency_ms?*[[]incomplete run, never a PASS*"])
    assert "Traceback" not in result.stdout.str()


def _runner(tmp_path: Path) -> StepRunner:
    return StepRunner(
        argv=[], target_url="http://127.0.0.1:9", sweep_dir=tmp_path, bundled=False, say=print
    )


@pytest.mark.parametrize("cause", CAUSES)
def test_a_capacity_step_with_an_incomplete_run_is_an_error(tmp_path: Path, cause: str) -> None:
    path = incomplete_run(tmp_path / "step-01", cause)
    problem, run = _runner(tmp_path).check(Segment(path, 0, 10.0, ""))
    assert run is not None
    assert problem is not None and problem.startswith("its run is incomplete: ")
    assert run.incomplete[0] in problem


def test_a_complete_step_is_judged(tmp_path: Path) -> None:
    path = write_run(tmp_path / "step-01", steady(20))
    problem, run = _runner(tmp_path).check(Segment(path, 0, 10.0, ""))
    assert problem is None and run is not None
