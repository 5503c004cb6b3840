"""Every scenario, run by real Locust against the real reference server: the run directory
holds one row per request the server saw, with the right endpoint label, and a run.json
that says what was run (and never the API key)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loadtests.harness.options import add_options
from sla.files.run import CANCELLED_ERROR, SCHEMA_VERSION, load_run
from sla.reading import read_run
from tests.loadtests.conftest import (
    SCENARIOS,
    SMALL_LOAD,
    SMALL_SERVER_ARGS,
    RunLocust,
    assert_server_saw_the_rows,
    clean_env,
    idle_server_requests,
    server_requests,
    settled_server_requests,
)
from tests.server_process import ServerProcess, wait_until

pytestmark = pytest.mark.e2e

CHAT_ROUTE = "/v1/chat/completions"


def not_cancelled(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["error"] != CANCELLED_ERROR]


@pytest.mark.parametrize("stop", ["cut-off", "stop-timeout"])
def test_local_run_records_every_request_the_server_saw(
    run_locust: RunLocust, reference_server: ServerProcess, stop: str
) -> None:
    server = reference_server  # shared: counts are taken from an idle baseline
    before = idle_server_requests(server.url, CHAT_ROUTE)
    models_before = server_requests(server.url, "/v1/models")
    # With --stop-timeout Locust lets each user finish its request: nothing is cancelled.
    extra = ("--stop-timeout", "5") if stop == "stop-timeout" else ()
    result = run_locust(
        "chat", "--host", server.url, "-u", "4", "-r", "4", "-t", "2s", *extra, *SMALL_LOAD
    )

    assert result.code == 0, result.output
    run = load_run(result.run_dir)
    df = run.requests
    assert not run.from_parts
    assert len(df) > 20
    assert run.meta["requests"] == len(df)
    assert set(df["endpoint"]) == {"chat"}
    assert set(df["worker"]) == {"local"}
    assert df["request_id"].is_unique
    finished = not_cancelled(df)
    assert finished["error"].isna().all(), finished["error"].value_counts()
    assert (finished["output_tokens"] == 8).all()
    assert (finished["first_token_at"] > finished["sent_at"]).all()
    # The reference server tells each stream's own timings, and they fit inside what the
    # client saw: queue + prefill + decode <= the server's total <= the client's latency.
    assert (finished["server_timing_source"] == "timings").all()
    parts = finished[["server_queue_ms", "server_prefill_ms", "server_decode_ms"]].sum(axis=1)
    total = finished["server_total_ms"]
    assert (parts <= total + 1e-6).all() and (total > 0).all()
    client_ms = (finished["done_at"] - finished["sent_at"]) * 1000.0
    assert (total <= client_ms).all(), (client_ms - total).min()
    if stop == "stop-timeout":
        assert len(finished) == len(df)
        seen = settled_server_requests(server.url, CHAT_ROUTE, before + len(df)) - before
        assert seen == len(df)
    else:
        assert_server_saw_the_rows(server.url, CHAT_ROUTE, df, before)
    # One warm-up GET per user opened each connection before the timed window.
    assert server_requests(server.url, "/v1/models") - models_before >= 4


def test_run_json_describes_the_run_and_never_holds_secrets(
    run_locust: RunLocust, reference_server: ServerProcess
) -> None:
    host = f"{reference_server.url}/?api_key=QUERYSECRET77&mode=x"
    result = run_locust(
        "chat",
        *("--host", host, "--api-key", "SECRETKEY123", "-u", "2", "-r", "2", "-t", "3s"),
        # With --model nothing touches the network before the test starts (see -t below).
        *("--model", "slabench-lm", "--warmup", "1s", "--scrape-interval", "1", *SMALL_LOAD),
    )

    assert result.code == 0, result.output
    run = load_run(result.run_dir)
    meta = run.meta
    assert meta["schema_version"] == SCHEMA_VERSION
    assert meta["status"] == "complete"
    assert meta["scenario"] == "chat"
    assert meta["target_url"] == f"{reference_server.url}/?api_key=REDACTED&mode=x"
    assert meta["embedded_server"] is False
    profile = meta["load_profile"]
    assert profile["mode"] == "closed"
    assert (profile["users"], profile["spawn_rate"], profile["run_time_s"]) == (2, 2.0, 3)
    assert profile["warmup_s"] == 1.0
    assert profile["output_len"] == "fixed:8"
    assert meta["measured_from"] == pytest.approx(meta["started_at"] + 1.0, abs=1e-6)
    # -t 3s: the run lasts three seconds (Locust's clock must not fire the stop early; a
    # busy machine stamps the start a few tenths late).
    assert 2.5 <= meta["ended_at"] - meta["started_at"] <= 4.5
    assert {"python", "locust", "gevent", "slabench"} <= meta["versions"].keys()
    generator = meta["generator"]
    assert isinstance(generator["saturated"], bool)
    [process] = generator["processes"]
    assert process["cpu"]["samples"] >= 2
    assert process["poll_interval_ms"] == 2.0  # a plain http target: --poll-interval-ms
    assert 0.0 < process["cpu"]["mean_percent"] <= 100.0 * (os.cpu_count() or 1)
    assert meta["requests"] == len(run.requests)
    assert "SECRETKEY123" not in meta["command"]

    # Warm-up: rows that started before measured_from are recorded but not measured.
    df = run.requests
    kept = read_run(run).measured
    assert 0 < len(kept) < len(df)
    assert (kept["start"] >= meta["measured_from"]).all()

    metrics = run.server_metrics
    assert metrics is not None
    assert meta["server_metrics"]["scrapes"] >= 2
    assert {"slabench_requests_total", "slabench_batch_size_count"} <= set(metrics["name"])
    assert metrics["scraped_at"].between(meta["started_at"], meta["ended_at"] + 2).all()

    for file in [p for p in result.run_dir.rglob("*") if p.is_file()]:
        data = file.read_bytes()
        assert b"SECRETKEY123" not in data, file
        assert b"QUERYSECRET77" not in data, file
    assert "SECRETKEY123" not in result.output


def _payload(tmp_path: Path) -> str:
    template = {
        "model": "slabench-lm",
        "prompt": "{{prompt}}",
        "max_tokens": "{{max_tokens}}",
        "ignore_eos": True,
    }
    path = tmp_path / "payload.json"
    path.write_text(json.dumps(template))
    return str(path)


@pytest.mark.parametrize(
    ("scenario", "args", "endpoint", "route"),
    [
        ("chat", (), "chat", CHAT_ROUTE),
        ("completions", (), "completions", "/v1/completions"),
        ("completions", ("--no-stream",), "completions", "/v1/completions"),
        ("embeddings", ("--model", "slabench-embed"), "embeddings", "/v1/embeddings"),
        (
            "kserve",
            ("--model", "slabench-mlp", "--kserve-shape", "1,16"),
            "kserve",
            "/v2/models/{name}/infer",
        ),
        ("http_json", ("--path", "/v1/completions"), "/v1/completions", "/v1/completions"),
    ],
    ids=["chat", "completions", "completions-no-stream", "embeddings", "kserve", "http_json"],
)
def test_scenario_records_its_endpoint(
    run_locust: RunLocust,
    reference_server: ServerProcess,
    tmp_path: Path,
    scenario: str,
    args: tuple[str, ...],
    endpoint: str,
    route: str,
) -> None:
    if scenario == "http_json":
        args = (*args, "--payload", _payload(tmp_path))
    before = idle_server_requests(reference_server.url, route)
    result = run_locust(
        scenario, "--host", reference_server.url, "-u", "2", "-r", "2", "-t", "2s", *args,
        *SMALL_LOAD,
    )  # fmt: skip

    assert result.code == 0, result.output
    df = load_run(result.run_dir).requests
    assert len(df) >= 5
    assert set(df["endpoint"]) == {endpoint}
    assert_server_saw_the_rows(reference_server.url, route, df, before)
    done = not_cancelled(df)
    assert done["error"].isna().all(), done["error"].value_counts()
    assert (done["status"] == 200).all()
    streamed = scenario in ("chat", "completions") and "--no-stream" not in args
    assert done["first_token_at"].notna().all() == streamed
    assert done["first_token_at"].isna().all() != streamed
    if scenario in ("chat", "completions"):
        # Exact token counts from the server's usage, streamed or not.
        assert (done["output_tokens"] == 8).all()
        assert (done["output_tokens_source"] == "usage").all()
        assert (done["chunk_count"] >= 8).all() if streamed else (done["chunk_count"] == 0).all()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_mixed_scenario_on_the_embedded_server(run_locust: RunLocust) -> None:
    result = run_locust(
        "mixed",
        *("-u", "10", "-r", "10", "-t", "3s", "--kserve-shape", "1,16", *SMALL_LOAD),
        *("--server-args", SMALL_SERVER_ARGS),
    )

    assert result.code == 0, result.output
    run = load_run(result.run_dir)
    assert run.meta["embedded_server"] is True
    done = not_cancelled(run.requests)
    assert done["error"].isna().all(), done["error"].value_counts()
    counts = done["endpoint"].value_counts()
    assert set(counts.index) == {"chat", "embeddings", "kserve"}
    assert counts.min() >= 3
    # The embedded server is stopped when Locust exits.
    match = re.search(r"reference server ready at \S+ \(pid (\d+)\)", result.output)
    assert match is not None, result.output
    assert wait_until(lambda: not _pid_alive(int(match.group(1))), timeout_s=10)


# Alone: with other test workers on the two cores, the two users of the second step were
# seen to run in lockstep (each sending right after the other's answer, a ~14 ms wait in
# the user loop between a request and the next, overlap 0.34-0.50 of the sends) in a third
# to half of the runs of this file beside two others (on the code before this test's
# bounds changed too); with one more yield per request, 6 runs of 6 passed.
# Not explained yet (see the closing note of 2026-12-07): the test keeps the CPU to itself.
@pytest.mark.alone
def test_steps_shape_runs_its_stages_and_stops_by_itself(
    run_locust: RunLocust, reference_server: ServerProcess
) -> None:
    result = run_locust(
        "chat", "--host", reference_server.url, "--shape", "steps:users=1,2,step=2s", *SMALL_LOAD
    )

    assert result.code == 0, result.output
    run = load_run(result.run_dir)
    assert run.meta["load_profile"]["shape"] == "steps:users=1,2,step=2s"
    assert run.meta["load_profile"]["stages"] == [[0.0, 2.0, 1], [2.0, 4.0, 2]]
    t0, t1 = run.meta["started_at"], run.meta["ended_at"]
    assert 3.5 <= t1 - t0 <= 6.0
    df = not_cancelled(run.requests).sort_values("sent_at")
    sent, done = df["sent_at"].to_numpy(), df["done_at"].to_numpy()
    # One user, one request at a time, during the first step; two overlap in the second.
    # The steps count from the run's started_at; Locust looks at the shape once a second,
    # so the second step begins at the first look at or after 2 s: between 2 and 3 s.
    overlaps = sent[1:] < np.maximum.accumulate(done)[:-1]
    first = sent[1:] < t0 + 2.0
    second = sent[1:] > t0 + 3.0
    assert first.sum() >= 5 and second.sum() >= 5
    assert not overlaps[first].any()
    assert overlaps[second].mean() > 0.5


class _FlagRecorder:
    """Stands in for Locust's parser to list the options slabench adds."""

    def __init__(self) -> None:
        self.options: list[tuple[str, str]] = []

    def add_argument_group(self, *_: object) -> _FlagRecorder:
        return self

    def add_argument(self, flag: str, *, env_var: str, **_: object) -> None:
        self.options.append((flag, env_var))


