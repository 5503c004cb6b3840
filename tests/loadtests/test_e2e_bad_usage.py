"""A target whose ``usage`` holds a count the run directory cannot (here 5,000,000,000
reasoning tokens, beyond its int32 column), end to end in real Locust: each such answer is
an error row (``malformed_sse``, naming the field and the value), the answers around them
are recorded as they were, and the run ends at ``-t``, complete, with its requests.parquet
and the verdict's exit code. Before, that one value failed every later write of the
recorder, and the run never ended."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sla.files.run import REQUESTS_FILE, load_run
from tests.loadtests.conftest import SMALL_LOAD, RunLocust

pytestmark = pytest.mark.e2e

GOOD_USAGE = {"prompt_tokens": 8, "completion_tokens": 2}
BAD_USAGE = {**GOOD_USAGE, "completion_tokens_details": {"reasoning_tokens": 5_000_000_000}}
MESSAGE = (
    "usage.completion_tokens_details.reasoning_tokens must be at most 2147483647 "
    "(the run directory holds int32 counts), got 5000000000"
)
ERROR_RATE_SPEC = "name: no-errors\nobjectives:\n  - {metric: error_rate, max: 0.01}\n"


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


class _Handler(BaseHTTPRequestHandler):
    """Every second streamed answer has the bad usage; each takes 5 ms (a few hundred
    requests in the run, not thousands)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps({"data": [{"id": "m"}]}).encode()
        self._send(200 if self.path == "/v1/models" else 404, "application/json", body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server: Any = self.server
        usage = BAD_USAGE if next(server.answers) % 2 else GOOD_USAGE
        token = {"choices": [{"index": 0, "delta": {"content": "ab"}, "finish_reason": None}]}
        time.sleep(0.005)
        body = b"".join([_event(token), _event(token), _event({"choices": [], "usage": usage})])
        self._send(200, "text/event-stream", body + b"data: [DONE]\n\n")

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def bad_usage_target() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.answers = itertools.count()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_bad_usage_count_is_an_error_row_and_the_run_ends_complete(
    run_locust: RunLocust, bad_usage_target: str, tmp_path: Path
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(ERROR_RATE_SPEC)
    result = run_locust(
        "chat", "--host", bad_usage_target, "--model", "m", "-u", "2", "-r", "2", "-t", "2s",
        "--scrape-interval", "0", "--flush-interval", "0.5", "--sla", str(spec), *SMALL_LOAD,
        timeout_s=60,  # the run takes ~5 s; before the fix it never ended
    )  # fmt: skip

    assert result.code == 1, result.output[-3000:]  # the error-rate objective FAILs
    assert "Traceback" not in result.output and "slabench: error" not in result.output
    run = load_run(result.run_dir)
    assert not run.from_parts and (result.run_dir / REQUESTS_FILE).exists()
    assert run.meta["status"] == "complete" and run.meta["requests_not_written"] == 0
    assert run.meta["ended_at"] - run.meta["started_at"] < 10  # ended at -t
    rows = run.requests
    assert run.meta["requests"] == len(rows)
    answered = rows[rows["error_class"] != "cancelled"]
    bad = answered[answered["error_class"] == "malformed_sse"]
    good = answered[answered["error_class"].isna()]
    assert len(bad) + len(good) == len(answered) and len(bad) >= 5 and len(good) >= 5
    assert (bad["error"] == MESSAGE).all() and (bad["status"] == 200).all()
    assert bad["reasoning_tokens"].isna().all()
    assert (bad["output_tokens_source"] == "chunks").all()  # the usage was not kept
    assert (good["input_tokens"] == 8).all() and (good["output_tokens"] == 2).all()
    assert (good["output_tokens_source"] == "usage").all()
    assert f"error malformed_sse x{len(bad)} (HTTP 200), e.g.: {MESSAGE}" in result.output
    verdict = json.loads((result.run_dir / "verdict.json").read_text())
    assert verdict["errors_by_class"] == {"malformed_sse": len(bad)}
