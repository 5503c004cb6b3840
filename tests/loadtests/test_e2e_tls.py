"""An https target: its certificate is checked (CA and host name) unless --insecure; a CA of
one's own is trusted through --ca-bundle; a rejected certificate is one readable reason per
request, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from sla.files.run import CANCELLED_ERROR, load_run
from tests.loadtests.conftest import SMALL_LOAD, LocustRun, RunLocust
from tests.loadtests.small_target import MODEL, Certificates, SmallTarget, make_certificates

pytestmark = pytest.mark.e2e

LOAD = ("--model", MODEL, "--no-stream", "--scrape-interval", "0", "-u", "2", "-r", "2", "-t", "2s")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def _errors(result: LocustRun) -> list[str]:
    df = load_run(result.run_dir).requests
    return [e for e in df["error"].dropna() if e != CANCELLED_ERROR]


def test_a_certificate_for_another_host_is_refused(
    run_locust: RunLocust, certs: Certificates
) -> None:
    # The CA is trusted (SSL_CERT_FILE: the system store), the name is not 127.0.0.1.
    with SmallTarget(certs.cert_for("other.example")) as server:
        result = run_locust(
            "chat", "--host", server.url, *LOAD, *SMALL_LOAD, env={"SSL_CERT_FILE": str(certs.ca)}
        )
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    errors = _errors(result)
    assert errors, result.output
    assert set(errors) == {
        "TLS certificate rejected: IP address mismatch, certificate is not valid for "
        "'127.0.0.1'. (trust its CA with --ca-bundle; --insecure skips the check)"
    }, set(errors)
    assert server.authorizations == []  # the key never went out


def test_an_unknown_ca_is_refused_and_ca_bundle_trusts_it(
    run_locust: RunLocust, certs: Certificates, tmp_path: Path
) -> None:
    with SmallTarget(certs.cert_for("127.0.0.1")) as server:
        refused = run_locust("chat", "--host", server.url, *LOAD, *SMALL_LOAD)
        accepted = run_locust(
            "chat", "--host", server.url, "--ca-bundle", str(certs.ca), "--api-key", "k-123",
            *LOAD, *SMALL_LOAD,
        )  # fmt: skip
    assert refused.code == 1, refused.output
    assert {e.split(" (")[0] for e in _errors(refused)} == {
        "TLS certificate rejected: unable to get local issuer certificate"
    }
    assert accepted.code == 0, accepted.output
    df = load_run(accepted.run_dir).requests
    answered = df[df["error"].isna()]
    assert len(answered) >= 2 and _errors(accepted) == []
    assert (answered["status"] == 200).all()
    assert set(server.authorizations) == {"Bearer k-123"}


def test_insecure_skips_the_check_and_says_so(run_locust: RunLocust, certs: Certificates) -> None:
    with SmallTarget(certs.cert_for("other.example")) as server:
        result = run_locust("chat", "--host", server.url, "--insecure", *LOAD, *SMALL_LOAD)
    assert result.code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "--insecure" in line]
    assert warnings == [
        "slabench: WARNING: --insecure: the target's TLS certificate and host name are not "
        "checked; the API key goes to whoever answers"
    ]
    run = load_run(result.run_dir)
    assert _errors(result) == [] and len(run.requests) >= 2
    # TLS reads are stamped when they return: the loop polls at once (--poll-interval-ms).
    assert [p["poll_interval_ms"] for p in run.meta["generator"]["processes"]] == [0.0]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        # --ca-bundle with a missing file: tests/loadtests/test_load_option_errors.py.
        (("--insecure", "--ca-bundle", "x.pem"), "--insecure checks no certificate"),
    ],
)
def test_bad_tls_options_are_one_line(
    run_locust: RunLocust, args: tuple[str, ...], fragment: str
) -> None:
    result = run_locust("chat", "--host", "https://127.0.0.1:9", *args, *LOAD, *SMALL_LOAD)
    assert result.code == 2, result.output
    errors = [line for line in result.output.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("slabench: error: "), result.output
    assert fragment in errors[0], errors[0]
    assert "Traceback" not in result.output
