"""A few hundred generated malformed, oversized and odd requests to every route: no 5xx,
every one answered, the server alive and its ``/metrics`` counts whole afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings

from benchmarks.fuzz_requests import SERVER_ARGS, Request, requests, send_case
from tests.reference_server.helpers import metric, samples, send
from tests.server_process import SMALL_MODELS, ServerProcess

pytestmark = pytest.mark.e2e
CASES = 300


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(args=[*SMALL_MODELS, *SERVER_ARGS]) as s:
        yield s


@settings(
    max_examples=CASES,
    deadline=None,  # a busy CI machine answers late; the property is the status
    derandomize=True,  # the same cases on every run
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(request=requests())
def test_no_request_gets_a_5xx(server: ServerProcess, request: Request) -> None:
    answer = send_case(server.url, request)
    assert answer.status < 500, (request, answer.status, answer.body[:300])


def test_alive_and_metrics_add_up_after_the_fuzz(server: ServerProcess) -> None:
    # Runs after the fuzz in file order; on its own it checks a fresh server, which holds too.
    assert send(server.url, "GET", "/v2/health/live").status == 200
    text = send(server.url, "GET", "/metrics").body.decode()
    counted = list(samples(text, "slabench_requests_total"))
    assert not [s.labels for s in counted if s.labels["status"].startswith("5")]
    assert metric(text, "slabench_inflight_requests") == 0
    served = sum(s.value for s in samples(text, "slabench_request_latency_seconds_count"))
    assert served == sum(s.value for s in counted)  # every answer timed and counted once
