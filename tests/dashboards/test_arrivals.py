from __future__ import annotations

import numpy as np
import pandas as pd

from dashboards.arrivals import arrival_curves, arrivals_panel
from dashboards.view import RunView
from sla.files.run import CANCELLED_ERROR, Run
from tests.dashboards import T0, synthetic_run, trace, with_columns


def _behind_run() -> Run:
    """A 30 s open-loop run scheduled at 2 requests/s (60 requests, at 0.25 + 0.5 i s) whose
    generator falls behind from 10 s: those sends go out 5 s late, the last three are
    dropped; each answer takes 1 s, and the last sent request is cancelled by the end."""
    n = 60
    scheduled = T0 + 0.25 + 0.5 * np.arange(n)
    sent = scheduled.copy()
    late = scheduled >= T0 + 10.0
    sent[late] += 5.0
    sent[-3:] = np.nan
    done = sent + 1.0
    error = pd.array([None] * n, dtype="string")
    error[56] = CANCELLED_ERROR
    status = np.full(n, 200, dtype=np.int32)
    status[56] = 0
    run = synthetic_run(n, duration_s=30.0, warmup_s=0.0, open_loop=True)
    return with_columns(
        run,
        scheduled_at=scheduled,
        sent_at=sent,
        first_token_at=sent + 0.1,
        done_at=done,
        status=status,
        error=error,
    )


def test_scheduled_sent_and_completed_per_window() -> None:
    curves = arrival_curves(RunView.of(_behind_run(), window_s=5.0))
    assert curves is not None
    assert curves.edges_s.tolist() == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0]
    assert curves.scheduled.tolist() == [10, 10, 10, 10, 10, 10, 0]
    # 10-15 s sends nothing (its requests go out at 15-20 s); sends run 5 s behind after;
    # the three dropped ones (scheduled at 28.75-29.75 s) are never sent.
    assert curves.sent.tolist() == [10, 10, 0, 10, 10, 10, 7]
    # Each answer 1 s after its send: sends at 4-4.75 s complete in the next window, the
    # first late one (sent at 15.25 s) at 16.25 s; the cancelled one never completes.
    assert curves.completed.tolist() == [8, 10, 2, 8, 10, 10, 8]
    assert curves.per_s("scheduled").tolist() == [2, 2, 2, 2, 2, 2, 0]
    assert curves.cumulative("sent")[-1] == 57


def test_the_panel_draws_the_curves_and_is_absent_in_closed_loop() -> None:
    panel = arrivals_panel(RunView.of(_behind_run(), window_s=5.0))
    assert panel is not None and panel.key == "arrivals"
    sent = trace(panel.figure, "sent")
    assert list(sent.x) == [2.5, 7.5, 12.5, 17.5, 22.5, 27.5, 32.5]
    assert list(sent.y) == [2, 2, 0, 2, 2, 2, 1.4]
    assert list(trace(panel.figure, "completed (cumulative)").y)[-1] == 56
    assert "60 scheduled, 57 sent, 56 completed" in panel.note
    assert arrivals_panel(RunView.of(synthetic_run(100))) is None


def test_a_stray_timestamp_does_not_stretch_the_axis_without_bound() -> None:
    run = _behind_run()
    done = run.requests["done_at"].to_numpy(dtype=float).copy()
    done[0] = T0 + 1e9  # a worker's clock stepped
    curves = arrival_curves(RunView.of(with_columns(run, done_at=done), window_s=5.0))
    assert curves is not None and curves.edges_s[-1] == 60.0  # twice the run's 6 windows
    assert curves.completed.sum() == 55
