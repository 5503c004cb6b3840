"""A capacity search shows the step in flight: the step's live lines reach the search's
terminal, named by step, and a progress line (budget bar, steps done, bracket, budget left)
follows each step and each live interval. Real objects: a real child process writing its
log, the real ``StepRunner`` relaying it, the real ``Progress`` and ``SearchPolicy``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from loadtests.capacity.options import SearchOptions
from loadtests.capacity.progress import Progress
from loadtests.capacity.relay import LogFollower, relayed
from loadtests.capacity.steps import StepRunner
from loadtests.harness.options_doc import slabench_parser
from sla.search import SearchPolicy

LIVE = "slabench live 2s (provisional, ±1%) chat: n=12 TTFT p50 8.0ms p99 9.5ms"
SLA = "slabench live SLA (provisional) p99 ttft_ms: 9.5 ms <= 500 ms PASS so far (n=12)"

# A step's locust as far as the relay can tell: Locust's lines on stderr, the live lines
# on stdout (flushed, as the live view prints them), a line cut in two by a pause.
CHILD = f"""
import sys, time
print("[2025-01-01] INFO/locust.main: Run time limit set to 3 seconds", file=sys.stderr)
print({LIVE!r}, flush=True)
sys.stdout.write("slabench live 3s (provisional, ±1%) chat: n=")
sys.stdout.flush()
time.sleep(0.6)
print("30 TTFT p50 8.1ms", flush=True)
print({SLA!r}, flush=True)
time.sleep(0.6)
print("Type     Name  # reqs", flush=True)
"""


def test_a_steps_live_lines_reach_the_search_named_by_the_step(tmp_path: Path) -> None:
    said: list[str] = []
    beats: list[tuple[float, int]] = []
    runner = StepRunner(
        argv=[],
        target_url="http://127.0.0.1:9",
        sweep_dir=tmp_path,
        bundled=False,
        say=said.append,
        beat=lambda elapsed_s, run_s: beats.append((elapsed_s, run_s)),
        beat_s=0.5,
    )
    log = tmp_path / "step-03-rate-12.log"
    code = runner.execute([sys.executable, "-c", CHILD], dict(os.environ), log, "step 3", 30)
    assert code == 0
    assert said == [
        "step 3 live 2s (provisional, ±1%) chat: n=12 TTFT p50 8.0ms p99 9.5ms",
        "step 3 live 3s (provisional, ±1%) chat: n=30 TTFT p50 8.1ms",  # whole, not cut
        "step 3 live SLA (provisional) p99 ttft_ms: 9.5 ms <= 500 ms PASS so far (n=12)",
    ]
    # The beat came while the step ran (it runs for over a second, the beat is 0.5 s).
    assert beats and all(run_s == 30 and 0.0 < at < 30.0 for at, run_s in beats)
    # The log keeps everything the step printed, the relayed lines included.
    text = log.read_text(encoding="utf-8")
    assert LIVE in text and SLA in text and "Run time limit" in text and "# reqs" in text


def test_the_follower_reads_only_whole_new_lines(tmp_path: Path) -> None:
    path = tmp_path / "step.log"
    follower = LogFollower(path)
    assert follower.new_lines() == []  # not written yet
    path.write_bytes(b"one\r\ntw")
    assert follower.new_lines() == ["one"]
    with path.open("ab") as f:
        f.write("o \xb1\nthree\n".encode())
    assert follower.new_lines() == ["two \xb1", "three"]
    assert follower.new_lines() == []


def test_only_live_lines_are_relayed() -> None:
    assert relayed(LIVE, "step 1") == (
        "step 1 live 2s (provisional, ±1%) chat: n=12 TTFT p50 8.0ms p99 9.5ms"
    )
    assert relayed("slabench: wrote /tmp/run", "step 1") is None
    assert relayed("Aggregated  120  0(0.00%)", "step 1") is None


def _progress(budget_s: str = "10m") -> tuple[Progress, list[str]]:
    argv = ["--capacity-search", "--sla", "spec.yaml", "--search-start", "8"]
    ns = slabench_parser().parse_args([*argv, "--search-budget", budget_s])
    options = SearchOptions.from_namespace(ns)
    assert isinstance(options, SearchOptions)
    progress = Progress(options, SearchPolicy(options.settings))
    lines: list[str] = []
    progress.say = lines.append
    return progress, lines


def test_the_progress_line_shows_the_budget_steps_and_bracket() -> None:
    progress, lines = _progress("10m")
    progress.progress(steps_done=0, elapsed_s=0.0, step=1, step_s="4/20s")
    progress.policy.record(8.0, "PASS", thorough=False)
    progress.policy.record(16.0, "FAIL", thorough=False)
    progress.progress(steps_done=2, elapsed_s=150.0)
    progress.progress(steps_done=1, elapsed_s=700.0, step=2, step_s="1/20s")  # over budget
    assert lines == [
        "search [....................] 0% of the budget: 0 steps done, no PASS yet .. "
        "no FAIL yet, 10m00s left; step 1 at 4/20s",
        "search [#####...............] 25% of the budget: 2 steps done, PASS 8 req/s .. "
        "not 16 req/s, 7m30s left",
        "search [####################] 100% of the budget: 1 step done, PASS 8 req/s .. "
        "not 16 req/s, 0m00s left; step 2 at 1/20s",
    ]


@pytest.mark.parametrize("interval_s", [0.0, -1.0])
def test_without_a_live_view_the_beat_keeps_its_old_pace(tmp_path: Path, interval_s: float) -> None:
    runner = StepRunner(
        argv=[], target_url="http://x", sweep_dir=tmp_path, bundled=False, say=print,
        beat_s=interval_s,
    )  # fmt: skip
    assert runner.beat_s == 15.0
