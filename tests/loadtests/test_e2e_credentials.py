"""The API key goes only to the origin it was given for, even when Locust's web UI changes
the host; the web UI listens on loopback; a key a server echoes in an error is never
recorded."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from sla.files.run import load_run
from tests.loadtests.conftest import SCENARIOS, SMALL_LOAD, RunLocust, clean_env, free_port
from tests.loadtests.small_target import MODEL, SmallTarget
from tests.server_process import wait_until

pytestmark = pytest.mark.e2e

KEY = "sk-test-0123456789abcdef-SECRET"
TARGET = ("--model", MODEL, "--no-stream", "--scrape-interval", "0", "--api-key", KEY)


class WebUi:
    """A locust with its web UI (no --headless), stopped by SIGTERM at the end."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log
        self.url = f"http://127.0.0.1:{port}"

    def post(self, path: str, **form: str) -> None:
        data = urllib.parse.urlencode(form).encode()
        with urllib.request.urlopen(self.url + path, data=data, timeout=10) as response:
            assert response.status == 200

    def listening(self) -> set[str]:
        """The addresses this locust listens on at its web port."""
        return {
            c.laddr.ip
            for c in psutil.Process(self.proc.pid).net_connections("inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == self.port
        }

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def web_ui(tmp_path: Path, *args: str) -> Iterator[WebUi]:
    port = free_port()
    log = tmp_path / "locust.log"
    cmd = [sys.executable, "-m", "locust", "-f", str(SCENARIOS / "chat.py"), "--web-port"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*cmd, str(port), "--run-dir", str(tmp_path / "run"), *args],
            cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=clean_env(None), start_new_session=True,
        )  # fmt: skip
    ui = WebUi(proc, port, log)
    try:
        wait_until(lambda: bool(ui.listening()) or proc.poll() is not None, timeout_s=60)
        assert proc.poll() is None, ui.output()
        yield ui
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_the_web_ui_listens_on_loopback_only(tmp_path: Path) -> None:
    with SmallTarget() as target, web_ui(tmp_path, "--host", target.url, *TARGET) as ui:
        assert ui.listening() == {"127.0.0.1"}, ui.output()


def test_the_key_does_not_follow_a_host_changed_in_the_web_ui(tmp_path: Path) -> None:
    given, other = SmallTarget(), SmallTarget()
    with given, other, web_ui(tmp_path, "--host", given.url, *TARGET, *SMALL_LOAD) as ui:
        ui.post("/swarm", user_count="1", spawn_rate="1", host=other.url)
        wait_until(lambda: len(other.authorizations) >= 2, timeout_s=30)
        ui.post("/stop")
        time.sleep(0.5)
        ui.post("/swarm", user_count="1", spawn_rate="1", host=given.url)
        wait_until(lambda: len(given.authorizations) >= 2, timeout_s=30)
        ui.post("/stop")
    assert set(other.authorizations) == {None}
    assert set(given.authorizations) == {f"Bearer {KEY}"}
    warning = (
        f"slabench: WARNING: the target is now {other.url}, not the --host the --api-key was "
        "given for: requests to it carry no key"
    )
    assert ui.output().count(warning) == 1, ui.output()


def test_a_key_echoed_in_an_error_is_never_recorded(run_locust: RunLocust) -> None:
    load = [a for a in SMALL_LOAD if a != "--no-report"]  # the report must not hold it either
    with SmallTarget(echo_key=True) as target:
        result = run_locust(
            "chat", "--host", target.url, *TARGET, "-u", "2", "-r", "2", "-t", "2s", *load
        )
    assert set(target.authorizations) == {f"Bearer {KEY}"}  # the server did get it...
    errors = set(load_run(result.run_dir).requests["error"].dropna())
    assert "HTTP 401: invalid header 'Bearer REDACTED'" in errors, errors
    assert (result.run_dir / "report.html").exists()
    for path in result.run_dir.rglob("*"):  # ...but no file of the run holds it
        assert not path.is_file() or KEY.encode() not in path.read_bytes(), path
    assert KEY not in result.output


def test_workers_send_the_key_to_the_host_they_were_given(run_locust: RunLocust) -> None:
    with SmallTarget() as target:
        result = run_locust(
            "chat", "--host", target.url, *TARGET, "--processes", "2", "-u", "2", "-r", "2",
            "-t", "3s", *SMALL_LOAD,
        )  # fmt: skip
    assert result.code == 0, result.output
    assert len(target.authorizations) >= 2
    assert set(target.authorizations) == {f"Bearer {KEY}"}
    assert "carry no key" not in result.output
