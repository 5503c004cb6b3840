"""A strict check of the SSE stream format on the wire, read as raw bytes over HTTP.

Every event is exactly ``data: <json>\\n\\n``; one content chunk per generated token; the
finish chunk carries ``finish_reason``; with ``stream_options.include_usage`` a final
usage chunk with ``choices: []``; then ``data: [DONE]`` and nothing after it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from reference_server import tokenizer
from tests.reference_server.helpers import send
from tests.server_process import ServerProcess

MAX_TOKENS = 12
PROMPT = "Stream me"


def strict_events(body: bytes) -> list[str]:
    """The payload of each event; fails unless every event is exactly ``data: X\\n\\n``."""
    assert body.endswith(b"\n\n"), f"stream does not end with a blank line: {body[-40:]!r}"
    events = body[:-2].split(b"\n\n")
    for event in events:
        assert event.startswith(b"data: "), f"event without 'data: ': {event[:60]!r}"
        assert b"\n" not in event and b"\r" not in event, f"multi-line event: {event[:60]!r}"
    return [e.removeprefix(b"data: ").decode("utf-8") for e in events]


@dataclass(frozen=True, slots=True)
class Stream:
    chunks: list[dict[str, Any]]  # every event before [DONE], parsed

    @property
    def with_choices(self) -> list[dict[str, Any]]:
        return [c for c in self.chunks if c["choices"]]


def read_stream(url: str, path: str, body: dict[str, Any]) -> Stream:
    raw = send(url, "POST", path, json.dumps({**body, "stream": True}).encode())
    assert raw.status == 200, raw.body[:300]
    assert raw.headers.get("content-type", "").split(";")[0].strip() == "text/event-stream"
    assert raw.body.endswith(b"data: [DONE]\n\n")  # [DONE] is last, and nothing follows
    events = strict_events(raw.body)
    assert events[-1] == "[DONE]" and "[DONE]" not in events[:-1]
    return Stream([json.loads(e) for e in events[:-1]])


def request_body(chat: bool, include_usage: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"max_tokens": MAX_TOKENS, "ignore_eos": True, "temperature": 0}
    if chat:
        body["messages"] = [{"role": "user", "content": PROMPT}]
    else:
        body["prompt"] = PROMPT
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    return body


def check_envelopes(stream: Stream, obj: str) -> None:
    """Every chunk belongs to one response: same id, object, created time and model."""
    keys = {(c["id"], c["object"], c["created"], c["model"]) for c in stream.chunks}
    assert len(keys) == 1
    assert next(iter(keys))[1] == obj


def check_usage(stream: Stream, include_usage: bool, content_chunks: int, prompt: int) -> None:
    usage_chunks = [c for c in stream.chunks if c.get("usage") is not None]
    if not include_usage:
        assert usage_chunks == []
        return
    assert usage_chunks == [stream.chunks[-1]]
    last = stream.chunks[-1]
    assert last["choices"] == []
    usage = dict(last["usage"])
    # The session's server has seen this prompt before: some of it may come from its cache.
    cached_tokens = usage.pop("prompt_tokens_details")["cached_tokens"]
    assert 0 <= cached_tokens < prompt
    assert usage == {
        "prompt_tokens": prompt,
        "completion_tokens": content_chunks,
        "total_tokens": prompt + content_chunks,
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


@pytest.mark.parametrize("include_usage", [True, False], ids=["usage", "no-usage"])
def test_chat_stream_format(reference_server: ServerProcess, include_usage: bool) -> None:
    stream = read_stream(
        reference_server.url, "/v1/chat/completions", request_body(True, include_usage)
    )
    check_envelopes(stream, "chat.completion.chunk")
    first, *middle, finish = stream.with_choices
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert not first["choices"][0]["delta"].get("content")  # the role chunk carries no token
    contents = [c["choices"][0]["delta"]["content"] for c in middle]
    assert [len(text) for text in contents] == [1] * MAX_TOKENS  # one token per chunk
    assert all(set(c["choices"][0]["delta"]) == {"content"} for c in middle)
    assert all(c["choices"][0]["finish_reason"] is None for c in [first, *middle])
    assert finish["choices"][0]["finish_reason"] == "length"
    assert not finish["choices"][0]["delta"].get("content")
    prompt = len(tokenizer.chat_prompt([("user", PROMPT)]).encode()) + 1
    check_usage(stream, include_usage, len(contents), prompt)


@pytest.mark.parametrize("include_usage", [True, False], ids=["usage", "no-usage"])
def test_completion_stream_format(reference_server: ServerProcess, include_usage: bool) -> None:
    stream = read_stream(
        reference_server.url, "/v1/completions", request_body(False, include_usage)
    )
    check_envelopes(stream, "text_completion")
    *middle, finish = stream.with_choices
    texts = [c["choices"][0]["text"] for c in middle]
    assert [len(text) for text in texts] == [1] * MAX_TOKENS
    assert all(c["choices"][0]["finish_reason"] is None for c in middle)
    assert finish["choices"][0]["finish_reason"] == "length"
    assert finish["choices"][0]["text"] == ""
    check_usage(stream, include_usage, len(texts), len(PROMPT.encode()) + 1)


def test_stream_ending_on_a_stop_string_still_ends_with_done(
    reference_server: ServerProcess,
) -> None:
    base = read_stream(reference_server.url, "/v1/completions", request_body(False, False))
    text = "".join(c["choices"][0]["text"] for c in base.with_choices)
    stop = next(
        (text[i : i + 2] for i in range(2, len(text) - 1) if text.find(text[i : i + 2]) == i), ""
    )
    assert stop, f"no two characters in {text!r} first occur past its start"
    body = {**request_body(False, True), "stop": stop}
    stream = read_stream(reference_server.url, "/v1/completions", body)
    *middle, finish = stream.with_choices
    assert "".join(c["choices"][0]["text"] for c in middle) == text[: text.find(stop)]
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert stream.chunks[-1]["choices"] == []  # usage still comes last


def test_strict_parser_rejects_sloppy_framing() -> None:
    # The checks above are only as good as this parser: it must refuse near-misses.
    for sloppy in (
        b"data: {}\n",  # one newline
        b"data:{}\n\n",  # no space after the colon
        b"data: {}\r\n\r\n",  # CRLF framing
        b"event: x\ndata: {}\n\n",  # an extra field line
        b"data: {}\n\n\n",  # a stray blank line
    ):
        with pytest.raises(AssertionError):
            strict_events(sloppy)
    assert strict_events(b"data: {}\n\ndata: [DONE]\n\n") == ["{}", "[DONE]"]
