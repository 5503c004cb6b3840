"""The run directory's lifecycle (loadtests.harness.rundir): where a run writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests.capacity.options import EXACT_RUN_DIR_ENV
from loadtests.harness.rundir import RunDirInUse, default_run_dir, fresh_dir


def test_two_default_run_dirs_made_in_the_same_second_differ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    made = [default_run_dir("chat") for _ in range(3)]
    assert len(set(made)) == 3
    assert all(p.is_dir() for p in made)  # each one is taken as it is named
    assert made[1].name == made[0].name + "-2"


def test_a_non_empty_run_dir_is_moved_aside_and_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    used = tmp_path / "run"
    used.mkdir()
    (used / "run.json").write_text("{}")
    (tmp_path / "run-2").mkdir()  # taken by another process, even though empty
    assert fresh_dir(tmp_path / "empty") == tmp_path / "empty"
    assert fresh_dir(used) == tmp_path / "run-3"
    assert "writing to" in caplog.text and "run-3" in caplog.text


def test_a_run_dir_the_parent_judges_is_never_moved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(EXACT_RUN_DIR_ENV, "1")
    used = tmp_path / "run"
    used.mkdir()
    assert fresh_dir(used) == used  # empty: the parent created it for this run
    (used / "run.json").write_text("{}")
    with pytest.raises(RunDirInUse, match="is not empty"):
        fresh_dir(used)
