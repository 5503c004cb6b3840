"""SSE edge cases through real Locust: what each awkward stream leaves in the recorded rows.

Each test starts the scripted server in one mode, runs a short closed-loop Locust test
against it (1 s: ~15 requests of ~60 ms; 2 s where every second request waits out a timeout)
and reads the run directory. Fault modes hit every second request
(``--fault-every 2``), so that the rows also show what happens *after* a failure: the next
request from the same user succeeds, on a fresh connection when the failed body was cut off
(a connection is never reused mid-body) and on the same one when it was read to its end.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.scripted_runs import ScriptedServer, run_locust
from benchmarks.scripted_server import ERROR_MESSAGE
from sla.files.run import CANCELLED_ERROR

pytestmark = pytest.mark.e2e

TTFT_MS, ITL_MS, TOKENS, FAULT_AFTER = 20.0, 5.0, 8, 3
FAST = ("--ttft-ms", str(TTFT_MS), "--itl-ms", str(ITL_MS), "--tokens", str(TOKENS))


@dataclass(frozen=True)
class Case:
    rows: pd.DataFrame  # in send order, without the request cancelled by the end of the test
    timings: pd.DataFrame  # the server's record of the same requests, row for row
    returncode: int
    out: str  # Locust's output, for assertion messages


def _run(
    tmp_path: Path,
    *server_flags: str,
    options: tuple[str, ...] = (),
    scenario: str = "chat",
    run_time: str = "1s",
) -> Case:
    with ScriptedServer(*FAST, *server_flags) as server:
        # No report.html (~0.5 s a run): the rows are what these tests read.
        run = run_locust(
            server.url, tmp_path, *options, "--no-report", scenario=scenario, run_time=run_time
        )
        path = "/v1/chat/completions" if scenario == "chat" else "/v1/completions"
        timings = pd.DataFrame(server.timings(path))
    rows = run.rows
    errors = rows["error"].dropna()
    assert not errors.str.contains("[\r\n]").any(), "every error is one line"
    keep = (rows["error"] != CANCELLED_ERROR).to_numpy(dtype=bool, na_value=True)
    assert keep[:-1].all(), "only the request in flight at the end is cancelled"
    # Every request the server saw is a row, and every finished row a request it saw. The
    # one cut off by the end of the test may have been cut before the server's handler ran
    # (aiohttp drops a request whose connection closed before it was dispatched).
    finished = int(keep.sum())
    assert len(timings) in {len(rows), finished}, run.describe()
    return Case(rows[keep], timings.iloc[:finished], run.returncode, run.describe())


def _gaps(rows: pd.DataFrame) -> list[list[float]]:
    return [list(g) for g in rows["chunk_gaps_ms"]]


# --- streams that are fine, however awkwardly they arrive ---------------------------------


def _all_ok(case: Case, *, chunks: int = TOKENS) -> pd.DataFrame:
    rows = case.rows
    assert len(rows) >= 3, case.out
    assert rows["ok"].all(), rows[["status", "error"]].to_string()
    assert case.returncode == 0, case.out  # no failure reached Locust's statistics
    assert (rows["chunk_count"] == chunks).all()
    assert (rows["ttft_ms"] >= TTFT_MS).all()
    return rows


@pytest.mark.parametrize("scenario", ["chat", "completions"])
def test_events_split_across_writes_even_mid_utf8_character(tmp_path: Path, scenario: str) -> None:
    # A BOM cut in two, "da|ta:", "h\xe2|\x82\xac" and "\n|\n": one token lost or a decode
    # error would show in chunk_count or error.
    rows = _all_ok(_run(tmp_path, "--mode", "split", scenario=scenario))
    assert (rows["output_tokens"] == TOKENS).all()
    assert (rows["output_tokens_source"] == "usage").all()


def test_several_events_in_one_write_share_a_timestamp(tmp_path: Path) -> None:
    itl_ms = 15.0  # the two writes 60 ms apart: a busy host does not merge their reads
    rows = _all_ok(_run(tmp_path, "--mode", "burst", "--events-per-write", "4", "--itl-ms", "15"))
    gaps = np.array(_gaps(rows))
    # 8 tokens in 2 writes of 4: three 0.0 gaps inside each write, one between them.
    assert (gaps[:, [0, 1, 2, 4, 5, 6]] == 0.0).all()
    assert abs(float(np.median(gaps[:, 3])) - 4 * itl_ms) < 2.0


def test_keep_alive_comments_are_not_tokens(tmp_path: Path) -> None:
    # Comments come at half the TTFT and half of each ITL, and inside every event.
    rows = _all_ok(_run(tmp_path, "--mode", "keepalive"))
    gaps = np.concatenate(_gaps(rows))
    assert len(gaps) == len(rows) * (TOKENS - 1)
    assert abs(float(np.median(gaps)) - ITL_MS) < 1.0  # not ITL / 2: comments are no chunks


def test_without_usage_output_tokens_are_counted_from_chunks(tmp_path: Path) -> None:
    rows = _all_ok(_run(tmp_path, "--mode", "no-usage"))
    assert (rows["output_tokens"] == TOKENS).all()
    assert (rows["output_tokens_source"] == "chunks").all()


def test_usage_tokens_not_chunks_drive_tpot(tmp_path: Path) -> None:
    rows = _all_ok(_run(tmp_path, "--tokens-per-chunk", "2"), chunks=TOKENS // 2)
    assert (rows["output_tokens"] == TOKENS).all()
    assert (rows["output_tokens_source"] == "usage").all()
    # 4 chunks ITL apart carry 8 tokens: TPOT spreads the time after the first chunk over
    # 8 - 1 tokens, (4 - 1) * ITL / 7 ~ 2.1 ms, where counting chunks would give ITL (5 ms).
    # Each row is checked against its own recorded times, so a busy machine (longer gaps)
    # cannot fail it; the median only has to be far from the chunk-based figure.
    after_first_ms = (rows["done_at"] - rows["first_token_at"]) * 1000.0
    assert np.allclose(rows["tpot_ms"], after_first_ms / (TOKENS - 1))
    expected_tpot_ms = (TOKENS // 2 - 1) * ITL_MS / (TOKENS - 1)
    assert abs(float(np.median(rows["tpot_ms"])) - expected_tpot_ms) < ITL_MS / 4


# --- failures: recorded with their reason, partial timings kept, and the user recovers -----


def _faulty_alternate(case: Case) -> pd.DataFrame:
    """Every second request is faulty; the others (the ones after a fault) succeed."""
    rows, faulty = case.rows, case.timings["faulty"].to_numpy(dtype=bool)
    assert faulty.sum() >= 2, case.out
    assert case.returncode == 1, case.out  # the failures reached Locust's statistics
    assert faulty.tolist() == [i % 2 == 1 for i in range(len(faulty))]
    ok = rows["ok"].to_numpy(dtype=bool)
    assert (ok == ~faulty).all(), rows[["status", "error"]].to_string()
    assert (rows.loc[~faulty, "chunk_count"] == TOKENS).all()
    return rows[faulty]


def _connections(timings: pd.DataFrame) -> tuple[set[bool], set[bool]]:
    """Whether each request reused its predecessor's connection, after an ok request and
    after a faulty one."""
    ports, faulty = timings["peer_port"].tolist(), timings["faulty"].tolist()
    after_ok = {ports[i] == ports[i - 1] for i in range(1, len(ports)) if not faulty[i - 1]}
    after_fault = {ports[i] == ports[i - 1] for i in range(1, len(ports)) if faulty[i - 1]}
    return after_ok, after_fault


@pytest.mark.parametrize(
    ("mode", "error", "error_class"),
    [
        (
            "error-mid",
            f"stream error: {ERROR_MESSAGE} (type=server_error, code=500)",
            "server_error_event",
        ),
        (
            "error-event",
            f"stream error: {ERROR_MESSAGE} (type=server_error, code=500)",
            "server_error_event",
        ),
        ("early-end", "stream ended before [DONE]", "stream_incomplete"),
    ],
)
def test_a_stream_that_fails_mid_body_keeps_its_partial_timings(
    tmp_path: Path, mode: str, error: str, error_class: str
) -> None:
    flags = ("--mode", mode, "--fault-every", "2", "--fault-after", str(FAULT_AFTER))
    case = _run(tmp_path, *flags)
    bad = _faulty_alternate(case)
    assert (bad["status"] == 200).all()
    assert (bad["error"] == error).all(), bad["error"].tolist()
    assert (bad["error_class"] == error_class).all(), bad["error_class"].tolist()
    assert (bad["chunk_count"] == FAULT_AFTER).all()
    assert all(len(g) == FAULT_AFTER - 1 for g in _gaps(bad))
    assert (bad["ttft_ms"] >= TTFT_MS).all()
    # The body was read to its end, so the connection stays in use.
    assert _connections(case.timings) == ({True}, {True})


@pytest.mark.parametrize(
    ("mode", "options", "error", "cut_after_ms"),
    [
        ("stall", ("--idle-timeout", "0.5"), "timeout: no data for 0.5s", 500.0),
        ("slow-total", ("--request-timeout", "0.5"), "timeout: no complete answer in 0.5s", 500.0),
    ],
)
def test_timeouts_cut_the_request_short_and_drop_its_connection(
    tmp_path: Path, mode: str, options: tuple[str, ...], error: str, cut_after_ms: float
) -> None:
    flags = ("--mode", mode, "--fault-every", "2", "--fault-after", str(FAULT_AFTER))
    # Two faulty requests (the 2nd and 4th) are cut by ~1.2 s: 2 s leaves room for a third.
    case = _run(tmp_path, *flags, options=options, run_time="2s")
    bad = _faulty_alternate(case)
    assert (bad["error"] == error).all(), bad["error"].tolist()
    expected_class = "idle_timeout" if mode == "stall" else "total_timeout"
    assert (bad["error_class"] == expected_class).all(), bad["error_class"].tolist()
    assert (bad["status"] == 200).all()
    assert (bad["ttft_ms"] >= TTFT_MS).all()
    if mode == "stall":  # silent after FAULT_AFTER chunks: the idle clock starts there
        assert (bad["chunk_count"] == FAULT_AFTER).all()
        silent_from = case.timings.loc[bad.index, "last_token_at"]
        waited_ms = (bad["done_at"] - silent_from) * 1000.0
    else:  # tokens every ITL until the total timeout
        assert (bad["chunk_count"] >= (cut_after_ms - TTFT_MS) / ITL_MS * 0.8).all()
        waited_ms = bad["latency_ms"]
    assert (waited_ms >= cut_after_ms).all(), waited_ms.tolist()
    assert (waited_ms < cut_after_ms + 250.0).all(), waited_ms.tolist()  # not hanging
    assert _connections(case.timings) == ({True}, {False})


def test_a_dropped_connection_is_an_error_and_the_next_request_reconnects(
    tmp_path: Path,
) -> None:
    flags = ("--mode", "drop", "--fault-every", "2", "--fault-after", str(FAULT_AFTER))
    case = _run(tmp_path, *flags)
    bad = _faulty_alternate(case)
    assert (bad["error"] == "connection closed before the body was complete").all(), bad[
        "error"
    ].tolist()
    assert (bad["error_class"] == "closed_mid_body").all()
    assert (bad["chunk_count"] == FAULT_AFTER).all()
    assert _connections(case.timings) == ({True}, {False})


def test_http_500_with_an_openai_error_body(tmp_path: Path) -> None:
    case = _run(tmp_path, "--mode", "http-error", "--fault-every", "2")
    bad = _faulty_alternate(case)
    assert (bad["status"] == 500).all()
    assert (bad["error"] == f"HTTP 500: {ERROR_MESSAGE}").all(), bad["error"].tolist()
    assert (bad["error_class"] == "http_5xx").all()
    assert (case.rows["backoff_ms"] == 0).all()  # a 500 is an answer: no back-off
    assert bad["first_token_at"].isna().all()
    assert (bad["chunk_count"] == 0).all()
    assert _connections(case.timings) == ({True}, {True})
