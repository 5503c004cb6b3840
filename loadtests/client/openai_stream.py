"""Turns an OpenAI-compatible SSE stream (chat or completions) into exact timings.

The caller owns the clock and the socket: it feeds the events each read completed together
with that read's arrival time, then calls `finish` once.

    acc = StreamAccumulator()
    for chunk, t in reads:
        acc.on_events(parser.feed(chunk), t)
    result = acc.finish(t_end, stream_ended=True)

Decisions that shape the numbers:
- Only token-bearing chunks are timed (TTFT, ITL gaps, `chunk_count`). A choice bears a
  token when one of its token fields is present and not null, *even when its text is
  empty*: `delta.content`, `delta.reasoning` (current vLLM), `delta.reasoning_content`
  (DeepSeek, SGLang, older vLLM), `delta.tool_calls`, or completions' `text`. vLLM streams
  a token whose text is empty (partial UTF-8, special tokens) as `"content": ""`, often as
  the very first token; skipping it would take TTFT late or not at all. Not tokens:
  - the role-only preamble (a delta with `role` whose `content` is "" or absent and
    that has no other token field): vLLM's first chat chunk,
    `{"role": "assistant", "content": ""}`, sent before anything is generated;
  - usage-only chunks (`"choices": []`) and chunks without choices;
  - the end marker: a choice with a `finish_reason` and no token field (`"delta": {}`,
    as OpenAI and the reference server end a chat stream), or only empty ones
    (`"text": ""`, as they end a completions stream) unless no token came before it
    (then the answer's one token had empty text, e.g. `max_tokens: 1`). vLLM's chunk of
    an end-of-sequence token has empty text and a finish reason too: it is taken as the
    end, which only leaves out the last gap (its usage still counts the token).
- `first_output_at`: the read that completed the first chunk with *visible output*: a
  non-empty `delta.content` or `text`, or a `delta.tool_calls` with at least one call (a
  tool call is the answer of that request, not its thinking). Reasoning is never output:
  TTFT minus this is how long the model thought before answering.
- Events completed by one read share its timestamp; the 0.0 ms gaps between them are kept
  because that is what the client saw.
- `text` concatenates `delta.content` / `text` of every choice in arrival order (reasoning
  and tool-call deltas are timed but not included); with n > 1 choices it interleaves.
- `server_timings`: the `timings` object of the last chunk that has one (the bundled
  server's and llama.cpp's final chunk), read once at `finish`
  (`loadtests.client.server_timings`).
- Usage: the `usage` object of the last chunk that has one, read once at `finish` by
  `usage_counts` (the non-streamed reader uses it too). Each count (`prompt_tokens`,
  `completion_tokens`, `prompt_tokens_details.cached_tokens`,
  `completion_tokens_details.reasoning_tokens`) is null or absent (not reported) or a
  non-negative integer the run directory's int32 columns hold (a whole float, 16.0, is read
  as that integer); anything else (a string, `true`, 2.5, -4, 3000000000, a `usage` that is
  not an object) makes the answer
  malformed (`malformed_sse`, the message naming the field and its value) and none of its
  counts is kept: a bad count never reaches the recorder.
- The first `[DONE]` or error stops counting; later events are ignored. Errors are an
  `event: error` event, a payload with a top-level `error` key, or (older vLLM) a payload
  with `"object": "error"`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from loadtests.client.server_timings import ServerTimes, from_timings
from loadtests.client.sse import SSEEvent
from sla.files import error_class as ec
from sla.files.error_class import bound_error

__all__ = [
    "MAX_TOKEN_COUNT",
    "MalformedUsage",
    "StreamAccumulator",
    "StreamResult",
    "UsageCounts",
    "usage_counts",
]

_loads: Callable[[str], Any]
try:
    import orjson

    _loads = orjson.loads
except ImportError:  # orjson is optional: same results, a little slower
    _loads = json.loads

_DONE = "[DONE]"
# What a chunk bears (StreamAccumulator._on_chunk); 0 is nothing.
_TOKEN, _OUTPUT, _END = 1, 2, 3
_MALFORMED_PREVIEW_CHARS = 80
# The run directory's token columns (input_tokens, output_tokens, cached_tokens,
# reasoning_tokens in sla.files.run.REQUESTS_SCHEMA) are int32: a larger count cannot be
# recorded, and one such value would fail the whole batch of rows it sits in.
MAX_TOKEN_COUNT = 2**31 - 1
# A usage's prompt, completion, cached and reasoning tokens; None: not reported.
UsageCounts = tuple[int | None, int | None, int | None, int | None]
NO_USAGE: UsageCounts = (None, None, None, None)


@dataclass(frozen=True, slots=True)
class StreamResult:
    """What one streamed response amounted to. Times are the caller's clock, in seconds."""

    first_token_at: float | None
    first_output_at: float | None  # the first visible output (see the module docstring)
    last_token_at: float | None
    done_at: float  # the `t` given to finish()
    chunk_gaps_ms: list[float]  # one per pair of consecutive token-bearing chunks
    chunk_count: int  # token-bearing chunks
    text: str
    usage_prompt_tokens: int | None
    usage_completion_tokens: int | None
    usage_cached_tokens: int | None  # usage.prompt_tokens_details.cached_tokens
    usage_reasoning_tokens: int | None  # usage.completion_tokens_details.reasoning_tokens
    output_tokens: int
    output_tokens_source: Literal["usage", "chunks"]
    finish_reason: str | None
    done: bool  # "[DONE]" was seen
    error: str | None  # one line
    error_class: str | None  # sla.files.error_class; None when there is no error
    server_timings: ServerTimes | None = None  # the last chunk's ``timings`` object, read


