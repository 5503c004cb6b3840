"""A scrape of a large metrics page does not hold the event loop for its whole parse: the
scraper yields after each metric family, so the requests in flight keep their timestamps.
The scraper runs gevent, so it runs in a subprocess (the pytest process stays gevent-free),
with the page served by a gevent WSGI server of that process, on a free port."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from loadtests.recording.scrapes import ScrapeRecorder

FAMILIES = 48


def big_page() -> str:
    """~90 KB like a vLLM server's: histograms of 22 buckets for two engines, gauges."""
    lines = []
    for i in range(FAMILIES // 2):
        name = f"vllm:latency_{i}_seconds"
        lines.append(f"# TYPE {name} histogram")
        for engine in ("0", "1"):
            labels = f'engine="{engine}",model_name="meta-llama/Llama-3.1-8B-Instruct"'
            for b in range(22):
                lines.append(f'{name}_bucket{{{labels},le="{0.001 * 2**b:g}"}} {b * 3}')
            lines.append(f'{name}_bucket{{{labels},le="+Inf"}} 70')
            lines += [f"{name}_sum{{{labels}}} 12.5", f"{name}_count{{{labels}}} 70"]
        lines += [f"# TYPE vllm:running_{i} gauge", f'vllm:running_{i}{{engine="0"}} {i}']
    return "\n".join(lines) + "\n"


def test_each_family_is_followed_by_a_pause_and_the_rows_are_the_same(tmp_path: Path) -> None:
    page = big_page()
    paused, plain = ScrapeRecorder(tmp_path / "a"), ScrapeRecorder(tmp_path / "b")
    calls: list[int] = []
    assert paused.record(1.0, page, "u", pause=lambda: calls.append(1))
    assert plain.record(1.0, page, "u")
    assert len(calls) == FAMILIES
    assert paused.parts.count == plain.parts.count == FAMILIES // 2 * (2 * 25 + 1)


SCRAPE = """
import json, sys, time, gevent
from pathlib import Path
from gevent.pywsgi import WSGIServer
from loadtests.recording.scraper import MetricsScraper
from loadtests.recording.scrapes import ScrapeRecorder
page = sys.stdin.read()
body = page.encode()

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4")])
    return [body]

server = WSGIServer(("127.0.0.1", 0), app, log=None)
server.start()
turns = []

def ticker():  # a stream in flight: its turns, on this thread's CPU clock
    while True:
        turns.append(time.thread_time())
        gevent.sleep(0)

t0 = time.thread_time()
ScrapeRecorder(Path(sys.argv[1]) / "alone").record(1.0, page, "u")  # the parse, unbroken
whole = time.thread_time() - t0
tick = gevent.spawn(ticker)
scraper = MetricsScraper([f"http://127.0.0.1:{server.server_port}/metrics"], 3600.0,
                         Path(sys.argv[1]) / "run")
scraper.start()
with gevent.Timeout(60):  # the first scrape (at once), parsed with the ticker beside it
    while scraper.scrapes < 1:
        gevent.sleep(0.01)
tick.kill()
gaps = [b - a for a, b in zip(turns, turns[1:])]
print(json.dumps({"whole_ms": whole * 1000, "longest_gap_ms": max(gaps) * 1000}))
scraper.stop()
server.stop()
"""


def test_a_large_page_is_parsed_between_the_other_greenlets_turns(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRAPE, str(tmp_path)],
        input=big_page(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.splitlines()[-1])
    # CPU time of this thread, so a busy machine's preemption is not counted: the longest
    # stretch without a turn is a family's parse, not the page's (48 families)
    assert figures["longest_gap_ms"] < figures["whole_ms"] / 5, figures
