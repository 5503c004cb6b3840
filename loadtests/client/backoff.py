"""How long a closed-loop user waits after a request the target turned away.

A closed-loop user sends its next request as soon as the previous one is done. Against a
target that answers at once with 429, or refuses the connection, that is a tight loop: the
error rate then measures the client's retry speed, and a rate-limited API gets flooded. So
after such a request the user waits (``ClosedLoopBackoff.wait_after``):

- 429 or 503 with a ``Retry-After`` header (delay-seconds or an HTTP-date): exactly that
  long, at most ``retry_after_max_s`` (0: the header is not honoured);
- 429 or 503 without one (or with 0), and a connection that failed before any answer
  (refused, unreachable, reset, TLS): an exponential back-off with jitter, ``base_s``
  doubling with each such failure in a row, at most ``backoff_max_s``, each wait drawn
  between half and all of its step;
- anything else (a success, another error, a timeout that already waited): no wait, and
  the streak of failures starts again.

The wait is recorded with the request that caused it (``backoff_ms``): it lowers the load
offered, and the run's summary says by how much. Open-loop schedules never use this: their
arrivals keep their times whatever the answers.
"""

from __future__ import annotations

import email.utils
import math
import random
import re
from dataclasses import dataclass
from datetime import UTC

from sla.files import error_class as ec

__all__ = ["BackoffSettings", "ClosedLoopBackoff", "parse_retry_after"]

RATE_LIMIT_STATUSES = frozenset({429, 503})
BACKOFF_CLASSES = frozenset({ec.REFUSED, ec.UNREACHABLE, ec.RESET, ec.TLS, ec.CONNECTION})
_SECONDS = re.compile(r"\d+(?:\.\d*)?")


@dataclass(frozen=True, slots=True)
class BackoffSettings:
    """``retry_after_max_s``: the longest ``Retry-After`` honoured (0: ignore the header);
    ``backoff_max_s``: the cap of the exponential back-off, whose first step is ``base_s``."""

    retry_after_max_s: float = 60.0
    backoff_max_s: float = 5.0
    base_s: float = 0.1


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delay-seconds (a decimal fraction is
    accepted too) or an HTTP-date, counted from ``now_s`` (epoch seconds); 0 for a date in
    the past; None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if _SECONDS.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now_s)


class ClosedLoopBackoff:
    """One closed-loop user's waits (see the module docstring). Not shared between users:
    it counts this user's failures in a row."""

    __slots__ = ("_rng", "_settings", "_streak")

    def __init__(self, settings: BackoffSettings, rng: random.Random | None = None) -> None:
        self._settings = settings
        self._rng = rng or random.Random()
        self._streak = 0

    def wait_after(
        self, status: int, error_class: str | None, retry_after_s: float | None
    ) -> float:
        """Seconds to wait before this user's next request, after one that ended with
        ``status`` and ``error_class`` (``retry_after_s``: its parsed ``Retry-After``)."""
        s = self._settings
        rate_limited = status in RATE_LIMIT_STATUSES
        if not rate_limited and error_class not in BACKOFF_CLASSES:
            self._streak = 0
            return 0.0
        self._streak += 1
        if rate_limited and retry_after_s and s.retry_after_max_s > 0:
            return min(retry_after_s, s.retry_after_max_s)
        step = min(s.backoff_max_s, s.base_s * 2.0 ** min(self._streak - 1, 30))
        return step * (0.5 + 0.5 * self._rng.random())
