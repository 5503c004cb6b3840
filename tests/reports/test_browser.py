"""The report in a real headless browser (Debian's chromium), offline, over DevTools.

Chromium runs with ``--remote-debugging-pipe`` (the DevTools protocol over fds 3 and 4, no
extra package), every network route closed (a dead proxy, no DNS), and loads the report from
a ``file://`` path. The page must draw every figure, show the verdict badge, log no console
error or exception (a CSP violation is one), and request nothing but itself. The report under
test comes from a real Locust run against the bundled reference server; the hostile case
puts script and markup into every string a run carries and checks that none of it ran.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from reports.render import write_report
from sla.files.run import load_run
from sla.files.verdict import write_verdict
from sla.spec import parse_spec
from sla.verdict import evaluate
from tests.reports import Req, production_shaped, write_run
from tests.server_process import SMALL_MODELS

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)",
    ),
]

FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--window-size=1400,2400",
    "--remote-debugging-pipe",
)
# Puts the two pipe ends at the fds chromium reads (3) and writes (4), then becomes chromium.
LAUNCHER = (
    "import fcntl, os, sys\n"
    "r, w = (fcntl.fcntl(int(fd), fcntl.F_DUPFD, 10) for fd in sys.argv[1:3])\n"
    "os.dup2(r, 3); os.dup2(w, 4)\n"
    "os.execv(sys.argv[3], sys.argv[3:])\n"
)
PAGE_STATE_JS = """(() => {
  const figures = Array.from(document.querySelectorAll("div.figure"));
  const drawn = figures.filter(d => d.classList.contains("js-plotly-plot")
                                    && d.querySelector("svg.main-svg"));
  const badge = document.getElementById("verdict-badge");
  const box = badge ? badge.getBoundingClientRect() : {width: 0, height: 0};
  const style = badge ? getComputedStyle(badge) : {visibility: "hidden", display: "none"};
  return {
    figures: figures.length, drawn: drawn.length,
    plots: document.querySelectorAll(".js-plotly-plot").length,
    mainSvgs: document.querySelectorAll("svg.main-svg").length,
    badge: badge ? badge.innerText : null,
    badgeVisible: box.width > 0 && box.height > 0 && style.visibility === "visible"
                  && style.display !== "none",
    title: document.title, text: document.body.innerText,
    scripts: document.scripts.length, pwned: window.__pwned === 1,
    foreign: document.querySelectorAll("img, iframe, object, embed, svg image").length,
  };
})()"""


class Browser:
    """A headless chromium driven over ``--remote-debugging-pipe`` (NUL-separated JSON)."""

    def __init__(self, profile: Path, log: Path, flags: tuple[str, ...] = FLAGS) -> None:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    LAUNCHER,
                    str(to_child_r),
                    str(from_child_w),
                    str(CHROMIUM),
                    *flags,
                    f"--user-data-dir={profile}",
                    "about:blank",
                ],
                pass_fds=(to_child_r, from_child_w),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        os.close(to_child_r)
        os.close(from_child_w)
        self._inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self._next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._from_child, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for message in messages:
                self._inbox.put(json.loads(message))
        self._inbox.put(None)

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout_s: float = 30.0,
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        reply = self._wait(lambda m: m.get("id") == self._next_id, timeout_s, method)
        if "error" in reply:
            raise AssertionError(f"DevTools {method} failed: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    def wait_event(self, method: str, timeout_s: float = 30.0) -> dict[str, Any]:
        seen = [e for e in self.events if e.get("method") == method]
        if seen:
            return seen[0]
        return self._wait(lambda m: m.get("method") == method, timeout_s, method)

    def _wait(self, match: Any, timeout_s: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                message = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"chromium did not answer {what} in {timeout_s:g} s") from None
            if message is None:
                raise AssertionError(f"chromium exited while waiting for {what}")
            if "method" in message:
                self.events.append(message)
            if match(message):
                return message

    def close(self) -> None:
        with contextlib.suppress(OSError, AssertionError):
            self.send("Browser.close", timeout_s=5.0)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        for fd in (self._to_child, self._from_child):
            with contextlib.suppress(OSError):
                os.close(fd)


def open_report(report: Path, tmp_path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Load ``report`` offline; return the page state once every figure is drawn, and the
    events (console, exceptions, log entries, network requests) seen on the way."""
    browser = Browser(tmp_path / "profile", tmp_path / "chromium.log")
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})
        session = browser.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Page.navigate", {"url": report.resolve().as_uri()}, session=session)
        browser.wait_event("Page.loadEventFired", timeout_s=60.0)
        deadline, state = time.monotonic() + 30.0, {}
        while time.monotonic() < deadline:
            reply = browser.send(
                "Runtime.evaluate",
                {"expression": PAGE_STATE_JS, "returnByValue": True},
                session=session,
            )
            state = reply["result"]["value"]
            if state["figures"] and state["drawn"] == state["figures"]:
                break
            time.sleep(0.2)
        return state, browser.events
    finally:
        browser.close()


