"""``--sla FILE`` on a Locust run: the master judges the whole run and decides the exit code
(0 pass, 1 fail, 3 inconclusive); a bad spec stops Locust before any load."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from tests.loadtests.conftest import SMALL_LOAD, RunLocust
from tests.server_process import ServerProcess

pytestmark = pytest.mark.e2e

StartServer = Callable[..., ServerProcess]


def spec(tmp_path: Path, text: str) -> str:
    path = tmp_path / "sla.yaml"
    path.write_text(text)
    return str(path)


LATENCY_UNDER_100MS = """
name: tight
confidence: 0.9
objectives:
  - {metric: latency_ms, stat: p50, max: 100}
"""


@pytest.mark.parametrize("mode", [(), ("--processes", "2")], ids=["local", "distributed"])
def test_a_passing_sla_exits_0_and_writes_the_verdict(
    run_locust: RunLocust, reference_server: ServerProcess, tmp_path: Path, mode: tuple[str, ...]
) -> None:
    server = reference_server
    loose = spec(tmp_path, LATENCY_UNDER_100MS.replace("max: 100", "max: 5000"))
    # --sla-stop-early never ends a passing run: it runs its whole -t.
    result = run_locust("chat", "--host", server.url, "-u", "2", "-t", "3s", "--sla", loose,
                        "--sla-stop-early", "--live-interval", "1", *mode, *SMALL_LOAD)  # fmt: skip
    assert result.code == 0, result.output
    meta = json.loads((result.run_dir / "run.json").read_text())
    # Its whole 3 s: a stop on the first look would end it after ~1 s (a busy machine, with
    # workers to start, stamps the start a few tenths late).
    assert meta["ended_at"] - meta["started_at"] >= 2.5 and "stopped_early" not in meta
    # The live lines count what reaches the master (in distributed mode, the workers' rows).
    assert "slabench live SLA (provisional) p50 latency_ms:" in result.output
    verdict = json.loads((result.run_dir / "verdict.json").read_text())
    assert verdict["status"] == "PASS" and verdict["exit_code"] == 0
    assert verdict["stopped_early"] == ""
    # The master judged every worker's records: the verdict counts what is on disk.
    rows = len(pd.read_parquet(result.run_dir / "requests.parquet"))
    assert verdict["counts"]["recorded"] == rows > 0
    assert "p50 latency_ms" in result.output and "PASS" in result.output


def test_a_failing_sla_exits_1_with_the_objective_named(
    run_locust: RunLocust, start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server("--fault-latency", "fixed:300")  # every request takes >= 300 ms
    result = run_locust("chat", "--host", server.url, "-u", "4", "-t", "4s",
                        "--sla", spec(tmp_path, LATENCY_UNDER_100MS), *SMALL_LOAD)  # fmt: skip
    assert result.code == 1, result.output
    verdict = json.loads((result.run_dir / "verdict.json").read_text())
    assert verdict["status"] == "FAIL"
    (objective,) = verdict["objectives"]
    assert objective["observed"] >= 300 and objective["status"] == "FAIL"
    assert "> 100 ms" in objective["message"]


def test_an_inconclusive_sla_exits_3_unless_allowed(
    run_locust: RunLocust, reference_server: ServerProcess, tmp_path: Path
) -> None:
    server = reference_server
    p99 = spec(tmp_path, "objectives:\n  - {metric: latency_ms, stat: p99.9, max: 5000}\n")
    args = ("chat", "--host", server.url, "-u", "1", "-t", "2s", "--sla", p99, *SMALL_LOAD)
    assert run_locust(*args).code == 3  # a p99.9 from a couple of seconds says nothing
    assert run_locust(*args, "--sla-allow-inconclusive").code == 0


def test_a_bad_spec_fails_before_any_load(run_locust: RunLocust, tmp_path: Path) -> None:
    bad = spec(tmp_path, "objectives:\n  - {metric: tftt_ms, stat: p99, max: 450}\n")
    result = run_locust("chat", "--host", "http://127.0.0.1:9", "-t", "2s", "--sla", bad)
    assert result.code == 2, result.output
    assert "tftt_ms" in result.output and "ttft_ms" in result.output
    assert "Traceback" not in result.output
    assert not (result.run_dir / "requests.parquet").exists()


COUNTING_LOCUSTFILE = '''
"""The chat scenario, with every end-of-run reading of the run directory counted."""
import atexit
import collections

import dashboards.windows
import reports.render
import sla.reading
from loadtests.harness import conclude
from loadtests.scenarios.chat import *  # noqa: F403  (the scenario's user class)

CALLS = collections.Counter()


def counted(module, name):
    real = getattr(module, name)

    def wrapper(*args, **kwargs):
        CALLS[name] += 1
        return real(*args, **kwargs)

    setattr(module, name, wrapper)


for module, name in [(conclude, "load_run"), (reports.render, "load_run"),
                     (sla.reading, "with_request_metrics"),
                     (dashboards.windows, "with_request_metrics"),
                     (conclude, "summarize_run"), (conclude, "evaluate")]:
    counted(module, name)
atexit.register(lambda: print("END-OF-RUN CALLS", dict(sorted(CALLS.items())), flush=True))
'''


def test_the_end_of_a_run_reads_it_once_for_summary_verdict_and_report(
    run_locust: RunLocust, reference_server: ServerProcess, tmp_path: Path
) -> None:
    """At test stop the run directory is loaded once, its metrics derived once, and the same
    reading summarised, judged and rendered (report.html on, as users run it)."""
    server = reference_server
    locustfile = tmp_path / "counting_chat.py"
    locustfile.write_text(COUNTING_LOCUSTFILE)
    loose = spec(tmp_path, LATENCY_UNDER_100MS.replace("max: 100", "max: 5000"))
    load = [a for a in SMALL_LOAD if a != "--no-report"]
    result = run_locust(str(locustfile.with_suffix("")), "--host", server.url, "-u", "2",
                        "-t", "2s", "--sla", loose, *load)  # fmt: skip
    assert result.code == 0, result.output
    assert (result.run_dir / "report.html").exists() and (result.run_dir / "verdict.json").exists()
    expected = {"evaluate": 1, "load_run": 1, "summarize_run": 1, "with_request_metrics": 1}
    assert f"END-OF-RUN CALLS {expected}" in result.output, result.output[-2000:]
