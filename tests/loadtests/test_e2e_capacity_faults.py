"""The capacity search end to end when things go wrong: a target restarting mid-step,
Ctrl-C, a SIGKILLed search, a bad option, a run directory left by an earlier search, and
``--processes`` workers that must not outlive the search."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from loadtests.recording.recorder import RequestRecorder, finish_run_json, start_run_json
from sla.files.capacity import load_capacity
from sla.files.run import load_run
from tests.loadtests.capacity_support import KSERVE, TOLERANT_STEPS, write_spec
from tests.loadtests.conftest import SMALL_SERVER_ARGS, RunLocust, StartLocust
from tests.server_process import SMALL_MODELS, ServerProcess, wait_until

pytestmark = pytest.mark.e2e

StartServer = Callable[..., ServerProcess]


def test_search_survives_a_server_restart(run_locust: RunLocust, tmp_path: Path) -> None:
    args = [*SMALL_MODELS, "--drain-timeout", "1"]
    first = ServerProcess(args=args).start()
    servers = [first]
    port = str(first.url.rsplit(":", 1)[1])
    sweep = tmp_path / "sweep"
    restarted = threading.Event()

    def restart_during_step_two() -> None:
        if not wait_until(lambda: (sweep / "step-02-rate-10.log").exists(), timeout_s=120):
            return
        time.sleep(2.5)  # the step's locust is sending by now
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        servers.append(ServerProcess(args=[*args, "--port", port]).start())
        restarted.set()

    killer = threading.Thread(target=restart_during_step_two, daemon=True)
    killer.start()
    # Decided by a handful of samples, so that every step that runs PASSes.
    spec = write_spec(tmp_path / "easy.yaml", "{metric: latency_ms, stat: p50, max: 5s}")
    try:
        result = run_locust(
            "kserve",
            *("--host", first.url, *KSERVE, "--sla", str(spec), *TOLERANT_STEPS),
            # Up to 10 req/s: step 2 errors (the restart), is run again and passes.
            *("--capacity-search", "--search-start", "5", "--search-max", "10"),
            *("--run-dir", str(sweep)),
            timeout_s=240,
        )
        killer.join(30)
    finally:
        for server in servers:
            server.stop()
    assert restarted.is_set()
    assert result.code == 0, result.output[-3000:]
    cap = load_capacity(sweep)
    assert cap.outcome == "sla_holds_at_max"
    statuses = [(s.load, s.status) for s in cap.steps]
    assert statuses == [(5, "PASS"), (10, "ERROR"), (10, "PASS")]
    errored = cap.steps[1]
    assert "not listening" in errored.error or "exited" in errored.error
    assert "running it again" in result.output


def test_ctrl_c_keeps_what_the_search_established(
    start_locust: StartLocust, reference_server: ServerProcess, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path / "easy.yaml", "{metric: latency_ms, stat: p50, max: 5s}")
    sweep = tmp_path / "sweep"
    search = start_locust(
        "kserve",
        *("--host", reference_server.url, *KSERVE, "--sla", str(spec), *TOLERANT_STEPS),
        *("--capacity-search", "--search-start", "5", "--run-dir", str(sweep)),
    )
    # Step 2 has opened its run directory (run.json is written at its test start) and sends:
    # on a busy machine its Locust may take seconds to get there after its log appears.
    step_2 = sweep / "step-02-rate-10"
    assert wait_until(lambda: (step_2 / "run.json").exists(), timeout_s=90), "step 2 never began"
    time.sleep(1.0)
    search.send_signal(signal.SIGINT, group=True)  # Ctrl-C reaches the step's locust too
    result = search.wait(60)
    assert result.code == 130, result.output[-3000:]
    cap = load_capacity(sweep)
    assert cap.outcome == "interrupted"
    assert [s.load for s in cap.steps] == [5]
    assert (cap.capacity.load, cap.capacity.step) == (5.0, 1)
    # The interrupted step's own run directory was closed with what it recorded.
    assert load_run(sweep / "step-02-rate-10").meta["status"] == "complete"
    assert "Traceback" not in result.output


def test_search_with_processes_spreads_every_step_and_leaves_no_worker_behind(
    start_locust: StartLocust, start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server("--fault-capacity-rps", "40")
    spec = write_spec(tmp_path / "easy.yaml", "{metric: latency_ms, stat: p50, max: 5s}")
    sweep = tmp_path / "sweep"
    search = start_locust(
        "kserve",
        *("--host", server.url, *KSERVE, "--sla", str(spec), *TOLERANT_STEPS, "--processes", "2"),
        *("--capacity-search", "--search-start", "10", "--search-max", "20"),
        *("--run-dir", str(sweep)),
    )
    result = search.wait(180)
    assert result.code == 0, result.output[-3000:]
    cap = load_capacity(sweep)
    assert cap.outcome == "sla_holds_at_max"
    for step in cap.steps:
        run = load_run(sweep / step.runs[0])
        workers = [p["worker"] for p in run.meta["generator"]["processes"]]
        assert sorted(workers) == ["worker-0", "worker-1"]
        assert len(run.requests) > 0

    def group_gone() -> bool:
        try:
            os.killpg(search.pid, 0)
        except ProcessLookupError:
            return True
        return False

    # The searching process's own (idle) workers were told to quit.
    assert wait_until(group_gone, timeout_s=30)


def test_a_bad_search_option_is_one_line_and_exit_2(run_locust: RunLocust, tmp_path: Path) -> None:
    """Through Locust, with one of Locust's own options (--master) in the mix: each bad
    option's message is checked on the real parser in test_capacity_options.py."""
    spec = write_spec(tmp_path / "s.yaml", "{metric: latency_ms, stat: p50, max: 5s}")
    argv = ("--capacity-search", "--sla", str(spec), "--master")
    result = run_locust("kserve", "--host", "http://127.0.0.1:9", *KSERVE, *argv)
    assert result.code == 2, result.output[-2000:]
    errors = [line for line in result.output.splitlines() if "error:" in line]
    assert len(errors) == 1 and "--processes N" in errors[0], result.output[-2000:]
    assert "Traceback" not in result.output


