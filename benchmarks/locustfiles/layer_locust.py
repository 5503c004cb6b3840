"""For benchmarks/floor_layers.py, the layer ``locust``: the ``parse`` layer's client under
Locust, without slabench's harness.

``SLABENCH_BENCH_MEASURED_USERS`` Locust users, each with one connection of slabench's
``Transport``, each task one streamed chat completion through
``loadtests.client.measure.execute`` (the record dropped, as in ``parse``), reported to
Locust's own request event (its stats, as slabench reports every request). Nothing of
``loadtests.harness`` is imported: no run directory, recorder, live view, monitors or
scraper. What ``slabench`` adds beyond this layer is that harness. At the end, writes
``[[sent, done], ...]`` as JSON to ``SLABENCH_BENCH_LAYER_OUT``.

    SLABENCH_BENCH_LAYER_OUT=out.json locust -f benchmarks/locustfiles/layer_locust.py \\
        --headless -u 32 -r 32 -t 10s --host URL
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlsplit

from locust import User, constant, events, task

from benchmarks.floor import TOKENS
from benchmarks.floor_client import request_bytes
from loadtests.client.measure import Timeouts, execute
from loadtests.client.protocols import PreparedRequest
from loadtests.client.transport import Target, Transport

MEASURED_USERS = int(os.environ.get("SLABENCH_BENCH_MEASURED_USERS", "8"))
TIMEOUTS = Timeouts(30.0, 600.0)
_done: list[list[float]] = []


class LayerChat(User):
    fixed_count = MEASURED_USERS
    wait_time = constant(0)

    def on_start(self) -> None:
        split = urlsplit(self.host)
        raw = request_bytes(split.hostname or "127.0.0.1", split.port or 80, TOKENS)
        body = raw.split(b"\r\n\r\n", 1)[1]
        self.req = PreparedRequest("chat", "POST", "/v1/chat/completions", body, "openai_sse")
        self.transport = Transport(
            Target.parse(self.host),
            concurrency=1,
            connect_timeout_s=10.0,
            network_timeout_s=60.0,
            headers={"Content-Type": "application/json"},
        )
        self.n = 0

    @task
    def chat(self) -> None:
        rec = execute(
            self.transport, self.req, request_id=str(self.n), worker="w", timeouts=TIMEOUTS,
            on_record=lambda r: None,
        )  # fmt: skip
        self.n += 1
        _done.append([rec.sent_at, rec.done_at])
        self.environment.events.request.fire(
            request_type="POST",
            name="chat",
            response_time=(rec.done_at - rec.sent_at) * 1000.0,
            response_length=0,
            exception=RuntimeError(rec.error) if rec.error else None,
            context={},
            response=None,
        )


@events.quitting.add_listener
def _write(environment: Any, **_: Any) -> None:
    with open(os.environ["SLABENCH_BENCH_LAYER_OUT"], "w") as f:
        json.dump(_done, f)