def _error_message(error: object) -> str:
    """One line from an OpenAI-style `error` value (an object, or sometimes a bare string)."""
    if not isinstance(error, dict):
        return bound_error(f"stream error: {error}")
    message = error.get("message") or "server reported an error"
    details = ", ".join(
        f"{key}={error[key]}" for key in ("type", "code") if error.get(key) is not None
    )
    suffix = f" ({details})" if details else ""
    return bound_error(f"stream error: {message}{suffix}")


def _malformed(data: str) -> str:
    return "malformed SSE event: " + bound_error(data[:_MALFORMED_PREVIEW_CHARS])


class StreamAccumulator:
    """Accumulates one streamed response. Not thread-safe; one per request."""

    __slots__ = (
        "_chunk_count",
        "_done",
        "_error",
        "_error_class",
        "_finish_reason",
        "_first_output_at",
        "_first_token_at",
        "_gaps_ms",
        "_last_token_at",
        "_parts",
        "_timings",
        "_usage",
    )

    def __init__(self) -> None:
        self._first_token_at: float | None = None
        self._first_output_at: float | None = None
        self._last_token_at: float | None = None
        self._gaps_ms: list[float] = []
        self._chunk_count = 0
        self._parts: list[str] = []
        self._usage: object = None  # the last chunk's usage, read at finish()
        self._finish_reason: str | None = None
        self._done = False
        self._error: str | None = None
        self._error_class: str | None = None
        self._timings: object = None

    @property
    def stopped(self) -> bool:
        """True once [DONE] or an error was seen: later events are ignored."""
        return self._done or self._error is not None

    def on_events(self, events: Sequence[SSEEvent | str], t: float) -> None:
        """Takes the events one read completed; `t` is that read's arrival time (s).

        A `str` stands for an event with that data and no event type (as given by
        `SSEParser.feed_compact`)."""
        # The load generator's hot path: an ordinary chunk costs one JSON parse and a few
        # dict lookups; [DONE], errors and oddities go to `_on_other`. The token-bearing
        # chunks of one read share its time, so they are timed together at the end.
        if self._done or self._error is not None:
            return
        tokens = 0
        output = False
        for event in events:
            if isinstance(event, str):
                data, event_type = event, None
            else:
                data, event_type = event.data, event.event
            if data == _DONE:
                self._done = True
                break
            try:
                chunk = _loads(data)
            except ValueError:  # json.JSONDecodeError and orjson.JSONDecodeError both are
                chunk = None
            if (
                event_type is not None
                or type(chunk) is not dict
                or "error" in chunk
                or chunk.get("object") == "error"
            ):
                chunk = self._on_other(data, event_type, chunk)
                if chunk is None:  # it stopped the stream
                    break
            try:
                kind = self._on_chunk(chunk)
            except (AttributeError, TypeError):  # a field of an unexpected JSON type
                self._fail(ec.MALFORMED_SSE, _malformed(data))
                break
            if kind:
                if kind == _OUTPUT:
                    output = True
                elif kind == _END and (tokens or self._last_token_at is not None):
                    continue  # the end marker after the tokens (see the module docstring)
                tokens += 1
        if tokens:
            self._on_tokens(tokens, t)
            if output and self._first_output_at is None:
                self._first_output_at = t

    def _on_tokens(self, count: int, t: float) -> None:
        """`count` token-bearing chunks arrived at `t`: 0.0 ms gaps between them."""
        last = self._last_token_at
        if last is None:
            self._first_token_at = t
        else:
            self._gaps_ms.append((t - last) * 1000.0)
        if count > 1:
            self._gaps_ms.extend([0.0] * (count - 1))
        self._last_token_at = t
        self._chunk_count += count

    def finish(self, t: float, *, stream_ended: bool) -> StreamResult:
        """Ends the response at `t`. `stream_ended=True`: the server closed the stream
        (an error if [DONE] never came). `stream_ended=False`: the caller gave up (timeout)
        and records its own error; timings gathered so far are kept either way."""
        if stream_ended and not self._done and self._error is None:
            self._fail(ec.STREAM_INCOMPLETE, "stream ended before [DONE]")
        prompt, completion, cached, reasoning = self._read_usage()
        return StreamResult(
            first_token_at=self._first_token_at,
            first_output_at=self._first_output_at,
            last_token_at=self._last_token_at,
            done_at=t,
            chunk_gaps_ms=list(self._gaps_ms),
            chunk_count=self._chunk_count,
            text="".join(self._parts),
            usage_prompt_tokens=prompt,
            usage_completion_tokens=completion,
            usage_cached_tokens=cached,
            usage_reasoning_tokens=reasoning,
            output_tokens=completion if completion is not None else self._chunk_count,
            output_tokens_source="chunks" if completion is None else "usage",
            finish_reason=self._finish_reason,
            done=self._done,
            error=self._error,
            error_class=self._error_class,
            server_timings=None if self._timings is None else from_timings(self._timings),
        )

    def _fail(self, error_class: str, message: str) -> None:
        self._error, self._error_class = message, error_class

    def _read_usage(self) -> UsageCounts:
        """The last usage's counts. A bad one makes the answer malformed (unless it already
        failed otherwise) and none of its counts is kept."""
        if self._usage is None:
            return NO_USAGE
        try:
            return usage_counts(self._usage)
        except MalformedUsage as exc:
            if self._error is None:
                self._fail(ec.MALFORMED_SSE, bound_error(str(exc)))
            return NO_USAGE

    def _on_other(self, data: str, event_type: str | None, payload: Any) -> dict[str, Any] | None:
        """[DONE] with blanks around it, errors, and payloads that are not chunks: sets
        `_done` or `_error` and returns None, or returns the payload when it is an ordinary
        chunk after all (under an unusual event type)."""
        if data.strip() == _DONE:
            self._done = True
        elif event_type == "error":
            error = payload.get("error", payload) if isinstance(payload, dict) else data
            self._fail(ec.SERVER_ERROR_EVENT, _error_message(error))
        elif not isinstance(payload, dict):
            self._fail(ec.MALFORMED_SSE, _malformed(data))
        elif "error" in payload:
            self._fail(ec.SERVER_ERROR_EVENT, _error_message(payload["error"]))
        elif payload.get("object") == "error":  # older vLLM: the error object itself
            self._fail(ec.SERVER_ERROR_EVENT, _error_message(payload))
        else:
            return payload
        return None

    def _on_chunk(self, chunk: dict[str, Any]) -> int:
        """Takes one chunk's usage, text and finish reason; says what it bears: 0 nothing,
        `_TOKEN`, `_OUTPUT` (a token with visible output) or `_END` (only empty token
        fields and a finish reason: a token only when none came before)."""
        usage = chunk.get("usage")
        if usage:  # checked once, at finish(): servers may send usage with every chunk
            self._usage = usage
        timings = chunk.get("timings")  # the server's own account (ours, llama.cpp's)
        if timings is not None:
            self._timings = timings
        kind = 0
        for choice in chunk.get("choices") or ():
            empty = False
            delta = choice.get("delta")
            if delta:
                content = delta.get("content")
                if content:
                    kind = _OUTPUT
                    if isinstance(content, str):
                        self._parts.append(content)
                elif (
                    delta.get("reasoning") is not None or delta.get("reasoning_content") is not None
                ):
                    kind = kind or _TOKEN
                elif (calls := delta.get("tool_calls")) is not None:
                    kind = _OUTPUT if calls else kind or _TOKEN
                elif content is not None and "role" not in delta:
                    empty = True  # a token whose text is empty (not the role preamble)
            text = choice.get("text")
            if text:
                kind = _OUTPUT
                if isinstance(text, str):
                    self._parts.append(text)
            elif text is not None:
                empty = True
            finish_reason = choice.get("finish_reason")
            if finish_reason is not None:
                self._finish_reason = finish_reason
                if empty and not kind:
                    kind = _END
            elif empty:
                kind = kind or _TOKEN
        return kind


