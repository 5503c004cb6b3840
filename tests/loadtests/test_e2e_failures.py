"""What goes wrong, end to end: an unreachable or dying target, bad input files and option
values, and Ctrl-C/SIGTERM mid-run. Mistakes a user makes fail before any load as one line
(exit 2, no traceback); a failing target is recorded request by request, with its reason,
and the run directory is complete whatever happens."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from sla.files.run import CANCELLED_ERROR, load_run
from tests.loadtests.conftest import (
    SMALL_LOAD,
    LocustRun,
    RunLocust,
    StartLocust,
    assert_server_saw_the_rows,
    free_port,
    idle_server_requests,
    server_requests,
)
from tests.server_process import ServerProcess, wait_until

pytestmark = pytest.mark.e2e

StartServer = Callable[..., ServerProcess]
CHAT_ROUTE = "/v1/chat/completions"


def assert_one_line_error(result: LocustRun, *fragments: str) -> None:
    """Exit 2 before any load, with one ``slabench: error:`` line naming the problem."""
    assert result.code == 2, result.output
    errors = [line for line in result.output.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, result.output
    assert errors[0].startswith("slabench: error: "), errors[0]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    assert "Traceback" not in result.output
    assert not result.run_dir.exists()


def assert_complete_run(run_dir: Path) -> None:
    run = load_run(run_dir)
    assert not run.from_parts
    assert not (run_dir / "requests.parts").exists()
    assert run.meta["status"] == "complete"
    assert run.meta["ended_at"] >= run.meta["started_at"]
    assert run.meta["requests"] == len(run.requests)


def test_unreachable_target_records_every_request_as_a_connection_error(
    run_locust: RunLocust,
) -> None:
    host = f"http://127.0.0.1:{free_port()}"
    result = run_locust(
        "chat", "--host", host, "--model", "slabench-lm", "-u", "2", "-r", "2", "-t", "2s",
        *SMALL_LOAD,
    )  # fmt: skip

    assert result.code == 1, result.output
    assert_complete_run(result.run_dir)
    run = load_run(result.run_dir)
    df = run.requests
    assert (df["status"] == 0).all()
    assert df["first_token_at"].isna().all()
    # Users stopped while connecting leave a cancelled row; every other one was refused.
    cut_off = df["error"] == CANCELLED_ERROR
    assert cut_off.sum() <= 2
    refused = df[~cut_off]
    assert len(refused) >= 2
    assert (refused["error"] == "connection refused: is the target up?").all()
    assert (refused["error_class"] == "refused").all()
    assert (refused["backoff_ms"] > 0).all()  # no user spins on a dead target
    line = f"error refused x{len(refused)} (no response), e.g.: connection refused: is the"
    assert line in result.output
    assert run.meta["server_metrics"]["scrapes"] == 0
    assert "Connection refused" in run.meta["server_metrics"]["problem"]
    assert "Traceback" not in result.output


def test_unreachable_target_without_model_fails_before_the_load(run_locust: RunLocust) -> None:
    port = free_port()
    result = run_locust("chat", "--host", f"http://127.0.0.1:{port}", "-t", "2s", *SMALL_LOAD)

    assert_one_line_error(result, f"cannot reach http://127.0.0.1:{port}", "--model")


def test_bad_dataset_file_fails_before_any_load(
    run_locust: RunLocust, reference_server: ServerProcess, tmp_path: Path
) -> None:
    # Each kind of bad file (a line not an object, an empty file ...) is one line of the
    # same loader: tests/loadtests/test_datasets.py.
    dataset = tmp_path / "prompts.jsonl"
    dataset.write_text('{"prompt": "fine"}\n{"prompt": broken\n')
    where = "line 2"
    before = server_requests(reference_server.url, CHAT_ROUTE)
    result = run_locust(
        "chat", "--host", reference_server.url, "--dataset", str(dataset), "-t", "2s", *SMALL_LOAD
    )

    assert_one_line_error(result, str(dataset), where)
    assert server_requests(reference_server.url, CHAT_ROUTE) == before


@pytest.mark.parametrize(
    ("scenario", "option", "fragment"),
    [
        # The chat options' messages, one by one: tests/loadtests/test_load_option_errors.py.
        ("chat", ("--shape", "steps:users=1,step=1s", "--arrival-rate", "5"), "--shape"),
        ("kserve", ("--model", "slabench-mlp", "--kserve-shape", "0,16"), "--kserve-shape"),
        ("http_json", ("--payload", "missing.json"), "missing.json"),
        ("chat", ("--warmup", "10s"), "--warmup 10s is not shorter than the load (-t: 2 s)"),
    ],
    ids=lambda v: "_".join(v) if isinstance(v, tuple) else None,
)
def test_bad_option_value_is_one_line_error(
    run_locust: RunLocust,
    reference_server: ServerProcess,
    scenario: str,
    option: tuple[str, ...],
    fragment: str,
) -> None:
    result = run_locust(scenario, "--host", reference_server.url, "-t", "2s", *option)

    assert_one_line_error(result, fragment)


def test_a_bad_host_is_one_line_error_with_a_model_given_too(run_locust: RunLocust) -> None:
    # With --model nothing looks the model up, so the host was first parsed deep in the
    # start-up's calibration, where its ValueError was a traceback and exit 1.
    result = run_locust("chat", "--host", "http://127.0.0.1:99999", "--model", "m", "-t", "2s")
    assert_one_line_error(result, "(Port out of range 0-65535)")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_run_leaves_a_complete_run_directory(
    start_locust: StartLocust, reference_server: ServerProcess, sig: signal.Signals
) -> None:
    server = reference_server  # shared: counts are taken from an idle baseline
    before = idle_server_requests(server.url, CHAT_ROUTE)
    locust = start_locust(
        "chat", "--host", server.url, "-u", "2", "-r", "2", "-t", "60s", *SMALL_LOAD
    )
    assert wait_until(
        lambda: server_requests(server.url, CHAT_ROUTE) - before >= 20, timeout_s=30
    ), locust.output()
    locust.send_signal(sig)
    result = locust.wait(timeout_s=20)

    assert result.code == 0, result.output
    assert_complete_run(result.run_dir)
    run = load_run(result.run_dir)
    df = run.requests
    assert len(df) >= 20
    assert run.meta["ended_at"] - run.meta["started_at"] < 30
    assert df["done_at"].max() <= run.meta["ended_at"] + 1.0
    assert_server_saw_the_rows(server.url, CHAT_ROUTE, df, before)
    assert "slabench run:" in result.output  # the summary was printed


def test_target_dying_mid_run_is_recorded_with_reasons(
    start_locust: StartLocust, start_server: StartServer
) -> None:
    server = start_server("--drain-timeout", "1")
    locust = start_locust(
        "chat", "--host", server.url, "-u", "2", "-r", "2", "-t", "5s", *SMALL_LOAD
    )
    assert wait_until(lambda: server_requests(server.url, CHAT_ROUTE) >= 20, timeout_s=30), (
        locust.output()
    )
    answered = server_requests(server.url, CHAT_ROUTE)
    server.terminate()
    assert server.wait(10) == 0
    result = locust.wait(timeout_s=30)

    assert result.code == 1, result.output
    assert_complete_run(result.run_dir)
    df = load_run(result.run_dir).requests
    ok = df[df["error"].isna()]
    failed = df[df["error"].notna()]
    # Nothing answered before the server went away is lost.
    assert len(ok) >= answered
    assert failed["error"].str.len().min() > 0
    reasons = set(failed["error"])
    assert "connection refused: is the target up?" in reasons, reasons
    refused = failed[failed["error"].str.startswith("connection refused")]
    assert refused["sent_at"].min() > ok["sent_at"].min()
    assert (refused["status"] == 0).all()
    assert (refused["error_class"] == "refused").all()
    assert "error refused x" in result.output and "connection refused" in result.output
