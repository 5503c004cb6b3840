"""Locust's distributed mode (``--processes 2``: a master and two workers): every worker's
records reach the master's run directory, so the count on disk equals the requests made."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import pytest

from sla.files.run import CANCELLED_ERROR, load_run
from sla.files.verdict import load_verdict
from sla.objectives import Status
from sla.verdict import EXIT_INCONCLUSIVE
from tests.loadtests.conftest import (
    SCENARIOS,
    SMALL_LOAD,
    SMALL_SERVER_ARGS,
    RunLocust,
    StartLocust,
    assert_server_saw_the_rows,
    clean_env,
    free_port,
    idle_server_requests,
    server_requests,
    settled_server_requests,
)
from tests.loadtests.small_target import MODEL, SmallTarget
from tests.server_process import ServerProcess, wait_until

pytestmark = pytest.mark.e2e

StartServer = Callable[..., ServerProcess]
CHAT_ROUTE = "/v1/chat/completions"
REPO = Path(__file__).resolve().parents[2]
WORKERS = {"worker-0", "worker-1"}


@pytest.mark.parametrize("stop", ["cut-off", "stop-timeout"])
def test_two_processes_record_every_request_the_server_saw(
    run_locust: RunLocust, reference_server: ServerProcess, stop: str
) -> None:
    server = reference_server  # shared: counts are taken from an idle baseline
    before = idle_server_requests(server.url, CHAT_ROUTE)
    extra = ("--stop-timeout", "5") if stop == "stop-timeout" else ()
    result = run_locust(
        "chat",
        *("--host", server.url, "--processes", "2", "-u", "4", "-r", "4", "-t", "3s"),
        *extra,
        *SMALL_LOAD,
    )

    assert result.code == 0, result.output
    run = load_run(result.run_dir)
    df = run.requests
    assert not run.from_parts
    assert run.meta["requests"] == len(df)
    assert df["request_id"].is_unique
    assert set(df["endpoint"]) == {"chat"}
    per_worker = df["worker"].value_counts()
    assert set(per_worker.index) == WORKERS
    assert per_worker.min() >= 10
    generator = run.meta["generator"]
    assert "missing_workers" not in generator
    shipped = {p["worker"]: p["records"] for p in generator["processes"]}
    assert shipped == per_worker.to_dict()
    assert all(p["cpu"]["samples"] >= 1 for p in generator["processes"])
    assert all(p["poll_interval_ms"] == 2.0 for p in generator["processes"])  # each worker's
    assert generator["master_cpu"]["samples"] >= 1
    # Each worker measured its own loop over the window; the master merged them.
    lags = [p["loop_lag"] for p in generator["processes"]]
    assert all(lag["samples"] >= 50 and lag["bound_ms"] > 0 for lag in lags), lags
    merged = generator["loop_lag"]
    assert merged["processes"] == 2 and merged["samples"] == sum(lag["samples"] for lag in lags)
    assert merged["max_ms"] == max(lag["max_ms"] for lag in lags)
    assert generator["disturbed"] is any(lag["disturbed"] for lag in lags)
    assert all(p["machine_cpu"]["cores"] >= 1 for p in generator["processes"])
    done = df[df["error"] != CANCELLED_ERROR]
    assert done["error"].isna().all(), done["error"].value_counts()
    assert (done["output_tokens"] == 8).all()
    if stop == "stop-timeout":
        assert len(done) == len(df)
        seen = settled_server_requests(server.url, CHAT_ROUTE, before + len(df)) - before
        assert seen == len(df)
    else:
        assert_server_saw_the_rows(server.url, CHAT_ROUTE, df, before)


def test_two_processes_split_an_open_loop_schedule(
    run_locust: RunLocust, reference_server: ServerProcess
) -> None:
    rate_rps = 20.0
    result = run_locust(
        "chat",
        *("--host", reference_server.url, "--processes", "2", "-u", "2", "-r", "2", "-t", "3s"),
        *("--arrival-rate", str(rate_rps), "--arrival", "constant", *SMALL_LOAD),
    )

    assert result.code == 0, result.output
    run = load_run(result.run_dir)
    df = run.requests
    assert run.meta["load_profile"]["mode"] == "open"
    assert set(df["worker"]) == WORKERS
    assert df["scheduled_at"].notna().all()
    # Each worker sends every other slot of one schedule: merged, the sends are evenly
    # spaced at 1/rate, with no slot missing or sent twice (up to where a worker stopped).
    last_common = df.groupby("worker")["scheduled_at"].max().min()
    merged = np.sort(df.loc[df["scheduled_at"] <= last_common, "scheduled_at"].to_numpy())
    assert len(merged) >= 30
    np.testing.assert_allclose(np.diff(merged), 1.0 / rate_rps, atol=1e-6)
    for _, rows in df.groupby("worker"):
        gaps = np.diff(np.sort(rows["scheduled_at"].to_numpy()))
        np.testing.assert_allclose(gaps, 2.0 / rate_rps, atol=1e-6)
    assert run.meta["dropped"] == 0


def test_workers_of_an_embedded_server_use_its_models(run_locust: RunLocust) -> None:
    # Only the master starts the bundled server; the workers learn from it that the target
    # is that server, so each user class gets its model and exact output lengths.
    result = run_locust(
        "mixed",
        *("--processes", "2", "-u", "6", "-r", "6", "-t", "3s", "--kserve-shape", "1,16"),
        *("--chars-per-token", "1", "--input-len", "fixed:16", "--output-len", "fixed:8"),
        *("--server-args", SMALL_SERVER_ARGS),
    )

    assert result.code == 0, result.output
    assert "Traceback" not in result.output
    df = load_run(result.run_dir).requests
    done = df[df["error"] != CANCELLED_ERROR]
    assert done["error"].isna().all(), done["error"].value_counts()
    assert set(done["endpoint"]) == {"chat", "embeddings", "kserve"}
    assert set(done["worker"]) == WORKERS
    chat = done[done["endpoint"] == "chat"]
    assert (chat["output_tokens"] == 8).all()  # ignore_eos is on for the bundled server


@pytest.mark.parametrize("group", [False, True], ids=["master", "ctrl-c-to-all"])
def test_interrupted_distributed_run_keeps_every_record(
    start_locust: StartLocust, reference_server: ServerProcess, group: bool
) -> None:
    server = reference_server
    before = idle_server_requests(server.url, CHAT_ROUTE)
    locust = start_locust(
        "chat",
        *("--host", server.url, "--processes", "2", "-u", "4", "-r", "4", "-t", "60s"),
        *SMALL_LOAD,
    )
    assert wait_until(
        lambda: server_requests(server.url, CHAT_ROUTE) - before >= 50, timeout_s=30
    ), locust.output()
    # Ctrl-C in a terminal reaches the workers as well: they must hand over their records
    # before they quit, or the master stops listening to them.
    locust.send_signal(signal.SIGINT, group=group)
    result = locust.wait(timeout_s=20)

    assert result.code == 0, result.output
    run = load_run(result.run_dir)
    df = run.requests
    assert run.meta["status"] == "complete"
    assert run.meta["requests"] == len(df)
    assert "missing_workers" not in run.meta["generator"]
    assert set(df["worker"]) == WORKERS
    assert run.meta["ended_at"] - run.meta["started_at"] < 20
    assert_server_saw_the_rows(server.url, CHAT_ROUTE, df, before)


def test_a_worker_killed_mid_run_makes_the_run_incomplete_never_a_pass(
    start_locust: StartLocust, reference_server: ServerProcess
) -> None:
    server = reference_server
    before = idle_server_requests(server.url, CHAT_ROUTE)
    locust = start_locust(
        "chat",
        *("--host", server.url, "--processes", "2", "-u", "4", "-r", "4", "-t", "6s"),
        *("--sla", str(REPO / "sla/examples/smoke.yaml"), "--sla-allow-inconclusive"),
        *SMALL_LOAD,
    )
    assert wait_until(
        lambda: server_requests(server.url, CHAT_ROUTE) - before >= 30, timeout_s=30
    ), locust.output()
    workers = psutil.Process(locust.pid).children()
    assert len(workers) == 2, workers
    workers[0].send_signal(signal.SIGKILL)
    result = locust.wait(timeout_s=90)

    assert result.code == EXIT_INCONCLUSIVE, result.output
    assert "INCOMPLETE RUN, never a PASS: workers never handed over their records" in (
        result.output
    )
    run = load_run(result.run_dir)
    assert run.meta["generator"]["missing_workers"]
    verdict = load_verdict(result.run_dir)
    assert verdict is not None and verdict.status is not Status.PASS
    assert verdict.incomplete == run.incomplete


def test_the_master_of_processes_listens_on_loopback_only(tmp_path: Path) -> None:
    """--processes without --master-bind-host: the workers are local, so is the master's port
    (start_locust would pass --master-bind-host itself, so this starts its own locust)."""
    port = free_port()
    with SmallTarget() as target, (tmp_path / "locust.log").open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(SCENARIOS / "chat.py"), "--headless",
             "--processes", "2", "--master-bind-port", str(port), "--master-port", str(port),
             "--host", target.url, "--model", MODEL, "--no-stream", "--scrape-interval", "0",
             "--run-dir", str(tmp_path / "run"), "-u", "2", "-r", "2", "-t", "4s", *SMALL_LOAD],
            cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=clean_env(None), start_new_session=True,
        )  # fmt: skip
        try:
            seen: set[str] = set()

            def listening() -> bool:
                seen.update(
                    c.laddr.ip
                    for c in psutil.Process(proc.pid).net_connections("inet")
                    if c.status == psutil.CONN_LISTEN and c.laddr.port == port
                )
                return bool(seen) or proc.poll() is not None

            wait_until(listening, timeout_s=60)
            code = proc.wait(60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
    output = (tmp_path / "locust.log").read_text(errors="replace")
    assert seen == {"127.0.0.1"}, output
    assert code == 0, output
    assert set(load_run(tmp_path / "run").requests["worker"]) == WORKERS
