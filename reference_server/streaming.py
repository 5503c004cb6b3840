"""Small pieces shared by streaming handlers: SSE framing and stop-string matching."""

from __future__ import annotations

import json
from typing import Any


def sse_event(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


class StopMatcher:
    """Cuts generated text at the first stop string.

    Text that could still turn out to be the start of a stop string is held back, so a
    stop string never leaks into the output, even split across tokens.
    """

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = stops
        self._hold = max((len(s) for s in stops), default=1) - 1
        self._pending = ""

    def push(self, text: str) -> tuple[str, bool]:
        """Returns (text safe to emit now, stopped)."""
        if not self._stops:
            return text, False
        self._pending += text
        cut = min((i for s in self._stops if (i := self._pending.find(s)) >= 0), default=-1)
        if cut >= 0:
            out, self._pending = self._pending[:cut], ""
            return out, True
        keep = len(self._pending) - self._hold
        if keep <= 0:
            return "", False
        out, self._pending = self._pending[:keep], self._pending[keep:]
        return out, False

    def flush(self) -> str:
        out, self._pending = self._pending, ""
        return out
