"""Child processes that die with the process that started them.

A capacity step's locust and the bundled reference server are started with
``preexec_fn=die_with_parent``: on Linux the kernel sends them SIGTERM when their parent
ends, however it ends (SIGKILL included), so a killed search or run leaves no load
generator or server behind. Elsewhere it does nothing.

The kernel ties the child to the *thread* that started it, so ``tied_to_parent()`` gives
the hook only on the main thread (whose end is the process's end): a child started from a
helper thread (a test restarting a server) outlives that thread, as before.
"""

from __future__ import annotations

import ctypes
import signal
import sys
import threading
from collections.abc import Callable

__all__ = ["die_with_parent", "tied_to_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child, before exec: SIGTERM this process when its parent thread exits."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def tied_to_parent() -> Callable[[], None] | None:
    """``preexec_fn`` for a child that must end with this process: ``die_with_parent`` on
    the main thread, None on any other."""
    return die_with_parent if threading.current_thread() is threading.main_thread() else None
