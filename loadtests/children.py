"""Child processes that die with the process that started them.

A capacity step's locust and the bundled reference server are started with
``preexec_fn=die_with_parent``: on Linux the kernel sends them SIGTERM when their parent
ends, however it ends (SIGKILL included), so a killed search or run leaves no load
generator or server behind. Elsewhere it does nothing.

The kernel ties the child to the *thread* that started it, so ``tied_to_parent()`` gives
the hook only on the main thread (whose end is the process's end): a child started from a
helper thread (a test restarting a server) outlives that thread, as before.

``tie_forks(True)`` does the same for children forked without exec: Locust forks its
``--processes`` workers from the main thread after importing the locustfile and before
``init``, and without this a master that ended early (a Ctrl-C while it started) would leave
them waiting for it for a minute.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["die_with_parent", "tie_forks", "tied_to_parent"]

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


@dataclass
class _Forks:
    tied: bool = False
    hooked: bool = False
    parent: int = 0


_FORKS = _Forks()


def tie_forks(tied: bool) -> None:
    """While ``tied``, every child this process forks runs ``die_with_parent`` (call it on
    the main thread: the child is tied to the thread that forks)."""
    if tied and not _FORKS.hooked:
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _FORKS.hooked = True
    _FORKS.tied, _FORKS.parent = tied, os.getpid()


def _after_fork_in_child() -> None:
    if _FORKS.tied:
        die_with_parent()
        if os.getppid() != _FORKS.parent:  # the parent ended before the hook was set
            os.kill(os.getpid(), _SIGTERM)
