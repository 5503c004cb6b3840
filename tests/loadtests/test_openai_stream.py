from __future__ import annotations

import json
from typing import Any

from loadtests.client.openai_stream import StreamAccumulator, StreamResult
from loadtests.client.sse import SSEEvent, SSEParser

DONE = SSEEvent("[DONE]")


def ev(payload: dict[str, Any], event: str | None = None) -> SSEEvent:
    return SSEEvent(json.dumps(payload), event)


def chat(
    content: str | None = None,
    *,
    role: str | None = None,
    finish_reason: str | None = None,
    usage: dict[str, int] | None = None,
    **delta_fields: Any,
) -> SSEEvent:
    delta: dict[str, Any] = dict(delta_fields)
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    payload: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    if usage is not None:
        payload["usage"] = usage
    return ev(payload)


def usage_only(prompt: int, completion: int) -> SSEEvent:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    return ev({"object": "chat.completion.chunk", "choices": [], "usage": usage})


def run(timed: list[tuple[float, list[SSEEvent]]], end: float, ended: bool = True) -> StreamResult:
    acc = StreamAccumulator()
    for t, events in timed:
        acc.on_events(events, t)
    return acc.finish(end, stream_ended=ended)


def test_typical_chat_stream() -> None:
    result = run(
        [
            (1.0, [chat("", role="assistant")]),
            (1.5, [chat("Hel")]),
            (1.75, [chat("lo")]),
            (2.0, [chat("", finish_reason="stop")]),
            (2.0, [usage_only(7, 2), DONE]),
        ],
        end=2.5,
    )
    assert result == StreamResult(
        first_token_at=1.5,
        first_output_at=1.5,
        last_token_at=1.75,
        done_at=2.5,
        chunk_gaps_ms=[250.0],
        chunk_count=2,
        text="Hello",
        usage_prompt_tokens=7,
        usage_completion_tokens=2,
        usage_cached_tokens=None,
        usage_reasoning_tokens=None,
        output_tokens=2,
        output_tokens_source="usage",
        finish_reason="stop",
        done=True,
        error=None,
        error_class=None,
    )


def test_role_only_first_chunk_is_not_the_first_token() -> None:
    result = run([(1.0, [chat(role="assistant")]), (3.0, [chat("a")]), (3.0, [DONE])], end=3.0)
    assert result.first_token_at == 3.0
    assert result.chunk_count == 1
    assert result.chunk_gaps_ms == []


def test_empty_content_is_a_token_and_usage_only_chunks_are_not() -> None:
    # vLLM streams a token whose text is empty (partial UTF-8, a special token) as "".
    result = run(
        [(1.0, [chat("")]), (2.0, [usage_only(3, 0)]), (4.0, [chat("x")]), (9.0, [chat("")])],
        end=9.0,
    )
    assert (result.first_token_at, result.last_token_at, result.chunk_count) == (1.0, 9.0, 3)
    assert result.chunk_gaps_ms == [3000.0, 5000.0]
    assert result.first_output_at == 4.0


def test_gaps_are_exact_and_reads_sharing_a_timestamp_give_zero_gaps() -> None:
    result = run(
        [(10.0, [chat("a")]), (10.25, [chat("b"), chat("c")]), (11.0, [chat("d"), DONE])],
        end=11.0,
    )
    assert result.chunk_gaps_ms == [250.0, 0.0, 750.0]
    assert (result.first_token_at, result.last_token_at) == (10.0, 11.0)
    assert result.text == "abcd"


def test_output_tokens_come_from_usage_when_chunks_carry_several_tokens() -> None:
    result = run(
        [(1.0, [chat("a b")]), (1.1, [chat("c d")]), (1.2, [chat("e f"), usage_only(5, 6), DONE])],
        end=1.2,
    )
    assert result.chunk_count == 3
    assert (result.output_tokens, result.output_tokens_source) == (6, "usage")
    assert (result.usage_prompt_tokens, result.usage_completion_tokens) == (5, 6)


def test_output_tokens_count_chunks_without_usage() -> None:
    result = run([(1.0, [chat("a")]), (1.1, [chat("b")]), (1.2, [chat("c"), DONE])], end=1.2)
    assert (result.output_tokens, result.output_tokens_source) == (3, "chunks")
    assert (result.usage_prompt_tokens, result.usage_completion_tokens) == (None, None)


def test_the_last_usage_seen_wins_even_on_a_chunk_with_choices() -> None:
    result = run(
        [
            (1.0, [chat("a", usage={"prompt_tokens": 4, "completion_tokens": 1})]),
            (1.1, [chat("b", usage={"prompt_tokens": 4, "completion_tokens": 2})]),
            (1.2, [ev({"choices": [], "usage": None}), DONE]),
        ],
        end=1.2,
    )
    assert (result.usage_completion_tokens, result.output_tokens) == (2, 2)