def test_a_second_search_into_the_same_run_dir_judges_its_own_steps(
    run_locust: RunLocust, reference_server: ServerProcess, tmp_path: Path
) -> None:
    """A sweep left by an earlier search (its step directories named as this one's will be)
    is neither judged nor overwritten: the new search writes to ``<run-dir>-2``, says so,
    and each of its steps is the run its own locust wrote."""
    sweep = tmp_path / "sweep"
    stale = sweep / "step-01-rate-5"
    write_stale_run(stale)
    started = time.time()
    spec = write_spec(tmp_path / "easy.yaml", "{metric: latency_ms, stat: p50, max: 5s}")
    result = run_locust(
        "kserve",
        *("--host", reference_server.url, *KSERVE, "--sla", str(spec), *TOLERANT_STEPS),
        *("--capacity-search", "--search-start", "5", "--search-budget", "8s"),
        *("--run-dir", str(sweep)),
        timeout_s=120,
    )
    new = tmp_path / "sweep-2"
    assert str(new) in result.output, result.output[-3000:]
    cap = load_capacity(new)
    assert cap.steps and cap.steps[0].runs[0] == "step-01-rate-5"
    for step in cap.steps:
        for name in step.runs:
            assert load_run(new / name).meta["started_at"] > started
    assert load_run(stale).meta["started_at"] < started  # the old sweep is left alone


def write_stale_run(path: Path) -> None:
    """A complete run from an hour ago."""
    t0 = time.time() - 3600
    recorder = RequestRecorder(path)
    start_run_json(path, {"scenario": "kserve", "started_at": t0, "measured_from": t0})
    recorder.close()
    finish_run_json(path, {"ended_at": t0 + 5, "status": "complete"})


def test_a_killed_search_leaves_no_step_or_server_running(
    start_locust: StartLocust, tmp_path: Path
) -> None:
    """SIGKILL (no handler runs) of the searching process: its step's locust and the
    bundled server it started die with it, not at the end of the step."""
    spec = write_spec(tmp_path / "easy.yaml", "{metric: latency_ms, stat: p50, max: 5s}")
    sweep = tmp_path / "sweep"
    search = start_locust(
        "kserve",
        *(*KSERVE, "--server-args", SMALL_SERVER_ARGS, "--sla", str(spec)),
        *("--capacity-search", "--search-start", "5", "--step-time", "60s"),
        *("--step-warmup", "1s", "--run-dir", str(sweep)),
    )
    assert wait_until(lambda: (sweep / "step-01-rate-5.log").exists(), timeout_s=90)
    time.sleep(2.0)  # the step's locust is running
    children = psutil.Process(search.pid).children(recursive=True)
    assert len(children) >= 2, children  # the server and the step's locust (at least)
    search.send_signal(signal.SIGKILL)
    search.proc.wait(10)
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, [(p.pid, p.cmdline()) for p in alive]
