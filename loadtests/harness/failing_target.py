"""How a run treats a target that turns requests away: the options, and the watch that ends
a run whose target is down.

- ``--retry-after-max`` and ``--backoff-max``: how long a closed-loop user waits after a
  429/503 or a failed connection (``loadtests.client.backoff``).
- ``--abort-when-down SECONDS``: when every request that ended in that long found the
  target down (connection refused, or unreachable: no route, no name, connect timeout), the
  run stops early (``DownWatch``, fed with every row by the run session on the master or
  the single local process): one line, run.json ``status: target_down``, the rows kept,
  and exit code ``EXIT_TARGET_DOWN``. A verdict on such a run is never a PASS (it is
  incomplete). 0 turns the watch off.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loadtests.client.backoff import BackoffSettings
from loadtests.errors import LoadSpecError
from loadtests.workloads.shapes import parse_duration_s
from sla.files import error_class as ec
from sla.files.run import REQUEST_COLUMNS, RequestRecord

__all__ = [
    "DOWN_CLASSES",
    "EXIT_TARGET_DOWN",
    "TARGET_DOWN_STATUS",
    "DownWatch",
    "FailingTargetOptions",
    "add_failing_target_options",
]

EXIT_TARGET_DOWN = 5
TARGET_DOWN_STATUS = "target_down"  # run.json status of a run the watch ended
DOWN_CLASSES = frozenset({ec.REFUSED, ec.UNREACHABLE})
# Rows that say nothing about the target: never sent, or cut off by the end of the test.
_SILENT_CLASSES = frozenset({ec.DROPPED, ec.CANCELLED})
_CLASS = REQUEST_COLUMNS.index("error_class")
_SENT = REQUEST_COLUMNS.index("sent_at")
_DONE = REQUEST_COLUMNS.index("done_at")
_ERROR = REQUEST_COLUMNS.index("error")


def add_failing_target_options(opt: Callable[..., None]) -> None:
    """Register the options through the ``opt(flag, env, **kw)`` helper of add_options."""
    opt(
        "--abort-when-down",
        "ABORT_WHEN_DOWN",
        default="30s",
        help="end the run (exit 5) when every request for this long found the target down "
        "(connection refused or unreachable); 0 = never",
    )
    opt(
        "--retry-after-max",
        "RETRY_AFTER_MAX",
        default="60s",
        help="closed loop: after a 429/503 with Retry-After a user waits that long, at most "
        "this (0 = ignore Retry-After)",
    )
    opt(
        "--backoff-max",
        "BACKOFF_MAX",
        default="5s",
        help="closed loop: cap of the exponential back-off (from 0.1 s, with jitter) after "
        "refused or failed connections and 429/503 without Retry-After",
    )


@dataclass(frozen=True, slots=True)
class FailingTargetOptions:
    """``abort_when_down_s``: 0 = never; ``backoff``: the closed-loop users' waits."""

    abort_when_down_s: float = 30.0
    backoff: BackoffSettings = field(default_factory=BackoffSettings)

    @classmethod
    def from_namespace(cls, ns: Any) -> FailingTargetOptions:
        backoff_max_s = _duration("--backoff-max", ns.backoff_max)
        if not backoff_max_s > 0:
            raise LoadSpecError(f"--backoff-max {ns.backoff_max!r} must be > 0")
        return cls(
            abort_when_down_s=_duration("--abort-when-down", ns.abort_when_down),
            backoff=BackoffSettings(
                retry_after_max_s=_duration("--retry-after-max", ns.retry_after_max),
                backoff_max_s=backoff_max_s,
            ),
        )

    def describe(self) -> dict[str, float]:
        """For run.json's load profile."""
        return {
            "abort_when_down_s": self.abort_when_down_s,
            "retry_after_max_s": self.backoff.retry_after_max_s,
            "backoff_max_s": self.backoff.backoff_max_s,
        }


def _duration(flag: str, text: str) -> float:
    try:
        seconds = parse_duration_s(str(text))
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise LoadSpecError(f"{flag} {text!r} must be a duration >= 0 like 30s, 2m or 5")
    return seconds


class DownWatch:
    """Since when every request has found the target down (``down_since``, epoch seconds;
    None while anything else came back). Rows may arrive out of order (workers ship in
    batches): any row that reached the target clears the watch, whenever it was sent, so a
    late success can only delay the end, never hasten it."""

    __slots__ = ("down_since", "last_error", "on_down", "requests")

    def __init__(self, on_down: Callable[[], None] | None = None) -> None:
        self.down_since: float | None = None
        self.last_error: str | None = None
        self.requests = 0  # requests that found the target down since ``down_since``
        # Called when a row finds the target down while the watch said it was up: what
        # wakes the watcher, which need not poll while every request reaches the target.
        self.on_down = on_down

    def observe(self, rec: RequestRecord) -> None:
        self._see(rec.error_class, rec.sent_at, rec.done_at, rec.error)

    def observe_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        """Rows in ``REQUEST_COLUMNS`` order (batches from workers)."""
        for row in rows:
            self._see(row[_CLASS], row[_SENT], row[_DONE], row[_ERROR])

    def _see(self, error_class: str | None, sent_at: float, done_at: float, error: Any) -> None:
        if error_class in _SILENT_CLASSES:
            return
        if error_class not in DOWN_CLASSES:
            self.down_since, self.last_error, self.requests = None, None, 0
            return
        # The attempt began at sent_at (a connect timeout ends long after): down since then.
        began = sent_at if isinstance(sent_at, float) and math.isfinite(sent_at) else done_at
        if self.down_since is None:
            self.down_since = began
            if self.on_down is not None:
                self.on_down()
        elif began < self.down_since:
            self.down_since = began
        self.last_error = str(error)
        self.requests += 1

    def down_for(self, now_s: float) -> float:
        """Seconds the target has been down at ``now_s`` (0 when it is not)."""
        return 0.0 if self.down_since is None else max(0.0, now_s - self.down_since)

    def message(self, abort_s: float, run_dir: str) -> str:
        """The one line that says why the run stopped."""
        return (
            f"the target is down: every request for {abort_s:g}s failed to connect "
            f"({self.requests} requests, the last: {self.last_error}); the run stopped early "
            f"(--abort-when-down {abort_s:g}s; 0 never stops) and its rows are in {run_dir}"
        )
