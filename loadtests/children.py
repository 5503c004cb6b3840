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
_SIGTERM = int(signal.SIGTERM)
# Resolved here, in the parent: between fork and exec the child must not load libraries or
# import anything (another thread of the parent may have held a lock at the fork).
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def die_with_parent() -> None:
    """In the child, before exec: SIGTERM this process when its parent thread exits."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, _SIGTERM, 0, 0, 0)


def tied_to_parent() -> Callable[[], None] | None:
    """``preexec_fn`` for a child that must end with this process: ``die_with_parent`` on
    the main thread, None on any other."""
    return die_with_parent if threading.current_thread() is threading.main_thread() else None