class MalformedUsage(ValueError):
    """A usage the protocol does not allow; str() names the field and its value."""


def usage_counts(usage: object) -> UsageCounts:
    """The prompt, completion, cached and reasoning tokens of an OpenAI ``usage`` value
    (None: not reported, as is a null or absent usage). Raises ``MalformedUsage`` for a
    usage or details that are not objects and for a count that is not a non-negative
    integer of at most ``MAX_TOKEN_COUNT`` (a bool is not one; a whole float, 16.0, is
    read as the integer it writes)."""
    if usage is None:
        return NO_USAGE
    if type(usage) is not dict:
        raise MalformedUsage(f"usage must be an object, got {_shown(usage)}")
    return (
        _count(usage, "prompt_tokens", "usage"),
        _count(usage, "completion_tokens", "usage"),
        _detail(usage, "prompt_tokens_details", "cached_tokens"),
        _detail(usage, "completion_tokens_details", "reasoning_tokens"),
    )


def _detail(usage: dict[str, Any], details: str, key: str) -> int | None:
    found = usage.get(details)
    if found is None:
        return None
    if type(found) is not dict:
        raise MalformedUsage(f"usage.{details} must be an object, got {_shown(found)}")
    return _count(found, key, f"usage.{details}")


def _count(where: dict[str, Any], key: str, path: str) -> int | None:
    value = where.get(key)
    if type(value) is float and value.is_integer():
        value = int(value)  # 16.0: a whole count written as a JSON float by some servers
    if value is None or (type(value) is int and 0 <= value <= MAX_TOKEN_COUNT):
        return value
    if type(value) is int and value > MAX_TOKEN_COUNT:
        raise MalformedUsage(
            f"{path}.{key} must be at most {MAX_TOKEN_COUNT} (the run directory holds int32 "
            f"counts), got {value}"
        )
    raise MalformedUsage(f"{path}.{key} must be a non-negative integer, got {_shown(value)}")


def _shown(value: object) -> str:
    """A JSON value as the answer had it (`"10"`, `true`), cut short."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):  # not a parsed JSON value after all
        text = repr(value)
    cut = _MALFORMED_PREVIEW_CHARS
    return text if len(text) <= cut else text[:cut] + "..."
