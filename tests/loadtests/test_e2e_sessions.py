"""Multi-turn sessions against the real reference server, open and closed loop: the server
sees every turn with the history grown by the actual reply, every row carries its session
and turn, and in open loop each later turn is due at the previous reply's end plus the
think time."""

from __future__ import annotations

import numpy as np
import pytest

from sla.files.run import load_run
from tests.loadtests.conftest import (
    SMALL_LOAD,
    RunLocust,
    assert_server_saw_the_rows,
    server_requests,
)
from tests.server_process import ServerProcess

pytestmark = pytest.mark.e2e

THINK_S = 0.1
SESSION_LOAD = (
    *SMALL_LOAD,
    *("--turns", "fixed:3", "--think-time", f"fixed:{THINK_S}"),
    *("--system-prompt-len", "24", "--doc-len", "fixed:32"),
    *("--max-history-tokens", "512"),  # the fixture server's --max-model-len
)


OPEN_LOOP = ("--arrival-rate", "5", "--arrival", "constant")


@pytest.mark.parametrize("loop", ["open", "closed"])
def test_sessions_grow_their_history_turn_by_turn(
    run_locust: RunLocust, reference_server: ServerProcess, loop: str
) -> None:
    before = server_requests(reference_server.url, "/v1/chat/completions")
    result = run_locust(
        "sessions",
        *("--host", reference_server.url, "-u", "2", "-r", "2", "-t", "2s", *SESSION_LOAD),
        *(OPEN_LOOP if loop == "open" else ()),
    )
    assert result.code == 0, result.output
    run = load_run(result.run_dir)
    rows = run.requests
    assert run.meta["requested"]["input_tokens"] is None
    assert run.meta["sessions"]["turns"] == "fixed:3"
    assert_server_saw_the_rows(reference_server.url, "/v1/chat/completions", rows, before)
    done = rows[rows["error"].isna()].sort_values(["session_id", "turn"])
    assert rows["session_id"].notna().all() and rows["turn"].notna().all()
    whole = done.groupby("session_id").filter(lambda g: len(g) == 3)
    assert whole["session_id"].nunique() >= 3, rows[["session_id", "turn", "error"]]
    steps = set()
    for _, g in whole.groupby("session_id"):
        assert g["turn"].tolist() == [1, 2, 3]
        # The server's own prompt count grows by the same amount every turn: the user
        # message and the 8-token reply that came back (each in the chat template).
        grown = np.diff(g["input_tokens"].to_numpy())
        assert (grown > 16 + 8).all() and len(set(grown.tolist())) == 1
        steps.add(int(grown[0]))
        if loop == "open":
            # Later turns are due at the previous reply's end plus the think time; their
            # latency counts from then.
            due = g["scheduled_at"].to_numpy()[1:] - g["done_at"].to_numpy()[:-1]
            np.testing.assert_allclose(due, THINK_S, atol=1e-6)
        else:  # one user's conversation: the next turn leaves after the think time
            gap = g["sent_at"].to_numpy()[1:] - g["done_at"].to_numpy()[:-1]
            assert (gap >= THINK_S - 1e-3).all()
    assert len(steps) == 1
    # A later turn resends its history byte for byte: the server's prefix cache serves it.
    assert (whole.loc[whole["turn"] > 1, "cached_tokens"] > 0).all()
    # A turn's prompt is its history: no one requested input size, so no size warning.
    assert "not the size asked for" not in result.output
    first = whole[whole["turn"] == 1]["input_tokens"]
    assert first.nunique() == 1  # the same shared system prompt and document sizes