def _help_text(command: list[str], cwd: Path) -> str:
    done = subprocess.run(
        [*command, "-f", str(SCENARIOS / "chat.py"), "--help"],
        cwd=cwd,
        env=clean_env(None),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return " ".join(done.stdout.split())  # help lines wrap anywhere


def _assert_lists_every_option(text: str) -> None:
    recorder = _FlagRecorder()
    add_options(recorder)
    assert len(recorder.options) >= 20
    section = text.find("slabench: Exact per-request recording")
    assert section >= 0, "no slabench section in --help"
    for flag, env_var in recorder.options:
        assert env_var.startswith("SLABENCH_")
        where = text.find(f" {flag} ", section)
        assert where > 0, f"{flag} is not in the slabench section of --help"
        env = re.compile(r"\[env (\S+?)\]").search(text, where)
        assert env is not None and env.group(1) == env_var, (flag, env_var)


def test_help_lists_every_option_with_its_environment_variable(tmp_path: Path) -> None:
    # `locust` is the console script users run (Locust prints --help before it imports the
    # locustfile; loadtests.harness.help adds slabench's options there).
    _assert_lists_every_option(
        _help_text([str(Path(sys.executable).with_name("locust"))], tmp_path)
    )


def test_help_via_python_dash_m_lists_every_option(tmp_path: Path) -> None:
    _assert_lists_every_option(_help_text([sys.executable, "-m", "locust"], tmp_path))
