"""Incremental Server-Sent Events parser, following the WHATWG event-stream rules.

Feed it the raw bytes of each read as they arrive; it returns the events that read
completed. It never raises on bad input: invalid UTF-8 becomes U+FFFD, unknown fields are
ignored. Pure and cheap: no I/O, no clock, no per-byte Python loops (it sits on the load
generator's hot path).

    parser = SSEParser()
    for chunk in response.iter_content():
        for event in parser.feed(chunk):
            ...
    parser.close()
    if parser.pending:
        ...  # the stream stopped in the middle of an event

Choices the spec leaves to us, or where we differ from a browser's EventSource:
- `SSEEvent.event` is None when no (or an empty) `event:` field was given, where a browser
  would say "message".
- `SSEEvent.id` is the spec's *last event ID*: it persists across events until another
  `id:` field changes it (an empty `id:` resets it to ""); None until one is seen.
- `retry:` is ignored: reconnecting is not this parser's business.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import cast

__all__ = ["SSEEvent", "SSEParser"]

_BOM = "\ufeff"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event. `data` joins multi-line data with "\\n"."""

    data: str
    event: str | None = None
    id: str | None = None


class SSEParser:
    """Turns a byte stream into `SSEEvent`s, however the stream is split into reads."""

    __slots__ = (
        "_bom_checked",
        "_closed",
        "_data_lines",
        "_decoder",
        "_event_type",
        "_last_id",
        "_skip_lf",
        "_tail",
    )

    def __init__(self) -> None:
        # An incremental decoder keeps a multi-byte character split across reads.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._tail = ""  # the current line, not yet terminated
        self._skip_lf = False  # the last read ended in "\r": a leading "\n" belongs to it
        self._bom_checked = False
        self._data_lines: list[str] = []
        self._event_type: str | None = None
        self._last_id: str | None = None
        self._closed = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Parses one read; returns the events it completed, oldest first."""
        if self._closed:
            raise RuntimeError("SSEParser.feed() called after close()")
        return cast("list[SSEEvent]", self._feed_text(self._decoder.decode(chunk), False))

    def feed_compact(self, chunk: bytes) -> list[SSEEvent | str]:
        """Like `feed`, but an event that is one ``data:`` line and nothing else (what
        OpenAI-compatible servers send) comes back as its data string, without the id.
        Saves an object per event on the load generator's hot path;
        `StreamAccumulator.on_events` takes either form."""
        if self._closed:
            raise RuntimeError("SSEParser.feed_compact() called after close()")
        if chunk[-1:] < b"\x80" and not self._decoder.buffer:
            # Nothing held back and no character cut at the end: the bytes decode on their
            # own, without the incremental decoder's (Python-level) bookkeeping.
            return self._feed_text(chunk.decode("utf-8", "replace"), True)
        return self._feed_text(self._decoder.decode(chunk), True)

    def plain_events(self, data: bytes) -> list[str] | None:
        """The data of ``data``'s events, oldest first, when ``data`` is nothing but whole
        one-line ``data: `` events (what OpenAI-compatible servers send) and follows a
        whole event; else None. Parses nothing: the parser's state is the same after
        ``data`` as before it, so the caller may take the events (as `feed_compact` would
        give them) or feed ``data`` instead."""
        if (
            self._tail
            or self._data_lines
            or self._event_type is not None
            or self._skip_lf
            or not self._bom_checked
            or self._closed
            or self._decoder.buffer
            or data[:6] != b"data: "
            or data[-2:] != b"\n\n"
            or b"\r" in data
            or data.count(b"\n") != 2 * data.count(b"\n\ndata: ") + 2
        ):
            return None
        return data[6:-2].decode("utf-8", "replace").split("\n\ndata: ")

    def close(self) -> list[SSEEvent]:
        """Ends the stream. Per the spec an unterminated event is discarded, so this
        returns no events; `pending` tells whether one was cut off."""
        if not self._closed:
            # Flush a truncated multi-byte character into the tail (as U+FFFD), so that
            # `pending` sees it; it cannot complete a line.
            self._feed_text(self._decoder.decode(b"", final=True), False)
            self._closed = True
        return []

    @property
    def pending(self) -> bool:
        """True when bytes of an unfinished line or event are buffered."""
        return bool(
            self._tail
            or self._data_lines
            or self._event_type is not None
            or self._decoder.getstate()[0]
        )

    def _feed_text(self, text: str, compact: bool) -> list[SSEEvent | str]:
        if not text:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return []
        if not self._bom_checked:
            self._bom_checked = True
            if text[0] == _BOM:
                text = text[1:]
        if "\r" in text:
            # A trailing "\r" already ends its line; remember it so that a "\n" opening the
            # next read does not end a second, empty line (which would dispatch).
            self._skip_lf = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if self._tail:
            text = self._tail + text
            self._tail = ""
        end = text.rfind("\n\n")
        if end < 0:
            return self._process_tail(text)
        events = self._process_blocks(text[:end], compact)
        if end + 2 < len(text):
            events += self._process_tail(text[end + 2 :])
        return events

    def _process_blocks(self, head: str, compact: bool) -> list[SSEEvent | str]:
        """Events of ``head + "\n\n"``, which ends exactly at an event boundary.

        Fast path: a block of one ``data:`` line (what every OpenAI-compatible server
        sends) becomes an event without going line by line. It is the same as the general
        path when no event is half-built: after any block's closing blank line, none is.
        """
        clean = not self._data_lines and self._event_type is None
        last_id = self._last_id
        if clean and head.startswith("data: "):
            # Faster still when every block is one "data: " line: then the separators
            # "\n\ndata: " hold every newline there is.
            values = head[6:].split("\n\ndata: ")
            if head.count("\n") == 2 * (len(values) - 1):
                if compact:
                    return cast("list[SSEEvent | str]", values)
                return [SSEEvent(value, None, last_id) for value in values]
        events: list[SSEEvent | str] = []
        append = events.append
        for block in head.split("\n\n"):
            if clean and block[:5] == "data:" and "\n" not in block:
                data = block[6:] if block[5:6] == " " else block[5:]
                append(data if compact else SSEEvent(data, None, last_id))
                continue
            events += self._process_lines([*block.split("\n"), ""])
            clean, last_id = True, self._last_id
        return events

    def _process_tail(self, text: str) -> list[SSEEvent | str]:
        """``text`` holds no event boundary: its last line may still be unfinished."""
        lines = text.split("\n")
        self._tail = lines.pop()
        return self._process_lines(lines) if lines else []

    def _process_lines(self, lines: list[str]) -> list[SSEEvent | str]:
        events: list[SSEEvent | str] = []
        for line in lines:
            if not line:
                if self._data_lines:
                    events.append(self._dispatch())
                else:
                    self._event_type = None
            elif line[0] != ":":  # lines starting with ":" are comments
                self._process_field(line)
        return events

    def _process_field(self, line: str) -> None:
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data_lines.append(value)
        elif name == "event":
            self._event_type = value or None
        elif name == "id" and "\0" not in value:
            self._last_id = value
        # "retry" and unknown fields are ignored, as the spec says for unknown ones.

    def _dispatch(self) -> SSEEvent:
        lines = self._data_lines
        data = lines[0] if len(lines) == 1 else "\n".join(lines)
        event = SSEEvent(data, self._event_type, self._last_id)
        self._data_lines = []
        self._event_type = None
        return event
