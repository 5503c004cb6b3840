"""A target's ``usage`` with bad counts, streamed or not: the answer is malformed (an error
row of the protocol's malformed class whose message names the field and the value), none of
its counts is kept, and the row it gives is one the run directory can hold. Good counts,
0 and null (not reported) included, are kept as before."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from loadtests.client.measure import _answered, _Ids, _streamed
from loadtests.client.openai_stream import MAX_TOKEN_COUNT, StreamAccumulator, usage_counts
from loadtests.client.protocols import PreparedRequest, read_answer
from loadtests.recording.recorder import RequestRecorder, start_run_json
from sla.files.run import REQUESTS_SCHEMA, RequestRecord, load_run

STREAMED = PreparedRequest("chat", "POST", "/v1/chat/completions", b"{}", "openai_sse", 16)
JSON = PreparedRequest("chat", "POST", "/v1/chat/completions", b"{}", "openai_json", 16)
TOKEN = json.dumps({"choices": [{"index": 0, "delta": {"content": "ab"}, "finish_reason": None}]})

# What the exploratory tester's server sent, and a few more: each usage, and its message.
BAD_USAGE: list[tuple[dict[str, Any] | str, str]] = [
    (
        {"completion_tokens": "many", "prompt_tokens": None},
        'usage.completion_tokens must be a non-negative integer, got "many"',
    ),
    (
        {"completion_tokens": 2, "prompt_tokens": "10"},
        'usage.prompt_tokens must be a non-negative integer, got "10"',
    ),
    (
        {"completion_tokens": 2, "prompt_tokens": 3_000_000_000},
        "usage.prompt_tokens must be at most 2147483647 (the run directory holds int32 "
        "counts), got 3000000000",
    ),
    (
        {"completion_tokens": 2, "completion_tokens_details": {"reasoning_tokens": 5_000_000_000}},
        "usage.completion_tokens_details.reasoning_tokens must be at most 2147483647",
    ),
    (
        {"completion_tokens": True},
        "usage.completion_tokens must be a non-negative integer, got true",
    ),
    ({"completion_tokens": -4}, "usage.completion_tokens must be a non-negative integer, got -4"),
    ({"completion_tokens": 2.5}, "usage.completion_tokens must be a non-negative integer, got 2.5"),
    ({"completion_tokens": 3e9}, "usage.completion_tokens must be at most 2147483647"),
    (
        {"completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": "x"}},
        'usage.prompt_tokens_details.cached_tokens must be a non-negative integer, got "x"',
    ),
    (
        {"completion_tokens": 2, "completion_tokens_details": {"reasoning_tokens": -5}},
        "usage.completion_tokens_details.reasoning_tokens must be a non-negative integer, got -5",
    ),
    ({"completion_tokens": 2, "prompt_tokens_details": 7}, "usage.prompt_tokens_details must be"),
    ("y", 'usage must be an object, got "y"'),
]
IDS = [
    "completion_many",
    "prompt_string",
    "prompt_3e9",
    "reasoning_5e9",
    "completion_true",
    "completion_negative",
    "completion_float",
    "completion_whole_float_3e9",
    "cached_string",
    "reasoning_negative",
    "details_not_object",
    "usage_not_object",
]

GOOD_USAGE: list[tuple[dict[str, Any] | None, tuple[int | None, ...]]] = [
    ({"prompt_tokens": 0, "completion_tokens": 0}, (0, 0, None, None)),
    ({"prompt_tokens": 9.0, "completion_tokens": 3.0}, (9, 3, None, None)),  # whole floats
    ({"prompt_tokens": None, "completion_tokens": None}, (None, None, None, None)),
    ({}, (None, None, None, None)),
    (None, (None, None, None, None)),
    (
        {
            "prompt_tokens": MAX_TOKEN_COUNT,
            "completion_tokens": 3,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": None},
        },
        (MAX_TOKEN_COUNT, 3, 0, None),
    ),
    (
        {"prompt_tokens": 5, "completion_tokens": 3, "prompt_tokens_details": None},
        (5, 3, None, None),
    ),
]


def _stream(usage: object, *, done: bool = True) -> RequestRecord:
    acc = StreamAccumulator()
    acc.on_events([TOKEN], 1.1)
    acc.on_events([TOKEN], 1.2)
    tail = [json.dumps({"choices": [], "usage": usage})]
    acc.on_events([*tail, "[DONE]"] if done else tail, 1.3)
    return _streamed(
        _Ids(STREAMED, "r1", "w", math.nan, 1.0), 200, None, acc.finish(1.3, stream_ended=True)
    )


def _json_answer(usage: object) -> RequestRecord:
    doc = {"choices": [{"index": 0, "message": {"content": "hello"}}], "usage": usage}
    return _answered(_Ids(JSON, "r1", "w", math.nan, 1.0), 200, json.dumps(doc).encode(), 1.3)


def _holds(rec: RequestRecord) -> None:
    """The row converts to the run directory's schema, column by column."""
    for field in REQUESTS_SCHEMA:
        pa.array([getattr(rec, field.name)], type=field.type)


