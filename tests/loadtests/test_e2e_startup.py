"""A locust's start-up, end to end: what it does before the load (the model lookup, the
round-trip calibration, the connection warm-up) takes none of ``-t``, ends within the run's
timeouts against a target that never answers, and a stop signal during it ends the process
at once, in one line, with 128 + the signal.

The targets (``tests.loadtests.startup_targets``) are a server whose ``GET /v1/models``
takes 0.3 s, so that the calibration's 11 GETs take ~3.3 s, and a black hole that takes every
connection and answers nothing.
"""

from __future__ import annotations

import signal
import time

import pytest

from sla.files.run import CANCELLED_ERRORS, load_run
from tests.loadtests.conftest import StartLocust
from tests.loadtests.startup_targets import MODEL, BlackHole, SlowModels
from tests.server_process import wait_until

pytestmark = pytest.mark.e2e

QUIET = ("--no-report", "--live-interval", "0", "--scrape-interval", "0")
CHAT_ROUTE = "/v1/chat/completions"
GET_DELAY_S = 0.15
CALIBRATION_GETS = 11  # 10 timed round trips after one that opens the connection
STOPPED_BEFORE_THE_TEST = (
    "before the test started: stopped; nothing was sent and no run directory was written"
)


@pytest.mark.parametrize("run_time_s", [1, 3], ids=["t-shorter-than-start-up", "t-longer"])
def test_the_start_up_takes_none_of_the_run_time(
    start_locust: StartLocust, run_time_s: int
) -> None:
    """-t is the time of load: the calibration (~1.7 s here) comes before its clock, so a
    -t shorter than it still runs (it hung, then exited 0 with no run directory) and a
    longer one is not cut by it (before, -t 4s gave 0.7 s of load)."""
    with SlowModels(GET_DELAY_S) as server:
        locust = start_locust(
            "chat", "--host", server.url, "--model", MODEL, "--no-stream",
            "-u", "1", "-r", "1", "-t", f"{run_time_s}s", *QUIET,
        )  # fmt: skip
        calibration_s = CALIBRATION_GETS * GET_DELAY_S
        result = locust.wait(60, f"-t {run_time_s}s after ~{calibration_s:.1f}s of start")
        models = sorted(server.seen("GET", "/v1/models"))
        posts = server.count("POST", CHAT_ROUTE)
    assert result.code == 0, result.output
    run = load_run(result.run_dir)
    meta = run.meta
    load_s = meta["ended_at"] - meta["started_at"]
    assert abs(load_s - run_time_s) < 0.5, f"-t {run_time_s}s ran {load_s:.2f}s of load"
    calibration = meta["calibration"]
    assert calibration["error"] is None and calibration["rtt_ms"]["n"] == 10, calibration
    assert calibration["rtt_ms"]["p50"] >= GET_DELAY_S * 1000.0, calibration
    # The calibration's GETs all came before the run began; then the user's warm-up GET.
    assert len(models) == CALIBRATION_GETS + 1, models
    assert models[CALIBRATION_GETS - 1] < meta["started_at"] < models[CALIBRATION_GETS]
    assert meta["requests"] == len(run.requests) > 0 and posts > 0
    answered = run.requests[~run.requests["error"].isin(CANCELLED_ERRORS)]
    assert answered["error"].isna().all() and len(answered) > 0, answered["error"].unique()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_during_the_calibration_ends_the_process_in_one_line(
    start_locust: StartLocust, sig: signal.Signals
) -> None:
    """Ctrl-C or SIGTERM while the calibration runs: exit 128 + the signal within a few
    seconds, no run directory, no load sent (it waited 4 minutes, then exited 0)."""
    with SlowModels(GET_DELAY_S) as server:
        locust = start_locust(
            "chat", "--host", server.url, "--model", MODEL, "--no-stream", "-u", "1",
            "-t", "30s", *QUIET,
        )  # fmt: skip
        calibrating = lambda: server.count("GET", "/v1/models") >= 2  # noqa: E731
        assert wait_until(calibrating, timeout_s=60), f"no calibration GETs:\n{locust.output()}"
        signalled = time.monotonic()
        locust.send_signal(sig)
        result = locust.wait(30, f"{sig.name} during the calibration")
        exit_s = time.monotonic() - signalled
        posts = server.count("POST", CHAT_ROUTE)
    assert result.code == 128 + sig, result.output
    assert exit_s < 5.0, f"exited {exit_s:.1f}s after {sig.name}"
    said = [line for line in result.output.splitlines() if line.startswith("slabench:")]
    assert said[-1] == f"slabench: {sig.name} {STOPPED_BEFORE_THE_TEST}", result.output
    assert "Traceback" not in result.output, result.output
    assert not result.run_dir.exists() and posts == 0