def test_completions_text_stream() -> None:
    def text(value: str, finish_reason: str | None = None) -> SSEEvent:
        choice = {"index": 0, "text": value, "finish_reason": finish_reason}
        return ev({"object": "text_completion", "choices": [choice]})

    result = run(
        [
            (1.0, [text("")]),
            (2.0, [text("ab")]),
            (2.5, [text("c")]),
            (2.75, [text("", "length"), DONE]),  # the end marker, after the tokens
        ],
        3,
    )
    assert (result.first_token_at, result.chunk_count, result.text) == (1.0, 3, "abc")
    assert (result.first_output_at, result.last_token_at) == (2.0, 2.5)
    assert result.finish_reason == "length"


def test_reasoning_and_tool_call_deltas_are_tokens_but_not_text() -> None:
    tool_call = [{"index": 0, "function": {"arguments": "{"}}]
    result = run(
        [
            (1.0, [chat(reasoning_content="think")]),
            (1.5, [chat(reasoning="more")]),
            (2.0, [chat(tool_calls=tool_call)]),
            (2.5, [chat(reasoning_content=""), chat(tool_calls=[]), DONE]),
        ],
        end=2.5,
    )
    # Present and not null is a token, empty or not; a tool call is output, reasoning is not.
    assert (result.first_token_at, result.last_token_at, result.chunk_count) == (1.0, 2.5, 5)
    assert (result.first_output_at, result.text) == (2.0, "")


def test_error_event_mid_stream_stops_counting() -> None:
    error = {"error": {"message": "CUDA out\nof memory", "type": "server_error", "code": 500}}
    result = run(
        [(1.0, [chat("a")]), (1.5, [chat("b"), ev(error, "error"), chat("c")]), (2.0, [DONE])],
        end=2.0,
    )
    assert result.error == "stream error: CUDA out of memory (type=server_error, code=500)"
    assert (result.chunk_count, result.text, result.last_token_at) == (2, "ab", 1.5)
    assert not result.done


def test_top_level_error_key_without_event_type() -> None:
    result = run([(1.0, [chat("a"), ev({"error": {"message": "overloaded"}})])], end=1.0)
    assert result.error == "stream error: overloaded"


def test_vllm_style_error_object() -> None:
    payload = {"object": "error", "message": "bad", "type": "BadRequestError", "code": 400}
    result = run([(1.0, [ev(payload)])], end=1.0)
    assert result.error == "stream error: bad (type=BadRequestError, code=400)"


def test_error_event_with_plain_text_data() -> None:
    result = run([(1.0, [SSEEvent("upstream\nreset", "error")])], end=1.0)
    assert result.error == "stream error: upstream reset"


def test_stream_ending_before_done_is_an_error_but_keeps_timings() -> None:
    result = run([(1.0, [chat("a")]), (1.5, [chat("b")])], end=1.6)
    assert result.error == "stream ended before [DONE]"
    assert (result.first_token_at, result.chunk_gaps_ms, result.output_tokens) == (1.0, [500.0], 2)


def test_timeout_leaves_the_error_to_the_caller() -> None:
    result = run([(1.0, [chat("a")])], end=30.0, ended=False)
    assert result.error is None
    assert not result.done
    assert (result.first_token_at, result.done_at) == (1.0, 30.0)


def test_finish_does_not_overwrite_an_earlier_error() -> None:
    result = run([(1.0, [ev({"error": {"message": "x"}})])], end=1.0, ended=True)
    assert result.error == "stream error: x"


def test_malformed_json_is_an_error_with_a_preview() -> None:
    garbage = "{not json " + "z" * 200
    result = run([(1.0, [chat("a")]), (1.1, [SSEEvent(garbage), chat("b")])], end=1.2)
    assert result.error == "malformed SSE event: " + garbage[:80]
    assert result.chunk_count == 1


def test_json_that_is_not_an_object_or_has_wrong_types_is_malformed() -> None:
    for data in ["[1, 2]", '"text"', '{"choices": 3}', '{"choices": [1]}', "data:\nline"]:
        result = run([(1.0, [SSEEvent(data)])], end=1.0)
        assert result.error is not None
        assert result.error.startswith("malformed SSE event: "), data
        assert "\n" not in result.error


def test_events_after_done_are_ignored() -> None:
    acc = StreamAccumulator()
    acc.on_events([chat("a"), DONE, chat("b"), SSEEvent("garbage")], 1.0)
    acc.on_events([chat("c"), ev({"error": {"message": "late"}})], 2.0)
    result = acc.finish(2.0, stream_ended=True)
    assert (result.text, result.chunk_count, result.last_token_at) == ("a", 1, 1.0)
    assert result.done
    assert result.error is None


