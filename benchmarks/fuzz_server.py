"""Thousands of generated hostile requests against one reference server (a script, not a test).

The cases are those of ``tests/reference_server/test_fuzz.py`` (``benchmarks/fuzz_requests.py``:
malformed, cut-short, deeply nested, oversized and odd bodies and headers, to
every route, admin included), many more of them, sent one after another:

    .venv/bin/python -m benchmarks.fuzz_server [--cases 5000] [--seed 0]

Prints the number of cases, the count per status class, the number of 5xx (target 0) with
the first few of them, whether the server is alive afterwards, and whether its ``/metrics``
adds up (no 5xx counted, nothing left in flight, every answer both counted and timed).
Exit code 0 when there was no 5xx and both checks hold, 1 otherwise, 2 when the server did
not start.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

from hypothesis import HealthCheck, given, seed, settings
from prometheus_client.parser import text_string_to_metric_families

from benchmarks._harness import print_header, start_server
from benchmarks.fuzz_requests import SERVER_ARGS, Request, requests, send, send_case
from loadtests.bundled_server import SMALL_MODELS


def fuzz(url: str, cases: int, rng_seed: int) -> tuple[Counter[int], list[str]]:
    statuses: Counter[int] = Counter()
    failures: list[str] = []

    @seed(rng_seed)
    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(request=requests())
    def one(request: Request) -> None:
        answer = send_case(url, request)
        statuses[answer.status] += 1
        if answer.status >= 500:
            failures.append(
                f"{answer.status} {request.method} {request.path}: {answer.body[:160]!r}"
            )

    one()
    return statuses, failures


def metrics_add_up(url: str) -> tuple[bool, str]:
    text = send(url, "GET", "/metrics").body.decode()
    found = [s for f in text_string_to_metric_families(text) for s in f.samples]
    counted = [s for s in found if s.name == "slabench_requests_total"]
    five = sum(s.value for s in counted if s.labels["status"].startswith("5"))
    inflight = sum(s.value for s in found if s.name == "slabench_inflight_requests")
    timed = sum(s.value for s in found if s.name == "slabench_request_latency_seconds_count")
    total = sum(s.value for s in counted)
    ok = five == 0 and inflight == 0 and timed == total
    return ok, f"5xx counted {five:g}, in flight {inflight:g}, counted {total:g}, timed {timed:g}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cases", type=int, default=5000, help="requests to generate and send")
    p.add_argument("--seed", type=int, default=0, help="hypothesis seed")
    a = p.parse_args()
    args = [*SMALL_MODELS, *SERVER_ARGS]
    print_header("fuzz the reference server", "benchmarks.fuzz_server", {"fuzzed": args}, [])
    server = start_server(args)
    if server is None:
        return 2
    try:
        started = time.monotonic()
        statuses, failures = fuzz(server.url, a.cases, a.seed)
        took_s = time.monotonic() - started
        alive = send(server.url, "GET", "/v2/health/live").status == 200
        added_up, detail = metrics_add_up(server.url)
    finally:
        server.stop()
    sent = sum(statuses.values())
    classes = Counter(f"{s // 100}xx" for s in statuses.elements())
    print(f"cases sent: {sent} in {took_s:.1f}s ({sent / took_s:.0f}/s)")
    print("statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
    print("classes: " + ", ".join(f"{k} {v}" for k, v in sorted(classes.items())))
    print(f"5xx: {len(failures)} (target 0)")
    for line in failures[:5]:
        print(f"  {line}")
    print(f"alive afterwards: {'yes' if alive else 'NO'}")
    print(f"/metrics adds up: {'yes' if added_up else 'NO'} ({detail})")
    return 0 if not failures and alive and added_up else 1


if __name__ == "__main__":
    sys.exit(main())
