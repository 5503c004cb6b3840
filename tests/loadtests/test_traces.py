"""Trace files (Mooncake JSONL, Azure and BurstGPT CSV) read into rows with the trace's own
times, and the prompts synthesised for them: equal hash ids are equal text."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from loadtests.errors import DatasetError, LoadSpecError
from loadtests.harness.trace_options import check_trace_users, trace_spec
from loadtests.harness.trace_outcome import trace_late, trace_warnings
from loadtests.workloads.tokenizer import CharSizing, load_tokenizer
from loadtests.workloads.trace_prompts import TracePrompts
from loadtests.workloads.traces import TraceRow, TraceSpec, for_worker, open_trace
from tests.loadtests.test_tokenizer import train_tokenizer

MOONCAKE = [
    {"timestamp": 0, "input_length": 40, "output_length": 5, "hash_ids": [0, 1, 2]},
    {"timestamp": 0, "input_length": 30, "output_length": 6, "hash_ids": [0, 3]},
    {"timestamp": 1500, "input_length": 20, "output_length": 7, "session_id": 4},
    {"timestamp": 2250, "input_length": 16, "output_length": 8, "hash_ids": [0]},
]
AZURE = """TIMESTAMP,ContextTokens,GeneratedTokens
2023-11-16 18:15:46.6805900,374,44
2023-11-16 18:15:50.9951690,396,109
2023-11-16 18:16:46.6805900,0,7
2023-11-16 18:17:00.0000000,2048,5
"""
BURSTGPT = """Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type
5,ChatGPT,472,18,490,Conversation log
45,ChatGPT,1087,230,1317,Conversation log
118,GPT-4,417,0,417,Conversation log
120.5,GPT-4,300,12,312,API log
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def mooncake(tmp_path: Path, rows: list[dict[str, Any]] = MOONCAKE) -> str:
    return write(tmp_path, "trace.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


def rows_of(path: str, **spec: Any) -> list[TraceRow]:
    return list(open_trace(TraceSpec(path, **spec)).iter_rows())


def error(path: str, **spec: Any) -> str:
    with pytest.raises(DatasetError) as caught:
        open_trace(TraceSpec(path, **spec))
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_mooncake_rows_keep_times_sizes_hash_ids_and_sessions(tmp_path: Path) -> None:
    path = mooncake(tmp_path)
    trace = open_trace(TraceSpec(path, speedup=2.0))
    rows = list(trace.iter_rows())

    assert (trace.format, trace.rows, trace.skipped, trace.span_s) == ("mooncake", 4, 0, 2.25)
    assert [r.offset_s for r in rows] == [0.0, 0.0, 0.75, 1.125]  # ms / 1000 / speed-up
    assert [(r.input_tokens, r.output_tokens) for r in rows] == [(40, 5), (30, 6), (20, 7), (16, 8)]
    assert [r.hash_ids for r in rows] == [(0, 1, 2), (0, 3), (), (0,)]
    assert [r.session_id for r in rows] == [None, None, "4", None]
    assert trace.describe()["replay_s"] == 1.125
    assert trace.median_sizes == (25.0, 6.5)


def test_azure_times_are_seconds_from_the_first_row_and_empty_rows_are_skipped(
    tmp_path: Path,
) -> None:
    trace = open_trace(TraceSpec(write(tmp_path, "azure.csv", AZURE)))
    rows = list(trace.iter_rows())

    assert (trace.format, trace.rows, trace.skipped) == ("azure", 3, 1)
    assert [round(r.offset_s, 6) for r in rows] == [0.0, 4.314579, 73.31941]
    assert [(r.input_tokens, r.output_tokens) for r in rows] == [(374, 44), (396, 109), (2048, 5)]
    assert [r.line for r in rows] == [2, 3, 5]


def test_burstgpt_window_and_speedup(tmp_path: Path) -> None:
    path = write(tmp_path, "burst.csv", BURSTGPT)
    every = rows_of(path)
    assert [(r.offset_s, r.input_tokens, r.output_tokens) for r in every] == [
        (0.0, 472, 18),
        (40.0, 1087, 230),
        (115.5, 300, 12),  # the failed row (0 response tokens) is skipped
    ]
    # Trace seconds 30 to 130 (from the first row), replayed 10 times faster.
    window = rows_of(path, start_s=30.0, duration_s=100.0, speedup=10.0)
    assert [(r.index, r.offset_s) for r in window] == [(0, 1.0), (1, 8.55)]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("a.csv", "Time,Tokens\n1,2\n", "line 1: unknown trace format (columns: Time, Tokens)"),
        ("a.csv", BURSTGPT.replace("45,", "soon,", 1), "line 3: Timestamp 'soon' must be"),
        ("a.csv", AZURE.replace("396", "-3"), 'line 3: "ContextTokens" must be a whole number'),
        ("a.csv", AZURE.replace("2023-11-16 18:15:50", "18:15"), "line 3: TIMESTAMP '18:15."),
        ("a.csv", BURSTGPT.replace("45,", "4,", 1), "line 3: its time is before the previous"),
        ("t.jsonl", '{"timestamp": 0, "input_length": 3}\n', 'line 1: "output_length" must be'),
        ("t.jsonl", '{"input_length": 3, "output_length": 1}\n', 'line 1: "timestamp" must be'),
        ("t.jsonl", '{"timestamp": 0, "input_length": 3, "output_length": 1}\n{"x\n', "line 2: "),
        ("t.jsonl", "", "the file is empty"),
    ],
)
def test_a_bad_trace_is_one_line_naming_the_file_the_line_and_the_fix(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    path = write(tmp_path, name, text)
    message = error(path)
    assert message.startswith(f"trace {path}"), message
    assert expected in message, message
    assert error(str(tmp_path / "none.jsonl")).endswith(
        "file not found; give a Mooncake JSONL trace (timestamp, input_length, output_length, "
        "hash_ids), an Azure LLM trace CSV (TIMESTAMP, ContextTokens, GeneratedTokens) or a "
        "BurstGPT CSV (Timestamp, Request tokens, Response tokens)"
    )


def test_an_empty_window_and_conflicting_options_are_refused(tmp_path: Path) -> None:
    assert "no requests in the window" in error(mooncake(tmp_path), start_s=10.0)
    base = {
        "trace": "t.jsonl",
        "arrival_rate": 0.0,
        "shape": "",
        "capacity_search": False,
        "dataset": "synthetic",
        "trace_speedup": 1.0,
        "trace_block_size": 512,
        "trace_start": "1m",
        "trace_duration": "",
    }
    assert trace_spec(SimpleNamespace(**base)) == TraceSpec("t.jsonl", 1.0, 60.0, None, 512)
    for bad, message in (
        ({"arrival_rate": 5.0}, "--trace sets the load itself; drop --arrival-rate"),
        ({"dataset": "x.jsonl"}, "--trace sets the prompts itself; drop --dataset"),
        ({"trace_speedup": 0.0}, "--trace-speedup 0.0 must be a number > 0"),
        ({"trace_duration": "soon"}, "--trace-duration 'soon' must be a duration"),
    ):
        with pytest.raises(LoadSpecError, match=message):
            trace_spec(SimpleNamespace(**{**base, **bad}))
    conversations = type("SessionUser", (), {"multi_turn": True})
    check_trace_users([type("ChatUser", (), {})])
    with pytest.raises(LoadSpecError, match="SessionUser holds conversations: replay it with"):
        check_trace_users([conversations])


def test_equal_hash_ids_are_identical_blocks_and_distinct_ones_share_no_prefix(
    tmp_path: Path,
) -> None:
    rows = rows_of(mooncake(tmp_path))
    prompts = TracePrompts(CharSizing(1.0), block_size=16, seed=0)
    texts = [prompts.prompt(r).text for r in rows]

    assert [len(t) for t in texts] == [40, 30, 20, 16]  # input_length x 1 char per token
    # Rows 0, 1 and 3 open with block 0: the same 16 characters; then they differ.
    assert texts[0][:16] == texts[1][:16] == texts[3] == prompts.block(0).text
    assert texts[0][16] != texts[1][16]
    assert (
        texts[0][16:32] == prompts.block(1).text and texts[1][16:30] == prompts.block(3).text[:14]
    )
    blocks = [prompts.block(i).text for i in range(4)]
    assert all(a[0] != b[0] or a[:2] != b[:2] for a in blocks for b in blocks if a is not b)
    assert texts[2].startswith("row 3:")  # no hash ids: text of its own
    # Blocks are the same text in another run of the same seed, and after the cache let go.
    small = TracePrompts(CharSizing(1.0), block_size=16, seed=0, cache_bytes=1)
    assert [small.prompt(r).text for r in rows] == texts
    assert TracePrompts(CharSizing(1.0), 16, seed=1).prompt(rows[0]).text != texts[0]


def test_trace_prompts_are_exactly_input_length_in_the_tokenizers_tokens(tmp_path: Path) -> None:
    tok = load_tokenizer(str(train_tokenizer(tmp_path)))
    lengths = [(1030, [5, 6, 7]), (700, [5, 8]), (40, [9]), (90, []), (100, [5])]
    rows = [TraceRow(i, i + 1, 0.0, n, 4, tuple(ids)) for i, (n, ids) in enumerate(lengths)]
    prompts = TracePrompts(tok, block_size=512, seed=0)
    texts = [prompts.prompt(r).text for r in rows]

    assert [tok.count(t) for t in texts] == [1030, 700, 40, 90, 100]
    assert tok.count(prompts.block(5).text) == 512
    assert texts[0][: len(prompts.block(5).text)] == texts[1][: len(prompts.block(5).text)]
    assert texts[4] == prompts.block(5).prefix(100)


def test_rows_are_split_across_workers_keeping_their_times(tmp_path: Path) -> None:
    rows = rows_of(mooncake(tmp_path))
    shares = [list(for_worker(iter(rows), i, 3)) for i in range(3)]
    assert sorted((r for s in shares for r in s), key=lambda r: r.index) == rows
    assert [[r.index for r in s] for s in shares] == [[0, 3], [1], [2]]


def test_a_replay_later_than_max_send_lag_is_saturated_and_says_why() -> None:
    kept = {"rows": 5, "sent": 5, "dropped": 0, "finished": True, "late": False}
    late = {**kept, "late": True, "send_lag_p99_ms": 31.5, "max_send_lag_ms": 10.0}
    cut = {**kept, "finished": False, "sent": 2}
    assert not trace_late([{"trace": kept}, {"cpu": {}}]) and trace_late([{"trace": late}])
    assert trace_warnings({"processes": [{"trace": kept}]}) == []
    (lateness,) = trace_warnings({"processes": [{"trace": late}, {"trace": kept}]})
    assert "31.5 ms late at p99 (--max-send-lag 10 ms)" in lateness
    (ended,) = trace_warnings({"processes": [{"trace": cut}]})
    assert ended.startswith("the run ended before the trace did: 2 of its 5 rows were due")
