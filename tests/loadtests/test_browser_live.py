"""The slabench tab of Locust's own web UI, in a real headless chromium: a run started
from the web UI on loopback shows live figures that appear and change, and that end equal
to the run directory's exact ones within the sketch's stated error (1%); the chart page
``/slabench/live``, opened in the same browser after the run, draws both charts from the
run's history with no console error."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sla.files.run import load_run
from sla.reading import read_run
from sla.sketch import RELATIVE_ERROR
from tests.loadtests.conftest import SCENARIOS, SMALL_LOAD, clean_env, free_port
from tests.reports.test_browser import CHROMIUM, FLAGS, Browser, problems
from tests.server_process import ServerProcess, wait_until

# The report tests' flags, but loopback (Locust's web UI) bypasses the dead proxy: nothing
# else is reachable.
LOOPBACK_FLAGS = tuple(
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" if f.startswith("--host-resolver")
    else f for f in FLAGS if f != "--proxy-bypass-list=<-loopback>"
)  # fmt: skip
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium"),
]

# Clicks the slabench tab (Locust's extended tab) and reads its table: header -> cell text.
TAB_JS = """(() => {
  const tab = Array.from(document.querySelectorAll('[role=tab]'))
    .find(t => t.innerText.trim().toLowerCase() === 'slabench');
  if (!tab) return {tab: false};
  tab.click();
  const table = Array.from(document.querySelectorAll('table'))
    .find(t => (t.querySelector('thead th') || {innerText: ''}).innerText.trim() === 'Endpoint');
  if (!table) return {tab: true, rows: []};  // the click renders it on the next frame
  const heads = Array.from(table.querySelectorAll('thead th')).map(th => th.innerText.trim());
  const rows = Array.from(table.querySelectorAll('tbody tr')).map(tr =>
    Object.fromEntries(Array.from(tr.querySelectorAll('td')).map((td, i) =>
      [heads[i], td.innerText.trim()])));
  return {tab: true, rows: rows};
})()"""
# The chart page: each chart drawn by plotly, and how many points its first trace holds.
CHARTS_JS = """(() => {
  const out = {state: (document.getElementById('state') || {}).textContent};
  for (const id of ['ttft', 'rate']) {
    const div = document.getElementById(id);
    out[id] = div && div.querySelector('.main-svg') && div.data ? div.data[0].x.length : -1;
  }
  return out;
})()"""


def test_the_slabench_tab_shows_live_figures_that_end_at_the_run_directorys(
    reference_server: ServerProcess, tmp_path: Path
) -> None:
    port, run_dir = free_port(), tmp_path / "run"
    cmd = [sys.executable, "-m", "locust", "-f", str(SCENARIOS / "chat.py"),
           "--host", reference_server.url, "--web-host", "127.0.0.1", "--web-port", str(port),
           "--autostart", "-u", "2", "-r", "2", "-t", "5s", "--live-interval", "1",
           "--run-dir", str(run_dir), *SMALL_LOAD]  # fmt: skip
    with (tmp_path / "locust.log").open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                env=clean_env(None), start_new_session=True)  # fmt: skip
    browser = Browser(tmp_path / "profile", tmp_path / "chromium.log", LOOPBACK_FLAGS)
    try:
        url = f"http://127.0.0.1:{port}/"
        assert wait_until(lambda: _answers(url), 60.0), "Locust's web UI did not answer"
        target = browser.send("Target.createTarget", {"url": "about:blank"})
        session = browser.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )["sessionId"]
        browser.send("Page.enable", session=session)
        browser.send("Page.navigate", {"url": url}, session=session)
        seen: list[int] = []
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline and len(set(seen)) < 2:  # figures appear, change
            row = _row(browser, session)
            if row and row.get("n") not in (None, "", "0"):
                seen.append(int(row["n"]))
            time.sleep(0.3)
        assert len(set(seen)) >= 2, f"the tab's n did not appear and change: {seen}"
        assert wait_until(lambda: (run_dir / "requests.parquet").exists(), 30.0), "no run end"
        browser.send("Page.reload", session=session)  # the UI's last poll, after the end
        final = None
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and not (final and final.get("n")):
            time.sleep(0.3)
            final = _row(browser, session)
        charts = _charts(browser, session, f"{url}slabench/live")
    finally:
        browser.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        proc.wait(30)
    reading = read_run(load_run(run_dir))
    ok = reading.measured_ok
    assert final is not None and int(final["n"]) == len(reading.measured)
    for column, q in (("TTFT p50 ms", 50), ("TTFT p99 ms", 99)):
        exact = float(np.percentile(ok["ttft_ms"].to_numpy(), q))
        assert abs(float(final[column]) - exact) <= RELATIVE_ERROR * exact + 1e-3, column
    assert charts["problems"] == [], charts
    # One point per --live-interval (1 s) of a 5 s run, in both charts; the page says so.
    assert charts["ttft"] >= 3 and charts["rate"] >= 3 and charts["state"] == "ended", charts


def _charts(browser: Browser, session: str, url: str) -> dict[str, Any]:
    """Open the chart page in the same tab; its charts once drawn, and any console error,
    uncaught exception or error log entry on the way."""
    seen = len(browser.events)
    for domain in ("Runtime", "Log"):
        browser.send(f"{domain}.enable", session=session)
    browser.send("Page.navigate", {"url": url}, session=session)
    charts: dict[str, Any] = {}
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline and not (charts and min(charts["ttft"], charts["rate"]) > 0):
        time.sleep(0.3)
        reply = browser.send(
            "Runtime.evaluate", {"expression": CHARTS_JS, "returnByValue": True}, session=session
        )
        charts = reply["result"].get("value") or {}
    time.sleep(0.5)  # a late error from the first poll's draw would show by now
    browser.send("Runtime.evaluate", {"expression": "1"}, session=session)  # reads events
    return {**charts, "problems": problems(browser.events[seen:])}


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _row(browser: Browser, session: str) -> dict[str, Any] | None:
    reply = browser.send(
        "Runtime.evaluate", {"expression": TAB_JS, "returnByValue": True}, session=session
    )
    value = reply["result"].get("value") or {}
    rows = value.get("rows") or []
    return rows[0] if rows else None
