"""A Mooncake trace replayed against the real server: every row sent once, at the trace's own
times (divided by the speed-up) with those times as ``scheduled_at``, sends on time, the run
ended by the trace, and run.json saying what was replayed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sla.files.run import load_run
from tests.loadtests.conftest import SMALL_LOAD, RunLocust
from tests.server_process import ServerProcess

pytestmark = pytest.mark.e2e

ROWS = 30


@pytest.mark.parametrize("speedup", [1.0, 10.0])
def test_a_mooncake_trace_is_replayed_at_its_own_times(
    run_locust: RunLocust, reference_server: ServerProcess, tmp_path: Path, speedup: float
) -> None:
    # 30 rows over 1.2 s of replay, in bursts (pairs share a time), sharing their first block.
    times_ms = [round(i // 2 * 1200 * speedup / (ROWS // 2)) for i in range(ROWS)]
    trace = tmp_path / "trace.jsonl"
    rows = [
        {"timestamp": t, "input_length": 40 + i, "output_length": 4, "hash_ids": [0, 1 + i]}
        for i, t in enumerate(times_ms)
    ]
    trace.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    result = run_locust(
        "completions",
        *("--host", reference_server.url, "-u", "1", "-r", "1", "-t", "60s", *SMALL_LOAD),
        *("--trace", str(trace), "--trace-speedup", f"{speedup:g}", "--trace-block-size", "16"),
        # The bound this test holds the lag to (its max below): a busy CI machine's p99 may
        # pass the default 10 ms; the saturation rule has tests of its own (test_traces.py).
        *("--max-send-lag", "50"),
    )

    assert result.code == 0, result.output
    assert "slabench: the trace is replayed: ending the run" in result.output
    run = load_run(result.run_dir)
    df = run.requests.sort_values("scheduled_at")
    assert len(df) == ROWS and (df["status"] == 200).all()
    # The prompts are the rows' lengths (1 byte = 1 token on the reference server), + its
    # BOS and the run's 7-character prompt nonce word.
    assert sorted(df["input_tokens"]) == [40 + 1 + 7 + i for i in range(ROWS)]
    assert (df["output_tokens"] == 4).all()
    offsets = df["scheduled_at"].to_numpy() - df["scheduled_at"].min()
    np.testing.assert_allclose(offsets, np.array(times_ms) / 1000.0 / speedup, atol=1e-6)
    lag_ms = (df["sent_at"] - df["scheduled_at"]).to_numpy() * 1000.0
    assert (lag_ms >= 0).all()
    # On time: within a few ms (generous for a busy 2-core CI machine).
    assert float(np.median(lag_ms)) < 5.0 and float(lag_ms.max()) < 50.0, lag_ms
    meta = run.meta
    assert meta["load_profile"]["mode"] == "trace"
    described = meta["workload"]["trace"]
    assert (described["format"], described["rows"], described["speedup"]) == (
        "mooncake",
        ROWS,
        speedup,
    )
    assert meta["workload"]["tokenizer"] == "chars-per-token 1"
    # The sizes asked for are the trace's (its median row), not a dataset's.
    assert meta["requested"]["input_tokens"] == 40 + 14.5 + 7
    assert meta["requested"]["output_tokens"] == 4
    (process,) = meta["generator"]["processes"]
    replayed = process["trace"]
    assert (replayed["rows"], replayed["sent"], replayed["finished"]) == (ROWS, ROWS, True)
    assert replayed["late"] is False and meta["generator"]["saturated"] is False
