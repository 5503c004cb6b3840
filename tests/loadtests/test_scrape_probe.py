"""A KServe V2 server's metrics live on another port: when the default ``<host>/metrics``
answers 404, the scraper probes the host's metrics ports (a parameter: here a free port of
the test's own) and scrapes the first that serves Prometheus text, each sample keeping its
URL. The scraper runs gevent, so it runs in a subprocess (the pytest process stays
gevent-free); the target is a tiny aiohttp server in a thread of this process."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from sla.errors import SlabenchError
from sla.files.server_metrics import read_server_metrics

PAGE = "# TYPE nv_inference_request_success counter\nnv_inference_request_success 7\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def kserve_ports() -> Iterator[tuple[int, int]]:
    """(inference port: no /metrics, metrics port: /metrics only)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    ports: list[int] = []
    runners: list[web.AppRunner] = []

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=PAGE)

    async def serve() -> None:
        inference, exporter = web.Application(), web.Application()
        exporter.router.add_get("/metrics", metrics)
        for app in (inference, exporter):
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            runners.append(runner)
            ports.append(runner.addresses[0][1])
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(serve(), loop)
    assert ready.wait(30), "the tiny KServe-like server did not start within 30 s"
    yield ports[0], ports[1]
    for runner in runners:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)
    loop.close()


SCRAPE = """
import json, sys, gevent
from pathlib import Path
from loadtests.recording.scraper import MetricsScraper
url, run_dir, ports = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
scraper = MetricsScraper([url], 0.05, run_dir, probe_ports=ports)
scraper.start()
with gevent.Timeout(30):  # two scrapes of the probed port
    while scraper.scrapes < 2:
        gevent.sleep(0.02)
print(json.dumps(scraper.stop()))
"""


def test_a_404_on_the_default_url_finds_the_metrics_port(
    kserve_ports: tuple[int, int], tmp_path: Path
) -> None:
    inference, exporter = kserve_ports
    closed = _free_port()  # nothing listens there: probed, skipped
    url = f"http://127.0.0.1:{inference}/metrics"
    done = subprocess.run(
        [sys.executable, "-c", SCRAPE, url, str(tmp_path), json.dumps([closed, exporter])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    found = f"http://127.0.0.1:{exporter}/metrics"
    assert f"{url} answered HTTP 404; found metrics at {found}" in done.stderr
    summary = json.loads(done.stdout)
    target = summary["targets"][0]
    assert target["url"] == found and target["scrapes"] >= 2 and summary["problem"] is None
    samples = read_server_metrics(tmp_path, SlabenchError)
    assert samples is not None and set(samples["url"]) == {found}
    assert set(samples["name"]) == {"nv_inference_request_success_total"}


def test_no_metrics_anywhere_is_said_in_one_line(
    kserve_ports: tuple[int, int], tmp_path: Path
) -> None:
    inference, _ = kserve_ports
    url = f"http://127.0.0.1:{inference}/metrics"
    # Until the scraper has given up: its first 404 is a problem too, before the probing ends.
    gave_up = "while 'give --scrape-url' not in (scraper.problem or '')"
    script = SCRAPE.replace("while scraper.scrapes < 2", gave_up)
    closed = _free_port()
    done = subprocess.run(
        [sys.executable, "-c", script, url, str(tmp_path), json.dumps([closed])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["scrapes"] == 0
    assert (
        f"{url} answered HTTP 404, and no metrics on port {closed} either" in (summary["problem"])
    )
    # Named by the URL it was given, not by the last port it tried.
    assert f"no server metrics will be collected from {url}: {url} answered" in done.stderr


def test_a_run_shorter_than_the_interval_is_scraped_at_its_start_and_its_stop(
    kserve_ports: tuple[int, int], tmp_path: Path
) -> None:
    # A 60 s interval and a stop after the first scrape: the stop scrapes once more, so the
    # run has one interval (start to stop) to decompose, whatever its length.
    _, exporter = kserve_ports
    url = f"http://127.0.0.1:{exporter}/metrics"
    script = SCRAPE.replace("0.05, run_dir", "60.0, run_dir").replace(
        "while scraper.scrapes < 2", "while scraper.scrapes < 1"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, url, str(tmp_path), "[]"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["targets"][0]["scrapes"] == 2
    samples = read_server_metrics(tmp_path, SlabenchError)
    assert samples is not None and samples["scraped_at"].nunique() == 2
