"""run.json's ``calibration``: the connect time and the round trip of a cheap GET to the
target before any load; a target that is down says so in one line, and costs no run; one
that never answers costs one answer bound, a slow one no more than the budget."""

from __future__ import annotations

import time

from loadtests.client.calibration import calibrate
from loadtests.client.tls import Tls
from loadtests.client.transport import Target, Transport
from tests.loadtests.conftest import free_port
from tests.loadtests.small_target import SmallTarget
from tests.loadtests.startup_targets import BlackHole, SlowModels


def _transport(url: str) -> Transport:
    return Transport(
        Target.parse(url),
        concurrency=1,
        connect_timeout_s=5.0,
        network_timeout_s=10.0,
        headers={},
        tls=Tls(verify=True, ca_bundle=""),
    )


def test_calibration_measures_connects_and_round_trips() -> None:
    with SmallTarget() as server:
        out = calibrate(lambda: _transport(server.url), "/v1/models", rounds=5)
    assert (out["error"], out["status"], out["path"]) == (None, 200, "/v1/models")
    for figure in ("connect_ms", "rtt_ms"):
        assert out[figure]["n"] == 5
        assert 0 < out[figure]["p50"] <= out[figure]["p90"] < 1000.0  # loopback


def test_a_target_that_is_down_is_one_line_not_a_failure() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    out = calibrate(lambda: _transport(url), "/v1/models", rounds=5)
    assert out["error"].startswith("ConnectionRefusedError") and "\n" not in out["error"]
    assert out["connect_ms"] is None and out["rtt_ms"] is None and out["status"] is None


def test_a_target_that_never_answers_costs_one_answer_bound() -> None:
    """A black hole takes every connect and answers nothing: the first GET ends the
    calibration at its answer bound (the run's --idle-timeout), not at a socket timeout."""
    with BlackHole() as hole:
        started = time.monotonic()
        out = calibrate(
            lambda: _transport(hole.url()), "/v1/models", rounds=5, answer_timeout_s=0.5
        )
        took_s = time.monotonic() - started
    assert out["error"] == "NoAnswer: no answer to GET /v1/models within 0.5 s"
    assert out["connect_ms"]["n"] == 5 and out["rtt_ms"] is None and out["status"] is None
    assert took_s < 3.0, f"the calibration of a black hole took {took_s:.1f}s"


def test_a_slow_path_is_cut_at_the_budget_keeping_what_was_measured() -> None:
    """GETs of 0.2 s each: 11 would take 2.2 s; the 1 s budget keeps the round trips made."""
    with SlowModels(delay_s=0.2) as server:
        started = time.monotonic()
        out = calibrate(lambda: _transport(server.url), "/v1/models", budget_s=1.0)
        took_s = time.monotonic() - started
    assert out["error"].startswith("stopped at its 1 s budget during GET /v1/models: 10 connects")
    assert out["connect_ms"]["n"] == 10
    assert 1 <= out["rtt_ms"]["n"] <= 4 and out["rtt_ms"]["p50"] >= 200.0
    assert took_s < 2.0, f"a 1 s budget took {took_s:.1f}s"