def problems(events: list[dict[str, Any]]) -> list[str]:
    """Console errors, uncaught exceptions, error log entries (CSP violations among them)."""
    out = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            out.append(f"uncaught: {params['exceptionDetails']}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append(f"console.{params['type']}: {params.get('args')}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            out.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
    return out


def requested_urls(events: list[dict[str, Any]]) -> list[str]:
    return [
        e["params"]["request"]["url"]
        for e in events
        if e.get("method") == "Network.requestWillBeSent"
    ]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real ~3 s Locust run on the bundled reference server, judged by smoke.yaml and
    rendered by ``python -m reports``."""
    tmp = tmp_path_factory.mktemp("real")
    run_dir = tmp / "run"
    argv = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(ROOT / "loadtests/scenarios/chat.py"),
        "--headless",
        "-u",
        "4",
        "-r",
        "4",
        "-t",
        "3s",
        "--run-dir",
        str(run_dir),
        "--sla",
        str(ROOT / "sla/examples/smoke.yaml"),
        "--server-args",
        shlex.join(SMALL_MODELS),
        "--chars-per-token",
        "1",
        "--input-len",
        "fixed:16",
        "--output-len",
        "fixed:16",
        "--ignore-eos",
        "on",
    ]
    with (tmp / "locust.log").open("wb") as log:
        proc = subprocess.Popen(
            argv, cwd=tmp, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        code = proc.wait(120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        pytest.fail("locust did not finish within 120 s")
    output = (tmp / "locust.log").read_text(errors="replace")
    assert code in (0, 3), output[-3000:]  # PASS, or INCONCLUSIVE on a very slow machine
    report = subprocess.run(
        [sys.executable, "-m", "reports", str(run_dir)],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stderr
    yield run_dir


def test_a_real_report_renders_offline_with_every_figure_and_no_errors(
    real_run: Path, tmp_path: Path
) -> None:
    verdict = json.loads((real_run / "verdict.json").read_text())
    state, events = open_report(real_run / "report.html", tmp_path)
    assert state["figures"] >= 8  # the SLA, time series, distributions...
    assert state["drawn"] == state["plots"] == state["figures"], state
    assert state["mainSvgs"] >= state["figures"]
    assert state["badge"] == verdict["status"] and state["badgeVisible"]
    assert problems(events) == []
    assert [url for url in requested_urls(events) if not url.startswith("file://")] == []
    assert state["scripts"] == 3  # plotly.js, the figure data, the loader


HOSTILE = (
    "<script>document.title='pwned'</script>"
    "<img src=x onerror=\"window.__pwned=1;document.title='pwned'\">"
    "</script><script>window.__pwned=1</script><!--"
)


def test_hostile_strings_from_a_run_show_as_text_and_run_nothing(tmp_path: Path) -> None:
    reqs = [
        *production_shaped(40),  # so the figures of turns, cache, reasoning, schedule draw too
        *[
            Req(at_s=0.1 * i, latency_s=0.2, endpoint=HOSTILE, status=500, error=HOSTILE)
            for i in range(10)
        ],
    ]
    meta = {
        "scenario": HOSTILE,
        "target_url": "http://x/" + HOSTILE,
        "command": HOSTILE,
        "load_profile": {"mode": HOSTILE},
        "versions": {"python": HOSTILE},
    }
    run_dir = write_run(tmp_path / "run", reqs, meta=meta)
    spec = parse_spec({"name": "x", "objectives": [{"metric": "error_rate", "max": 0.5}]})
    verdict = replace(evaluate(spec, load_run(run_dir)), spec_name=HOSTILE, spec_source=HOSTILE)
    write_verdict(run_dir, verdict)
    report = write_report(run_dir, None)
    state, events = open_report(report, tmp_path)
    assert state["drawn"] == state["figures"] > 0, state
    for key in ("arrivals", "prefix-cache", "turns", "reasoning"):
        assert f'-{key}"></div>' in report.read_text(encoding="utf-8"), key
    assert not state["pwned"] and state["foreign"] == 0 and state["scripts"] == 3
    assert "pwned" not in state["title"].replace(HOSTILE, "")  # the title shows the text
    assert state["title"].startswith("slabench: <script>document.title='pwned'</script>")
    assert state["text"].count("<script>document.title='pwned'</script>") >= 5
    assert "<img src=x onerror=" in state["text"]
    assert problems(events) == []
    assert [url for url in requested_urls(events) if not url.startswith("file://")] == []
