"""run.json's ``calibration``: the connect time and the round trip of a cheap GET to the
target before any load; a target that is down says so in one line, and costs no run."""

from __future__ import annotations

from loadtests.client.calibration import calibrate
from loadtests.client.tls import Tls
from loadtests.client.transport import Target, Transport
from tests.loadtests.conftest import free_port
from tests.loadtests.small_target import SmallTarget


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