@pytest.mark.parametrize(
    ("scheme", "loop"),
    [("http", ()), ("https", ("--arrival-rate", "2", "--arrival", "constant"))],
    ids=["http-closed-loop", "https-open-loop"],
)
def test_a_target_that_never_answers_ends_within_its_timeouts(
    start_locust: StartLocust, scheme: str, loop: tuple[str, ...]
) -> None:
    """A target that takes connections and never answers (over https: never completes the
    handshake): the calibration gives up at --idle-timeout with one warning line, the load
    runs its whole -t, its requests time out, and the run directory is complete (it hung)."""
    with BlackHole() as hole:
        started = time.monotonic()
        locust = start_locust(
            "chat", "--host", hole.url(scheme), "--model", MODEL, "-u", "1", "-t", "4s",
            "--idle-timeout", "1", "--request-timeout", "2", *loop, *QUIET,
        )  # fmt: skip
        result = locust.wait(60, "a 4 s run against a black hole, timeouts 1 s and 2 s")
        took_s = time.monotonic() - started
    assert result.code == 1, result.output  # Locust's code for a run with failed requests
    said = "NoAnswer: no answer to GET /v1/models within 1 s"
    warning = (
        f"slabench: WARNING: the round-trip calibration of {hole.url(scheme)} before the run "
        f"stopped: {said}; the run goes on (run.json calibration)"
    )
    assert warning in result.output.splitlines(), result.output
    run = load_run(result.run_dir)
    meta = run.meta
    assert meta["status"] == "complete" and meta["calibration"]["error"] == said
    load_s = meta["ended_at"] - meta["started_at"]
    assert abs(load_s - 4.0) < 0.5, f"-t 4s ran {load_s:.2f}s of load"
    rows = run.requests
    assert len(rows) > 0 and (rows["status"] == 0).all() and rows["error"].notna().all()
    assert (~rows["error"].isin(CANCELLED_ERRORS)).any(), rows["error"].unique()  # timeouts
    assert took_s < 30.0, f"the locust took {took_s:.1f}s in all"


def test_a_model_lookup_that_gets_no_answer_is_one_line_within_the_idle_timeout(
    start_locust: StartLocust,
) -> None:
    """Without --model the model is asked for at start-up: a black hole gets one error line
    naming the bound and the likely fix, exit 2, no load (it took a socket timeout of
    --idle-timeout + 5 s and said "timed out")."""
    with BlackHole() as hole:
        started = time.monotonic()
        locust = start_locust(
            "chat", "--host", hole.url(), "-u", "1", "-t", "30s", "--idle-timeout", "1", *QUIET
        )
        result = locust.wait(60, "the model lookup of a black hole")
        took_s = time.monotonic() - started
    errors = [line for line in result.output.splitlines() if "error" in line.lower()]
    assert result.code == 2 and errors == [
        f"slabench: error: {hole.url()}: no answer to GET /v1/models within 1 s (--idle-timeout) "
        "to ask for the model name: the target takes connections but does not answer; is "
        "--host the right server and scheme (http, https)? (or pass --model)"
    ], result.output
    assert not result.run_dir.exists()
    assert took_s < 20.0, f"the locust took {took_s:.1f}s in all"
