"""A failing target, unit by unit: Retry-After parsing, the closed-loop back-off, the class
of each connection failure (and that it matches what a reader derives from its message),
and the watch that ends a run whose target is down."""

from __future__ import annotations

import errno
import math
import random
import socket
import ssl
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import SimpleNamespace

import pytest

from loadtests.client.backoff import BackoffSettings, ClosedLoopBackoff, parse_retry_after
from loadtests.client.failures import ConnectTimeout, MalformedResponse, connection_failure
from loadtests.client.openai_stream import StreamAccumulator
from loadtests.client.protocols import read_answer
from loadtests.errors import LoadSpecError
from loadtests.harness.failing_target import DownWatch, FailingTargetOptions
from sla.files import error_class as ec
from sla.files.error_class import derive_error_class
from sla.files.run import REQUEST_COLUMNS, RequestRecord

NOW = 1_764_400_000.0


# --- Retry-After -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("1", 1.0), (" 120 ", 120.0), ("0", 0.0), ("1.5", 1.5), (None, None), ("", None),
     ("soon", None), ("-3", None), ("Mon, 99 Foo 2026 00:00:00 GMT", None)],
)  # fmt: skip
def test_retry_after_in_seconds(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


def test_retry_after_as_an_http_date() -> None:
    later = datetime.fromtimestamp(NOW, UTC) + timedelta(seconds=30)
    assert parse_retry_after(format_datetime(later, usegmt=True), NOW) == pytest.approx(30.0)
    earlier = datetime.fromtimestamp(NOW, UTC) - timedelta(seconds=30)
    assert parse_retry_after(format_datetime(earlier, usegmt=True), NOW) == 0.0


# --- the closed-loop back-off -----------------------------------------------------------------


def _backoff(**settings: float) -> ClosedLoopBackoff:
    return ClosedLoopBackoff(BackoffSettings(**settings), random.Random(7))


def test_retry_after_is_honoured_exactly_and_capped() -> None:
    b = _backoff(retry_after_max_s=10.0)
    assert b.wait_after(429, ec.HTTP_429, 2.0) == 2.0
    assert b.wait_after(503, ec.HTTP_5XX, 2.0) == 2.0  # every time it is asked, not longer
    assert b.wait_after(429, ec.HTTP_429, 3600.0) == 10.0


def test_a_429_without_retry_after_and_refused_connections_back_off_exponentially() -> None:
    b = _backoff(base_s=0.1, backoff_max_s=1.0)
    waits = [b.wait_after(0, ec.REFUSED, None) for _ in range(6)]
    steps = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert all(s / 2 <= w <= s for w, s in zip(waits, steps, strict=True)), waits
    assert len(set(waits)) == len(waits)  # jittered: users do not retry in step
    b.wait_after(200, None, None)  # an answer ends the streak
    assert 0.05 <= b.wait_after(429, ec.HTTP_429, None) <= 0.1
    assert 0.1 <= b.wait_after(429, ec.HTTP_429, 0.0) <= 0.2  # "Retry-After: 0" is no help


def test_ignoring_retry_after_still_backs_off() -> None:
    b = _backoff(retry_after_max_s=0.0, base_s=0.1)
    assert 0.05 <= b.wait_after(429, ec.HTTP_429, 30.0) <= 0.1


@pytest.mark.parametrize(
    ("status", "error_class"),
    [(200, None), (500, ec.HTTP_5XX), (400, ec.HTTP_4XX), (200, ec.IDLE_TIMEOUT),
     (200, ec.CLOSED_MID_BODY), (0, ec.TOTAL_TIMEOUT)],
)  # fmt: skip
def test_answers_and_timeouts_are_not_waited_after(status: int, error_class: str | None) -> None:
    assert _backoff().wait_after(status, error_class, None) == 0.0


# --- the class of a failed connection, and of the other failures the client records ------------


CONNECTION_FAILURES = [
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), False, ec.REFUSED),
    (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), False, ec.UNREACHABLE),
    (OSError(errno.EHOSTUNREACH, "No route to host"), False, ec.UNREACHABLE),
    (ConnectTimeout(10.0), False, ec.UNREACHABLE),
    (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), False, ec.RESET),
    (BrokenPipeError(errno.EPIPE, "Broken pipe"), False, ec.RESET),
    (ConnectionResetError("connection closed before the body was complete"), True,
     ec.CLOSED_MID_BODY),
    (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), True, ec.CLOSED_MID_BODY),
    (MalformedResponse("invalid HTTP status line"), True, ec.MALFORMED_BODY),
    (TimeoutError("timed out"), False, ec.IDLE_TIMEOUT),
    (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), False, ec.TLS),
    (OSError(errno.EINVAL, "Invalid argument"), False, ec.CONNECTION),
]  # fmt: skip


