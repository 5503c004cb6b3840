"""Child processes that die with the process that started them.

A capacity step's locust and the bundled reference server are started with
``preexec_fn=die_with_parent``: on Linux the kernel sends them SIGTERM when their parent
ends, however it ends (SIGKILL included), so a killed search or run leaves no load
generator or server behind. Elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import signal
import sys

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child, before exec: SIGTERM this process when its parent thread exits."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
