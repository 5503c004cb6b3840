from __future__ import annotations

import pytest

from loadtests.client.sse import SSEEvent, SSEParser

# Exercises every rule at once: BOM, comments, CRLF, CR, LF, multi-byte characters,
# multi-line and empty data, ids, event types, retry and unknown fields.
MIXED_STREAM = (
    "\ufeff: keep-alive\r\n"
    "event: add\r\n"
    "id: 1\r\n"
    'data: {"content":"é€😀"}\r\n'
    "\r\n"
    "retry: 3000\r"
    "data:first\r"
    "data: second\r"
    "\r"
    "foo: bar\n"
    ":\n"
    "data\n"
    "\n"
    "event: error\n"
    "data: [DONE]\n"
    "\n"
).encode()

MIXED_EVENTS = [
    SSEEvent(data='{"content":"é€😀"}', event="add", id="1"),
    SSEEvent(data="first\nsecond", event=None, id="1"),
    SSEEvent(data="", event=None, id="1"),
    SSEEvent(data="[DONE]", event="error", id="1"),
]


def feed_all(chunks: list[bytes]) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    events.extend(parser.close())
    return events


def test_one_read_gives_every_event() -> None:
    assert feed_all([MIXED_STREAM]) == MIXED_EVENTS


def test_split_at_every_byte_offset_gives_the_same_events() -> None:
    for offset in range(len(MIXED_STREAM) + 1):
        chunks = [MIXED_STREAM[:offset], MIXED_STREAM[offset:]]
        assert feed_all(chunks) == MIXED_EVENTS, f"split at byte {offset}"


def test_split_at_every_pair_of_offsets_gives_the_same_events() -> None:
    stream = MIXED_STREAM[:106]  # the first two events: CRLF, CR, BOM and UTF-8 in them
    expected = feed_all([stream])
    assert len(expected) == 2
    for first in range(len(stream) + 1):
        for second in range(first, len(stream) + 1):
            chunks = [stream[:first], stream[first:second], stream[second:]]
            assert feed_all(chunks) == expected, f"split at bytes {first}, {second}"


def test_one_byte_per_read_gives_the_same_events() -> None:
    chunks = [MIXED_STREAM[i : i + 1] for i in range(len(MIXED_STREAM))]
    assert feed_all(chunks) == MIXED_EVENTS


def test_several_events_in_one_read_are_returned_in_order() -> None:
    events = SSEParser().feed(b"data: a\n\ndata: b\n\ndata: c\n\n")
    assert [e.data for e in events] == ["a", "b", "c"]


def test_each_read_returns_only_the_events_it_completed() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\n\ndata: b") == [SSEEvent("a")]
    assert parser.feed(b"\n") == []
    assert parser.feed(b"\ndata: c\n\n") == [SSEEvent("b"), SSEEvent("c")]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_line_endings(newline: bytes) -> None:
    stream = newline.join([b"event: x", b"data: a", b"data: b", b"", b"data: c", b"", b""])
    assert SSEParser().feed(stream) == [SSEEvent("a\nb", "x"), SSEEvent("c")]


def test_crlf_split_between_cr_and_lf_is_one_line_end() -> None:
    # Were "\r" | "\n" two line ends, the empty line between them would dispatch "a" alone.
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\ndata: b\r") == []
    assert parser.feed(b"\n") == []
    assert parser.feed(b"\r\n") == [SSEEvent("a\nb")]


def test_cr_then_cr_is_two_line_ends_across_reads() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\r") == [SSEEvent("a")]


def test_comment_lines_are_ignored() -> None:
    stream = b": keep-alive\n\n:\ndata: a\n: inside an event\ndata: b\n\n"
    assert SSEParser().feed(stream) == [SSEEvent("a\nb")]


def test_only_one_space_after_the_colon_is_stripped() -> None:
    stream = b"data:x\n\ndata:  y\n\ndata: z \n\n"
    assert [e.data for e in SSEParser().feed(stream)] == ["x", " y", "z "]


def test_value_may_contain_colons() -> None:
    assert SSEParser().feed(b'data: {"a": "b:c"}\n\n') == [SSEEvent('{"a": "b:c"}')]


def test_multi_line_data_is_joined_with_newlines() -> None:
    events = SSEParser().feed(b"data: one\ndata: two\ndata: three\n\n")
    assert events == [SSEEvent("one\ntwo\nthree")]


def test_empty_data_lines_are_kept() -> None:
    events = SSEParser().feed(b"data\n\ndata:\ndata:\n\ndata: a\ndata:\n\n")
    assert [e.data for e in events] == ["", "\n", "a\n"]


def test_retry_and_unknown_fields_are_ignored() -> None:
    stream = b"retry: 10\nfoo: bar\nDATA: upper\ndata: a\nretry\n\n"
    assert SSEParser().feed(stream) == [SSEEvent("a")]


def test_blank_line_without_data_dispatches_nothing_and_resets_the_event_type() -> None:
    stream = b"event: ping\n\nid: 7\n\n\n\ndata: a\n\n"
    assert SSEParser().feed(stream) == [SSEEvent("a", None, "7")]


def test_empty_event_type_is_none() -> None:
    assert SSEParser().feed(b"event:\ndata: a\n\n") == [SSEEvent("a", None)]


def test_id_persists_across_events_and_ignores_values_with_nul() -> None:
    stream = b"id: 1\ndata: a\n\ndata: b\n\nid: 2\x00\ndata: c\n\nid\ndata: d\n\n"
    assert [e.id for e in SSEParser().feed(stream)] == ["1", "1", "1", ""]


