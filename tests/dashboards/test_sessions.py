from __future__ import annotations

import numpy as np
import pandas as pd

from dashboards.sessions import turn_stats, turns_panel
from dashboards.view import RunView
from sla.files.run import Run
from sla.reading import read_run
from tests.dashboards import T0, synthetic_run, with_columns


def _turn_run() -> tuple[Run, dict[str, list[float]], dict[str, list[float]]]:
    """36 requests in the measured window, turn ``1 + i % 12``, TTFT ``turn * 10 + i`` ms
    and latency ``turn * 100 + i`` ms; plus a warm-up row, a failed row and a row without a
    turn, none of which may count. Returns the run and the expected samples per group."""
    n = 39
    run = synthetic_run(n, warmup_s=10.0)
    index = np.arange(n)
    turn = 1 + index % 12
    sent = T0 + 20.0 + index * 0.5
    ttft_s = (turn * 10 + index) / 1000.0
    latency_s = (turn * 100 + index) / 1000.0
    status = np.full(n, 200, dtype=np.int32)
    sent[36] = T0 + 1.0  # warm-up
    status[37] = 500  # failed
    turns = pd.array(turn, dtype="Int32")
    turns[38] = pd.NA  # not part of a conversation
    run = with_columns(
        run,
        sent_at=sent,
        first_token_at=sent + ttft_s,
        done_at=sent + latency_s,
        status=status,
        error=pd.array([None] * n, dtype="string"),
        turn=turns,
    )
    # The samples as stored (epoch seconds: turn * 10 + i ms to within a microsecond).
    rows = run.requests
    ttft: dict[str, list[float]] = {}
    latency: dict[str, list[float]] = {}
    for i in range(36):
        label = str(turn[i]) if turn[i] < 10 else "10+"
        sent_at, first, done = (rows[c].iloc[i] for c in ("sent_at", "first_token_at", "done_at"))
        assert abs((first - sent_at) * 1000.0 - (turn[i] * 10 + i)) < 1e-3
        ttft.setdefault(label, []).append((first - sent_at) * 1000.0)
        latency.setdefault(label, []).append((done - sent_at) * 1000.0)
    return run, ttft, latency


def test_turn_percentiles_are_exact_per_turn_with_late_turns_pooled() -> None:
    run, ttft, latency = _turn_run()
    stats = turn_stats(read_run(run))
    assert stats["turn"].tolist() == ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10+"]
    assert stats["n"].tolist() == [3] * 9 + [9]
    for _, row in stats.iterrows():
        for percent in (50, 90, 99):
            expected_ttft = np.percentile(ttft[row["turn"]], percent)
            expected_latency = np.percentile(latency[row["turn"]], percent)
            assert row[f"ttft_p{percent}_ms"] == expected_ttft
            assert row[f"latency_p{percent}_ms"] == expected_latency
    # Turn 1 holds requests 0, 12 and 24: p50 is the middle one.
    assert abs(stats.loc[0, "latency_p50_ms"] - 112.0) < 1e-3


def test_the_panel_draws_the_same_numbers_and_is_absent_without_turns() -> None:
    run, _, _ = _turn_run()
    view = RunView.of(run)
    panel = turns_panel(view)
    assert panel is not None and panel.key == "turns"
    stats = turn_stats(view.reading)
    p99 = [t for t in panel.figure.data if t.name == "p99"]
    assert len(p99) == 2  # TTFT and E2E
    assert list(p99[1].x) == stats["turn"].tolist()
    assert np.allclose(p99[1].y, stats["latency_p99_ms"])
    assert [t.showlegend for t in panel.figure.data if t.name == "p50"] == [True, False]
    assert turns_panel(RunView.of(synthetic_run(200))) is None


def test_a_non_streamed_multi_turn_run_draws_latency_only() -> None:
    run, _, _ = _turn_run()
    run = with_columns(run, first_token_at=np.full(39, np.nan))
    panel = turns_panel(RunView.of(run))
    assert panel is not None
    assert [a.text for a in panel.figure.layout.annotations] == ["E2E latency by turn"]
