"""The time bound of a request made before the load: the model lookup, the prefix-cache
reset, the round-trip calibration and a closed-loop user's connection warm-up.

Each is one cheap request to the target, and each must end within the run's own timeouts.
The transport bounds a connect (its connect timeout) and each socket read (its network
timeout, ``--idle-timeout`` + 5 s), but not a whole answer: a target that accepts the
connection and never answers (a black hole, a plain-HTTP port asked for TLS) held the
start-up until one of those ran out, and one that drips its bytes, for ever. So a start-up
request gets its whole answer within ``startup_timeout_s``: ``--idle-timeout`` (the
silence a run tolerates mid-answer), at most ``--request-timeout``.

Usage::

    with answer_within(startup_timeout_s(idle_s, total_s), "GET /v1/models"):
        response = transport.send("GET", "/v1/models", None)
        body = response.read()

A request cut here leaves its connection in the transport's pool half used: close that
transport (or start a new one) rather than send on it again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import gevent

__all__ = ["NoAnswer", "answer_within", "startup_timeout_s"]


class NoAnswer(Exception):
    """A start-up request had no complete answer within its bound. Not a ``TimeoutError``:
    the transport reads one raised during a connect as its own connect timeout."""


def startup_timeout_s(idle_timeout_s: float, request_timeout_s: float) -> float:
    """The longest a start-up request may wait for its whole answer."""
    return min(idle_timeout_s, request_timeout_s)


@contextlib.contextmanager
def answer_within(seconds: float, what: str) -> Iterator[None]:
    """Raise ``NoAnswer`` in this greenlet if the block lasts more than ``seconds``."""
    with gevent.Timeout(seconds, NoAnswer(f"no answer to {what} within {seconds:g} s")):
        yield
