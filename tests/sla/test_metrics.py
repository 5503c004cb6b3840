from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sla.files.jsonio import write_json_atomic
from sla.files.run import (
    CANCELLED_ERROR,
    REQUEST_COLUMNS,
    REQUESTS_SCHEMA,
    UNSENT_ERROR,
    Run,
    load_run,
)
from sla.metrics import itl_ms, not_cancelled, throughput, with_request_metrics
from sla.reading import read_run

NAN = float("nan")
T0 = 1764400000.0


def _row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "request_id": "r",
        "worker": "w0",
        "endpoint": "/v1/chat/completions",
        "scheduled_at": NAN,
        "sent_at": T0,
        "first_token_at": T0 + 0.1,
        "done_at": T0 + 0.5,
        "status": 200,
        "error": None,
        "input_tokens": 10,
        "output_tokens": 5,
        "output_tokens_source": "usage",
        "chunk_count": 5,
        "chunk_gaps_ms": [100.0, 100.0, 100.0, 100.0],
        "error_class": None,  # derived from status and error when read
        "backoff_ms": 0.0,
        "session_id": None,
        "turn": None,
        "cached_tokens": None,
        "reasoning_tokens": None,
        "first_output_at": T0 + 0.1,
        "server_queue_ms": NAN,
        "server_prefill_ms": NAN,
        "server_decode_ms": NAN,
        "server_total_ms": NAN,
        "server_timing_source": None,
        "client_processing_ms": NAN,
    }
    row.update(changes)
    return row


def _frame(rows: list[dict[str, Any]], tmp_path: Path) -> pd.DataFrame:
    """Go through the real file format so that the dtypes are those that readers get."""
    write_json_atomic(tmp_path / "run.json", {"schema_version": 1})
    columns = {name: [r[name] for r in rows] for name in REQUEST_COLUMNS}
    pq.write_table(pa.table(columns, schema=REQUESTS_SCHEMA), tmp_path / "requests.parquet")
    return load_run(tmp_path).requests


def test_open_loop_starts_at_the_schedule(tmp_path: Path) -> None:
    # Sent 0.2 s late: latency and TTFT include the lag (no coordinated omission).
    row = _row(scheduled_at=T0, sent_at=T0 + 0.2, first_token_at=T0 + 0.3, done_at=T0 + 1.0)
    df = with_request_metrics(_frame([row], tmp_path))

    assert df["start"].iloc[0] == T0
    assert df["latency_ms"].iloc[0] == pytest.approx(1000.0)
    assert df["ttft_ms"].iloc[0] == pytest.approx(300.0)
    assert df["schedule_lag_ms"].iloc[0] == pytest.approx(200.0)
    assert df["tpot_ms"].iloc[0] == pytest.approx(700.0 / 4)


def test_closed_loop_starts_at_the_send(tmp_path: Path) -> None:
    row = _row(sent_at=T0 + 0.2, first_token_at=T0 + 0.3, done_at=T0 + 1.0, output_tokens=8)
    df = with_request_metrics(_frame([row], tmp_path))

    assert df["start"].iloc[0] == T0 + 0.2
    assert df["latency_ms"].iloc[0] == pytest.approx(800.0)
    assert df["ttft_ms"].iloc[0] == pytest.approx(100.0)
    assert math.isnan(df["schedule_lag_ms"].iloc[0])
    assert df["tpot_ms"].iloc[0] == pytest.approx(700.0 / 7)


def test_tpot_needs_two_tokens_and_a_first_token(tmp_path: Path) -> None:
    rows = [
        _row(output_tokens=1),
        _row(output_tokens=0),
        _row(output_tokens=None),
        _row(first_token_at=NAN, output_tokens=5),
        _row(output_tokens=2),
    ]
    tpot = with_request_metrics(_frame(rows, tmp_path))["tpot_ms"].to_numpy()

    assert np.isnan(tpot[:4]).all()
    assert tpot[4] == pytest.approx(400.0)


def test_ok_means_2xx_and_no_error(tmp_path: Path) -> None:
    rows = [
        _row(status=200),
        _row(status=204),
        _row(status=200, error="stream cut"),
        _row(status=429),
        _row(status=0, error="dropped: in-flight bound", sent_at=NAN, scheduled_at=T0),
        _row(status=302),
    ]
    df = with_request_metrics(_frame(rows, tmp_path))

    assert df["ok"].tolist() == [True, True, False, False, False, False]
    assert math.isnan(df["schedule_lag_ms"].iloc[4])  # a dropped send was never sent


def test_metrics_accept_a_hand_built_frame() -> None:
    df = pd.DataFrame([_row(output_tokens=3), _row(output_tokens=None, error="boom")])

    out = with_request_metrics(df)

    assert out["tpot_ms"].iloc[0] == pytest.approx(200.0)
    assert out["ok"].tolist() == [True, False]
    assert "tpot_ms" not in df.columns  # input not modified