@pytest.mark.parametrize(("exc", "answered", "expected"), CONNECTION_FAILURES)
def test_each_connection_failure_has_its_class_and_a_message_that_says_it(
    exc: OSError, answered: bool, expected: str
) -> None:
    error_class, message = connection_failure(exc, answered=answered)
    assert error_class == expected
    assert "\n" not in message
    # A reader of the run (an older one too) derives the same class from the message alone.
    assert derive_error_class(0, message) == expected


def test_answers_and_streams_carry_the_class_a_reader_would_derive() -> None:
    for status, body, expected in [
        (429, b'{"error": {"message": "try again in 0.2s"}}', ec.HTTP_429),
        (502, b"<html>bad gateway</html>", ec.HTTP_5XX),
        (200, b"not json", ec.MALFORMED_BODY),
    ]:
        answer = read_answer("openai_json", status, body)
        assert answer.error_class == expected
        assert answer.error is not None and derive_error_class(status, answer.error) == expected
    for events, expected in [
        (['{"choices": [{"delta": {"content": "a"}}]}', '{"error": {"message": "oom"}}'],
         ec.SERVER_ERROR_EVENT),
        (['{"choices": 3}'], ec.MALFORMED_SSE),
        (["{not json"], ec.MALFORMED_SSE),
        (['{"choices": [{"delta": {"content": "a"}}]}'], ec.STREAM_INCOMPLETE),
    ]:  # fmt: skip
        acc = StreamAccumulator()
        acc.on_events(events, 1.0)
        result = acc.finish(2.0, stream_ended=True)
        assert result.error_class == expected, events
        assert result.error is not None and derive_error_class(200, result.error) == expected


# --- the watch that ends a run whose target is down ---------------------------------------------


def _rec(error_class: str | None, sent_at: float, done_at: float | None = None) -> RequestRecord:
    error = None if error_class is None else f"{error_class}: x"
    status = 200 if error_class is None else 0
    done = sent_at if done_at is None else done_at
    return RequestRecord(
        "r", "local", "chat", math.nan, sent_at, math.nan, done, status, error, 8, None, None,
        0, (), error_class,
    )  # fmt: skip


def test_the_watch_counts_from_the_first_attempt_that_found_the_target_down() -> None:
    watch = DownWatch()
    watch.observe(_rec(None, 10.0))
    assert watch.down_for(100.0) == 0.0
    watch.observe(_rec(ec.REFUSED, 20.0))
    watch.observe(_rec(ec.CANCELLED, 21.0))  # cut off by the end: says nothing
    watch.observe(_rec(ec.DROPPED, 22.0))  # never sent: says nothing
    watch.observe(_rec(ec.UNREACHABLE, 15.0, done_at=25.0))  # a connect that timed out
    assert watch.down_since == 15.0 and watch.requests == 2
    assert watch.down_for(45.0) == 30.0
    line = watch.message(30.0, "runs/x")
    assert "2 requests" in line and "--abort-when-down 30s" in line and "runs/x" in line


def test_the_watch_says_once_each_time_the_target_goes_down() -> None:
    # What wakes the run's watcher, which sleeps while the target answers.
    falls: list[float | None] = []
    watch = DownWatch(on_down=lambda: falls.append(watch.down_since))
    watch.observe(_rec(None, 10.0))
    watch.observe(_rec(ec.CANCELLED, 11.0))
    assert falls == []
    watch.observe(_rec(ec.REFUSED, 20.0))
    watch.observe(_rec(ec.REFUSED, 18.0))  # earlier, still down: no second call
    watch.observe(_rec(ec.UNREACHABLE, 21.0))
    assert falls == [20.0]
    watch.observe(_rec(None, 22.0))  # back up, then down again
    watch.observe(_rec(ec.REFUSED, 30.0))
    assert falls == [20.0, 30.0]


@pytest.mark.parametrize("error_class", [None, ec.HTTP_429, ec.HTTP_5XX, ec.IDLE_TIMEOUT])
def test_anything_that_reached_the_target_clears_the_watch(error_class: str | None) -> None:
    watch = DownWatch()
    watch.observe(_rec(ec.REFUSED, 20.0))
    late = _rec(error_class, 5.0)  # from a worker's batch, sent before the refusal: still clears
    watch.observe_rows([tuple(getattr(late, name) for name in REQUEST_COLUMNS)])
    assert watch.down_since is None and watch.down_for(1e9) == 0.0


def test_options_parse_durations_and_refuse_bad_values() -> None:
    def ns(**kw: str) -> SimpleNamespace:
        return SimpleNamespace(
            **{"abort_when_down": "30s", "retry_after_max": "60s", "backoff_max": "5s", **kw}
        )

    options = FailingTargetOptions.from_namespace(ns(abort_when_down="0", retry_after_max="2m"))
    assert options.abort_when_down_s == 0.0
    assert options.backoff == BackoffSettings(retry_after_max_s=120.0, backoff_max_s=5.0)
    for bad in (
        {"abort_when_down": "soon"},
        {"retry_after_max": "-1"},
        {"backoff_max": "0"},
    ):
        with pytest.raises(LoadSpecError, match="--"):
            FailingTargetOptions.from_namespace(ns(**bad))
