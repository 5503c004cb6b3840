"""An open-loop send whose greenlet the test's end kills before it ran: a cancelled row, not
a lost one (``RunState.spawn_send``, ``RunState.stop_dispatcher``).

The dispatchers spawn each send into a pool and, when behind schedule, go on without
yielding; a stop that lands in the same pass of the loop kills greenlets that never ran, so
no ``execute`` ever recorded them: before, such a slot vanished from ``requests.parquet``.
The run state imports Locust (gevent's monkey-patching), so the probe runs in a fresh
interpreter, as ``test_disturbance`` does.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
from types import SimpleNamespace
import gevent
from gevent.pool import Pool
from locust.env import Environment
from loadtests.client.clock import now
from loadtests.client.protocols import PreparedRequest
from loadtests.harness.options import LoadOptions
from loadtests.harness.options_doc import slabench_parser
from loadtests.harness.state import RunState
from loadtests.workloads.datasets import Dataset, Prompt

def state(rows):
    options = LoadOptions.from_namespace(slabench_parser().parse_args([]))
    dataset = Dataset([Prompt("hi", None, 1, 4)], source="test")
    env = Environment(host="http://127.0.0.1:9")
    env.events.request.add_listener(lambda **kw: fired.append(kw["name"]))  # Locust's stats
    s = RunState(env, options, dataset, embedded=None)
    s.session = SimpleNamespace(add=rows.append)  # the run directory's sink
    return s

def req(turn):
    return PreparedRequest("chat", "POST", "/v1/chat", b"{}", "openai_sse", 7, turn=turn)

def row(r):
    return {k: getattr(r, k) for k in
            ("request_id", "scheduled_at", "sent_at", "status", "error", "error_class",
             "input_tokens", "turn")}

out = {}
fired = []
for case in ("stopped-first", "started-first"):
    rows, ran, pool = [], [], Pool(4)
    s = state(rows)
    due = now()
    s.spawn_send(pool, req(1), due, ran.append, 1)
    s.spawn_send(pool, req(2), due + 0.025, ran.append, 2)
    if case == "started-first":
        gevent.sleep(0)  # the loop's next pass runs both
    s.stop_dispatcher()  # "stopped-first": no yield since the spawns, neither has run
    pool.join(timeout=5.0)  # had they started only now, they must not send
    out[case] = {"due": due, "ran": ran, "rows": [row(r) for r in rows]}
out["fired"] = fired
json.dump(out, sys.stdout)
"""


def _probe() -> dict[str, dict]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_send_stopped_before_its_greenlet_ran_is_kept_as_cancelled_and_not_sent() -> None:
    out = _probe()

    stopped = out["stopped-first"]
    assert stopped["ran"] == []  # never sent, even once the loop got to its greenlet
    rows = stopped["rows"]
    assert [r["turn"] for r in rows] == [1, 2]
    assert [r["scheduled_at"] for r in rows] == [stopped["due"], stopped["due"] + 0.025]
    for r in rows:
        assert r["error"] == "cancelled: the test stopped before the request was sent"
        assert r["error_class"] == "cancelled"
        assert math.isnan(r["sent_at"]) and r["status"] == 0 and r["input_tokens"] == 7
    assert len({r["request_id"] for r in rows}) == 2
    # Not a failure of the target: Locust's table and exit code never see them.
    assert out["fired"] == []

    # Sends that had started are their own execute's to record: the stop adds nothing.
    started = out["started-first"]
    assert started["ran"] == [1, 2]
    assert started["rows"] == []
