"""A capacity step's live lines, relayed to the search's terminal.

A step's locust writes everything to its log (``<step>.log`` in the sweep); the live view's
lines (``slabench live ...``, one per endpoint and per objective every ``--live-interval``)
are also what a user watching the search wants to see. ``LogFollower`` reads what the log
gained since it last looked (whole lines only: a line still being written waits for the
next look), and ``relayed`` turns a live line into the search's own, naming the step.
The log stays the step's full record; nothing is taken from it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["LIVE_PREFIX", "LogFollower", "relayed"]

LIVE_PREFIX = "slabench live"
_MAX_READ = 1 << 20  # per look: a step that floods its log is read on over the next looks


class LogFollower:
    """The whole lines appended to ``path`` since the last ``new_lines`` call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self._partial = b""

    def new_lines(self) -> list[str]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read(_MAX_READ)
        except OSError:  # not there yet, or gone: nothing new to relay
            return []
        self.offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        return [line.decode("utf-8", errors="replace").rstrip("\r") for line in lines]


def relayed(line: str, step: str) -> str | None:
    """The search's line for a step's live line (``None`` for any other line):
    ``slabench live 12s ...`` of step 3 becomes ``step 3 live 12s ...``."""
    if not line.startswith(LIVE_PREFIX):
        return None
    return f"{step} live{line[len(LIVE_PREFIX) :]}"
