"""What a streamed or non-streamed OpenAI answer leaves in its record: the first output,
and the cached and reasoning tokens of the server's usage (null when it has none)."""

from __future__ import annotations

import json
import math

from loadtests.client.measure import _answered, _Ids, _streamed
from loadtests.client.openai_stream import StreamAccumulator
from loadtests.client.protocols import PreparedRequest, read_answer

REQ = PreparedRequest("chat", "POST", "/v1/chat/completions", b"{}", "openai_sse", 10)
IDS = _Ids(REQ, "r1", "w", math.nan, 1.0)
USAGE = {
    "prompt_tokens": 10,
    "completion_tokens": 3,
    "prompt_tokens_details": {"cached_tokens": 8},
    "completion_tokens_details": {"reasoning_tokens": 2},
}


def _delta(**fields: str) -> str:
    return json.dumps({"choices": [{"index": 0, "delta": fields, "finish_reason": None}]})


def test_a_streamed_record_has_its_first_output_and_usage_details() -> None:
    acc = StreamAccumulator()
    acc.on_events([_delta(role="assistant", content="")], 1.1)
    acc.on_events([_delta(reasoning="")], 1.2)  # a reasoning token whose text is empty
    acc.on_events([_delta(reasoning="x")], 1.3)
    acc.on_events([_delta(content="ok")], 1.5)
    acc.on_events([json.dumps({"choices": [], "usage": USAGE}), "[DONE]"], 1.6)
    rec = _streamed(IDS, 200, None, acc.finish(1.6, stream_ended=True))
    assert (rec.first_token_at, rec.first_output_at, rec.chunk_count) == (1.2, 1.5, 3)
    assert (rec.cached_tokens, rec.reasoning_tokens, rec.input_tokens) == (8, 2, 10)


def test_a_record_without_usage_details_has_nulls() -> None:
    acc = StreamAccumulator()
    acc.on_events([_delta(reasoning_content="")], 1.2)
    acc.on_events([_delta(reasoning_content="x")], 1.25)
    usage = {"prompt_tokens": 10, "completion_tokens": 2}
    acc.on_events([json.dumps({"choices": [], "usage": usage}), "[DONE]"], 1.3)
    rec = _streamed(IDS, 200, None, acc.finish(1.3, stream_ended=True))
    assert (rec.cached_tokens, rec.reasoning_tokens, rec.first_token_at) == (None, None, 1.2)
    assert math.isnan(rec.first_output_at)  # reasoning only: no output


def test_a_non_streamed_answer_has_its_usage_details() -> None:
    body = json.dumps({"choices": [{"message": {"content": "ok"}}], "usage": USAGE}).encode()
    answer = read_answer("openai_json", 200, body)
    assert (answer.cached_tokens, answer.reasoning_tokens, answer.text) == (8, 2, "ok")
    rec = _answered(IDS, 200, body, 2.0)
    assert (rec.cached_tokens, rec.reasoning_tokens, rec.output_tokens) == (8, 2, 3)
    odd = {"prompt_tokens_details": {"cached_tokens": "8"}, "completion_tokens_details": 2}
    answer = read_answer("openai_json", 200, json.dumps({"choices": [], "usage": odd}).encode())
    assert (answer.cached_tokens, answer.reasoning_tokens) == (None, None)
    # Kept by no row: the answer is malformed (every bad count: test_bad_usage.py).
    assert answer.error_class == "malformed_body"
