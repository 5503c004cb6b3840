"""Counts are checked before work: the cost of refusing a request for its count.

A completion whose ``prompt`` list holds more prompts than the server queues, or a chat
with more messages than it accepts, is a 400. The server used to tokenize every prompt
first and count afterwards, so a 2 MB body of one-character prompts held the event loop for
as long as encoding 400,000 prompts took. This benchmark measures, side by side in one run
on one server, the time to that 400 against the floor of any 400 for the same bytes: the
same body with one byte of broken JSON at its end (read and parsed, nothing else). A ratio
near 1 means the count was checked before any work; a server that encodes first shows a
ratio that grows with the count.

    .venv/bin/python -m benchmarks.count_checks [--repeat 5]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import time
import urllib.parse

from benchmarks._harness import TINY_EMBED, TINY_LM, print_header, start_server

COUNTS = (10_000, 100_000, 400_000)


def post_seconds(url: str, path: str, body: bytes) -> tuple[int, float]:
    """One POST over its own connection: the status and the seconds to the whole answer."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)
    try:
        started = time.perf_counter()
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        return resp.status, time.perf_counter() - started
    finally:
        conn.close()


def median_ms(url: str, path: str, body: bytes, repeat: int) -> tuple[set[int], float]:
    runs = [post_seconds(url, path, body) for _ in range(repeat)]
    return {status for status, _ in runs}, statistics.median(s for _, s in runs) * 1000.0


def lm_model(url: str) -> str:
    """The id of the server's generative model (its first in /v1/models that is not embed)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        conn.request("GET", "/v1/models")
        ids = [m["id"] for m in json.loads(conn.getresponse().read())["data"]]
    finally:
        conn.close()
    return next(i for i in ids if "embed" not in i)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5, help="requests per figure (median)")
    a = p.parse_args()
    args = [*TINY_LM, *TINY_EMBED]
    print_header(
        "count checks before work",
        "benchmarks.count_checks",
        {"server": args},
        ["time to the 400 of a request over a count limit vs the same bytes made invalid JSON"],
    )
    server = start_server(args)
    if server is None:
        return 2
    try:
        print(f"{'request':<34}{'body':>10}{'count 400 ms':>14}{'parse floor ms':>16}{'ratio':>8}")
        model = lm_model(server.url)
        for count in COUNTS:
            cases = [
                ("prompts", "/v1/completions",
                 {"model": model, "prompt": ["x"] * count, "max_tokens": 1}),
                ("chat messages", "/v1/chat/completions",
                 {"model": model, "messages": [{"role": "user", "content": "x"}] * (count // 4)}),
            ]  # fmt: skip
            for what, path, payload in cases:
                body = json.dumps(payload).encode()
                statuses, counted = median_ms(server.url, path, body, a.repeat)
                floor_statuses, floor = median_ms(server.url, path, body[:-1] + b"!", a.repeat)
                if statuses != {400} or floor_statuses != {400}:
                    print(f"error: expected 400s, got {statuses} and {floor_statuses}")
                    return 1
                n = count if what == "prompts" else count // 4
                name = f"{n:,} {what}"
                print(
                    f"{name:<34}{len(body) / 1e6:>8.1f}MB{counted:>14.1f}{floor:>16.1f}"
                    f"{counted / floor:>8.2f}"
                )
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
