from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboards.reasoning import reasoning_panel, reasoning_times
from dashboards.view import RunView
from sla.files.run import Run
from tests.dashboards import T0, synthetic_run, trace, with_columns


def _reasoning_run() -> Run:
    """Ten measured requests sent at 20 + i s: first token at +10 ms, done at +1 s; rows
    0-5 reason for (i + 1) * 100 ms first. Row 6 has no visible output (NaN), row 7 one at
    its first token (no reasoning), row 8 failed, row 9 started in the warm-up."""
    n = 10
    index = np.arange(n)
    sent = T0 + 20.0 + index
    sent[9] = T0 + 1.0
    first = sent + 0.01
    output = np.where(index < 6, first + (index + 1) * 0.1, first)
    output[6] = np.nan
    status = np.where(index == 8, 500, 200).astype(np.int32)
    return with_columns(
        synthetic_run(n, warmup_s=10.0),
        sent_at=sent,
        first_token_at=first,
        first_output_at=np.where(index == 8, first + 0.5, output),
        done_at=sent + 1.0,
        status=status,
        error=pd.array([None] * n, dtype="string"),
    )


def test_reasoning_and_output_time_of_each_request_that_reasoned() -> None:
    times = reasoning_times(RunView.of(_reasoning_run()))
    reasoning = [100.0, 200.0, 300.0, 400.0, 500.0, 600.0]
    assert times.of == 8  # the measured successful requests
    assert times.reasoning_ms == pytest.approx(reasoning, abs=1e-3)
    assert times.output_ms == pytest.approx([990.0 - r for r in reasoning], abs=1e-3)
    assert times.percentiles("reasoning") == pytest.approx(
        np.percentile(times.reasoning_ms, [50, 90, 99]), abs=0
    )
    assert times.percentiles("reasoning")[0] == pytest.approx(350.0, abs=1e-3)
    assert times.percentiles("output")[0] == pytest.approx(640.0, abs=1e-3)


def test_the_panel_shows_the_percentiles_and_is_absent_without_reasoning() -> None:
    panel = reasoning_panel(RunView.of(_reasoning_run()))
    assert panel is not None and panel.key == "reasoning"
    bars = trace(panel.figure, "reasoning time")
    assert list(bars.x) == ["p50", "p90", "p99"]
    assert bars.y[0] == pytest.approx(350.0, abs=1e-3)
    assert "(6 of 8)" in panel.note
    # synthetic_run's first output is its first token: no reasoning anywhere.
    assert reasoning_panel(RunView.of(synthetic_run(200))) is None