def test_result_does_not_share_the_gap_list() -> None:
    acc = StreamAccumulator()
    acc.on_events([chat("a")], 1.0)
    acc.on_events([chat("b")], 2.0)
    first = acc.finish(2.0, stream_ended=False)
    acc.on_events([chat("c")], 3.0)
    assert first.chunk_gaps_ms == [1000.0]


def test_parser_and_accumulator_together() -> None:
    reads = [
        (0.5, b'data: {"choices":[{"delta":{"role":"assistant"}}]}\n\n'),
        (0.75, b'data: {"choices":[{"delta":{"content":"\xc3'),  # split inside "é"
        (1.0, b'\xa9"}}]}\n\ndata: {"choices":[{"delta":{"content":"!"}}]}\r\n\r\n'),
        (1.25, b'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}\n\n'),
        (1.5, b"data: [DONE]\n\n"),
    ]
    parser, acc = SSEParser(), StreamAccumulator()
    for t, chunk in reads:
        acc.on_events(parser.feed(chunk), t)
    parser.close()
    result = acc.finish(1.5, stream_ended=True)
    assert (result.text, result.first_token_at, result.chunk_gaps_ms) == ("é!", 1.0, [0.0])
    assert (result.output_tokens, result.done, result.error) == (2, True, None)


def test_plain_string_events_give_the_same_result_as_event_objects() -> None:
    events = [
        chat(role="assistant"),
        *[chat(content=c) for c in "abc"],
        chat(finish_reason="stop"),
        usage_only(5, 3),
        SSEEvent(data="[DONE]"),
    ]
    timed = [(10.0, events[:2]), (10.5, events[2:4]), (11.0, events[4:])]
    as_strings = [(t, [e.data for e in batch]) for t, batch in timed]
    acc = StreamAccumulator()
    for t, batch in as_strings:
        acc.on_events(batch, t)
    assert acc.finish(11.0, stream_ended=True) == run(timed, 11.0)


def test_vllm_chat_stream_whose_first_token_has_empty_text() -> None:
    # vLLM: the role preamble, then a first token with empty text (partial UTF-8), then
    # text, then its end-of-sequence chunk (empty text with a finish reason), then usage.
    details = {"prompt_tokens_details": {"cached_tokens": 96}}
    usage = {"prompt_tokens": 128, "completion_tokens": 3, **details}
    result = run(
        [
            (1.0, [chat("", role="assistant")]),
            (1.25, [chat("")]),
            (1.5, [chat("é")]),
            (1.75, [chat("", finish_reason="stop")]),
            (1.75, [ev({"choices": [], "usage": usage}), DONE]),
        ],
        end=1.75,
    )
    assert (result.first_token_at, result.first_output_at) == (1.25, 1.5)
    assert (result.chunk_count, result.chunk_gaps_ms) == (2, [250.0])
    assert (result.usage_cached_tokens, result.usage_reasoning_tokens) == (96, None)


def test_reasoning_then_answer_and_reasoning_tokens_from_usage() -> None:
    usage = {
        "prompt_tokens": 5,
        "completion_tokens": 4,
        "completion_tokens_details": {"reasoning_tokens": 2},
        "prompt_tokens_details": None,
    }
    result = run(
        [
            (1.0, [chat("", role="assistant")]),
            (2.0, [chat(reasoning="hm")]),
            (2.5, [chat(reasoning_content="")]),
            (3.0, [chat("Yes", reasoning=None)]),
            (3.5, [ev({"choices": [], "usage": usage}), DONE]),
        ],
        end=3.5,
    )
    assert (result.first_token_at, result.first_output_at, result.chunk_count) == (2.0, 3.0, 3)
    assert (result.usage_reasoning_tokens, result.usage_cached_tokens) == (2, None)
    assert result.text == "Yes"


def test_a_lone_empty_token_with_its_finish_reason_is_the_first_token() -> None:
    # max_tokens: 1 and the one token has empty text: the end marker is the token.
    last = chat("", finish_reason="length")
    result = run([(1.0, [chat("", role="assistant")]), (2.0, [last])], 2)
    assert (result.first_token_at, result.chunk_count, result.first_output_at) == (2.0, 1, None)
    # An empty delta with a finish reason is never a token.
    result = run([(1.0, [chat(role="assistant")]), (2.0, [chat(finish_reason="stop"), DONE])], 2)
    assert (result.first_token_at, result.chunk_count) == (None, 0)