@pytest.mark.parametrize(("usage", "message"), BAD_USAGE, ids=IDS)
def test_a_bad_usage_count_makes_a_stream_malformed_naming_the_field(
    usage: object, message: str
) -> None:
    rec = _stream(usage)

    assert rec.error_class == "malformed_sse"
    assert rec.error is not None and rec.error.startswith(message), rec.error
    assert (rec.input_tokens, rec.cached_tokens, rec.reasoning_tokens) == (16, None, None)
    assert (rec.output_tokens, rec.output_tokens_source) == (2, "chunks")  # not the usage's
    assert (rec.status, rec.chunk_count) == (200, 2)
    _holds(rec)


@pytest.mark.parametrize(("usage", "message"), BAD_USAGE, ids=IDS)
def test_a_bad_usage_count_makes_a_json_answer_malformed_naming_the_field(
    usage: object, message: str
) -> None:
    rec = _json_answer(usage)

    assert rec.error_class == "malformed_body"
    assert rec.error is not None and rec.error.startswith(message), rec.error
    assert (rec.input_tokens, rec.output_tokens, rec.output_tokens_source) == (16, None, None)
    assert (rec.cached_tokens, rec.reasoning_tokens) == (None, None)
    _holds(rec)
    body = json.dumps({"data": [{"embedding": [0.1]}], "usage": usage}).encode()
    answer = read_answer("embeddings", 200, body)  # the same reading of usage
    assert answer.error_class == "malformed_body" and answer.input_tokens is None
    assert answer.error is not None and answer.error.startswith(message)


@pytest.mark.parametrize(("usage", "counts"), GOOD_USAGE)
def test_good_usage_counts_are_kept_and_null_is_not_reported(
    usage: dict[str, Any] | None, counts: tuple[int | None, ...]
) -> None:
    assert usage_counts(usage) == counts
    prompt, completion, cached, reasoning = counts
    for rec in (_stream(usage), _json_answer(usage)):
        assert rec.error is None and rec.error_class is None, rec.error
        assert rec.input_tokens == (16 if prompt is None else prompt)
        assert (rec.cached_tokens, rec.reasoning_tokens) == (cached, reasoning)
        _holds(rec)
    streamed, answered = _stream(usage), _json_answer(usage)
    assert streamed.output_tokens == (2 if completion is None else completion)
    assert answered.output_tokens == completion


def test_a_stream_that_failed_otherwise_keeps_its_error_and_no_bad_count() -> None:
    rec = _stream({"prompt_tokens": "10", "completion_tokens": 2}, done=False)

    assert rec.error_class == "stream_incomplete" and rec.error == "stream ended before [DONE]"
    assert (rec.input_tokens, rec.output_tokens, rec.output_tokens_source) == (16, 2, "chunks")


def test_the_last_usage_is_the_one_checked() -> None:
    """Servers that send usage with every chunk (vLLM's continuous usage stats): the last
    one counts, and it alone is checked, once, at the end of the answer."""
    acc = StreamAccumulator()
    acc.on_events([json.dumps({"choices": [], "usage": {"completion_tokens": "soon"}})], 1.1)
    acc.on_events([json.dumps({"choices": [], "usage": {"completion_tokens": 4}}), "[DONE]"], 1.2)
    result = acc.finish(1.2, stream_ended=True)
    assert (result.error, result.output_tokens, result.output_tokens_source) == (None, 4, "usage")


def test_the_bound_is_the_token_columns_type() -> None:
    for name in ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens"):
        assert REQUESTS_SCHEMA.field(name).type == pa.int32()
    assert MAX_TOKEN_COUNT == 2**31 - 1


def test_rows_of_bad_usage_record_and_load(tmp_path: Path) -> None:
    """Every bad usage above in one batch, between good rows: all of them are written."""
    start_run_json(tmp_path, {"scenario": "test", "started_at": 1.0})
    recorder = RequestRecorder(tmp_path)
    rows = [_stream(usage) for usage, _ in BAD_USAGE] + [_json_answer(u) for u, _ in BAD_USAGE]
    good = [_stream({"prompt_tokens": 3, "completion_tokens": 2}) for _ in range(3)]
    for rec in [good[0], *rows, *good[1:]]:
        recorder.add(rec)
    assert recorder.close() == len(rows) + 3
    df = load_run(tmp_path).requests
    assert df["error_class"].value_counts().to_dict() == {
        "malformed_sse": len(BAD_USAGE),
        "malformed_body": len(BAD_USAGE),
    }