def test_leading_bom_is_stripped_even_when_split() -> None:
    parser = SSEParser()
    assert parser.feed(b"\xef") == []
    assert parser.feed(b"\xbb") == []
    assert parser.feed(b"\xbfdata: a\n\n") == [SSEEvent("a")]


def test_only_one_leading_bom_is_stripped() -> None:
    # The second BOM becomes part of the field name "\ufeffdata", an unknown field.
    assert SSEParser().feed(b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\n") == []


def test_bom_after_the_start_is_data() -> None:
    assert SSEParser().feed("data: \ufeffa\n\n".encode()) == [SSEEvent("\ufeffa")]


def test_utf8_character_split_across_reads() -> None:
    encoded = "data: 😀é\n\n".encode()
    start = len(b"data: ")
    for cut in range(start + 1, start + 6):  # inside the 4-byte and the 2-byte characters
        parser = SSEParser()
        assert parser.feed(encoded[:cut]) == []
        assert parser.feed(encoded[cut:]) == [SSEEvent("😀é")], f"cut at byte {cut}"


def test_invalid_utf8_is_replaced_not_raised() -> None:
    events = SSEParser().feed(b"data: \xff\xfe ok \xc3\n\n")
    assert events == [SSEEvent("\ufffd\ufffd ok \ufffd")]


def test_close_drops_an_unterminated_event_and_reports_it_pending() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\n\ndata: b\n") == [SSEEvent("a")]
    assert parser.pending
    assert parser.close() == []
    assert parser.pending


@pytest.mark.parametrize(
    ("stream", "pending"),
    [
        (b"", False),
        (b"data: a\n\n", False),
        (b": keep-alive\n", False),
        (b"data: a\n\nda", True),  # half a line
        (b"data: a\n", True),  # a data line, no blank line yet
        (b"event: x\n", True),
        (b"data: \xf0\x9f", True),  # half a character
        (b"data: a\r\n\r", False),  # the CR already ended the event
    ],
)
def test_pending(stream: bytes, pending: bool) -> None:
    parser = SSEParser()
    parser.feed(stream)
    assert parser.pending is pending
    parser.close()
    assert parser.pending is pending


def test_close_with_only_a_truncated_character_left_is_pending() -> None:
    parser = SSEParser()
    parser.feed(b"\xe2\x82")
    assert parser.pending
    assert parser.close() == []
    assert parser.pending


def test_feed_after_close_raises() -> None:
    parser = SSEParser()
    parser.close()
    with pytest.raises(RuntimeError, match="after close"):
        parser.feed(b"data: a\n\n")


def test_empty_reads_are_harmless() -> None:
    parser = SSEParser()
    assert parser.feed(b"") == []
    assert parser.feed(b"data: a\n") == []
    assert parser.feed(b"") == []
    assert parser.feed(b"\n") == [SSEEvent("a")]
    assert not parser.pending


@pytest.mark.parametrize("step", [1, 2, 3, 7, 64, 0])  # 0: the whole stream in one read
def test_feed_compact_gives_the_same_events_with_plain_data_lines_as_strings(step: int) -> None:
    stream = MIXED_STREAM + b"data: plain\n\ndata: {}\n\n"
    step = step or len(stream)
    parser = SSEParser()
    compact: list[SSEEvent | str] = []
    for i in range(0, len(stream), step):
        compact.extend(parser.feed_compact(stream[i : i + step]))
    full = feed_all([stream])
    assert [e if isinstance(e, str) else e.data for e in compact] == [e.data for e in full]
    # Events with a type, several data lines or a bare ``data`` field always keep their
    # object; a lone ``data: ...`` line read whole comes back as its string (the fast path).
    kinds = [isinstance(e, str) for e in compact]
    assert kinds[:4] == [False, False, False, False]
    if step == len(stream):
        assert kinds[4:] == [True, True]


def primed() -> SSEParser:
    """A parser past the stream's first event (its BOM check done), as held reads find it."""
    parser = SSEParser()
    assert parser.feed_compact(b'data: {"role": "assistant"}\n\n') == ['{"role": "assistant"}']
    return parser


@pytest.mark.parametrize(
    "data",
    [
        b'data: {"a": 1}\n\n',
        b'data: {"a": 1}\n\ndata: {"b": "\xc3\xa9"}\n\ndata: [DONE]\n\n',
        b"data: \n\n",  # an empty data line: an event whose data is ""
        b"data: x: y\n\n",
    ],
)
def test_plain_events_are_what_feed_compact_gives(data: bytes) -> None:
    parser = primed()
    events = parser.plain_events(data)
    assert events is not None
    assert not parser.pending
    assert events == primed().feed_compact(data)


@pytest.mark.parametrize(
    "data",
    [
        b'event: error\ndata: {"a": 1}\n\n',  # a field other than data
        b"data: a\ndata: b\n\n",  # two data lines: one event "a\nb"
        b": comment\ndata: a\n\n",
        b"data:a\n\n",  # no space after the colon
        b"data: a\r\n\r\n",  # CR line ends
        b"data: a\n\n\n\n",  # a blank line more (dispatches nothing)
        b"data: a\n\ndata: b",  # the last event not ended
        b"data: a\n",
        b"",
    ],
)
def test_plain_events_refuses_anything_else(data: bytes) -> None:
    assert primed().plain_events(data) is None


def test_plain_events_refuses_when_an_event_is_open_or_the_stream_just_began() -> None:
    parser = primed()
    parser.feed_compact(b"data: open")
    assert parser.plain_events(b"data: a\n\n") is None
    assert SSEParser().plain_events(b"data: a\n\n") is None  # the BOM check is still to come