def test_itl_pools_every_gap_of_ok_rows(tmp_path: Path) -> None:
    rows = [
        _row(chunk_gaps_ms=[10.0, 20.0]),
        _row(chunk_gaps_ms=[]),
        _row(chunk_gaps_ms=None, chunk_count=0),
        _row(chunk_gaps_ms=[30.0, 40.0, 50.0]),
        _row(chunk_gaps_ms=[999.0], status=500, error="HTTP 500"),
    ]
    df = _frame(rows, tmp_path)

    ok_gaps = itl_ms(df)
    all_gaps = itl_ms(df, only_ok=False)

    assert ok_gaps.dtype == np.float64
    assert ok_gaps.tolist() == [10.0, 20.0, 30.0, 40.0, 50.0]
    assert all_gaps.tolist() == [10.0, 20.0, 30.0, 40.0, 50.0, 999.0]
    # pooled, not averaged per request: the mean of 5 gaps, not of 2 request means
    assert ok_gaps.mean() == pytest.approx(30.0)


def test_itl_of_a_hand_built_frame_and_of_no_rows() -> None:
    df = pd.DataFrame([_row(chunk_gaps_ms=(1.5, 2.5)), _row(chunk_gaps_ms=[3.5])])

    assert itl_ms(df).tolist() == [1.5, 2.5, 3.5]
    assert itl_ms(df.iloc[:0]).size == 0


def _measured(df: pd.DataFrame, meta: dict[str, Any], path: Path) -> pd.DataFrame:
    return read_run(Run(path, meta, df, None)).measured


def test_measured_excludes_warm_up_and_requests_after_the_end(tmp_path: Path) -> None:
    rows = [_row(request_id=f"r{i}", sent_at=T0 + i, done_at=T0 + i + 0.5) for i in range(6)]
    df = _frame(rows, tmp_path)
    meta = {"started_at": T0, "measured_from": T0 + 2, "ended_at": T0 + 4}

    assert _measured(df, meta, tmp_path)["request_id"].tolist() == ["r2", "r3", "r4"]
    # No bound in run.json: the first request starts the window, the last completion ends it.
    assert _measured(df, {}, tmp_path)["request_id"].tolist() == [f"r{i}" for i in range(6)]
    assert read_run(Run(tmp_path, meta, df, None)).window_s == 2.0
    assert read_run(Run(tmp_path, {"started_at": T0, "ended_at": T0 + 4}, df, None)).window_s == 4.0


def test_measured_uses_the_schedule_in_open_loop(tmp_path: Path) -> None:
    # Scheduled inside warm-up but sent after it: it belongs to warm-up.
    rows = [_row(request_id="late", scheduled_at=T0 + 0.9, sent_at=T0 + 1.5, done_at=T0 + 2.0)]
    df = _frame(rows, tmp_path)

    assert _measured(df, {"measured_from": T0 + 1.0, "ended_at": T0 + 3.0}, tmp_path).empty
    assert len(_measured(df, {"measured_from": T0 + 0.5, "ended_at": T0 + 3.0}, tmp_path)) == 1


def test_throughput_over_the_window(tmp_path: Path) -> None:
    rows = [
        _row(output_tokens=10),
        _row(output_tokens=30),
        _row(output_tokens=None),  # ok but no token count: contributes no tokens
        _row(status=500, error="HTTP 500", output_tokens=7),
    ]
    rates = throughput(_frame(rows, tmp_path), 2.0)

    assert rates == {"requests_per_s": 1.5, "output_tokens_per_s": 20.0, "errors_per_s": 0.5}
    with pytest.raises(ValueError, match="window_s"):
        throughput(pd.DataFrame([_row()]), 0.0)
    # No ended_at and no completed request: the window has no end, so no length.
    assert read_run(Run(tmp_path, {"started_at": T0}, _frame([], tmp_path), None)).window_s is None


def test_both_cancelled_texts_mark_a_row_cancelled_and_nothing_else_does() -> None:
    # In flight when the test stopped, or an open-loop send the stop killed before it left:
    # both are cancelled (in no metric); a text that only mentions cancelling is an error.
    errors = [
        CANCELLED_ERROR,
        UNSENT_ERROR,
        None,
        "dropped: --max-inflight requests were already in flight at the scheduled time",
        "stream error: the server cancelled the request",
    ]
    rows = pd.DataFrame({"error": errors})
    assert not_cancelled(rows).tolist() == [False, False, True, True, True]
    assert not_cancelled(pd.DataFrame({"error": [None, None]})).tolist() == [True, True]
