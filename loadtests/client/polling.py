"""How often the event loop polls the network: ``--poll-interval-ms``.

By default gevent's loop (libev) polls for the sockets' readiness as soon as it runs out of
work, so at 32 streams of 16 tokens it wakes ~2,000 times a second for a read or two each.
A wake-up costs the load generator far more CPU than a read (the poll, the switch back
into the process, the loop's pass): libev's ``io_collect_interval`` lets the loop sleep
until this interval has passed since its last poll before polling again, so each wake-up
takes the reads of every stream that arrived meanwhile. Timers are not delayed: libev
shortens that sleep to the next one (the loop-lag monitor, the timeouts, open-loop sends).

That delays when a read is *made*, not when its bytes are *stamped*: on a plain TCP
connection every read that times a request is stamped with the kernel's receive time of
its bytes (``loadtests.client.stream_reads``, the answer's head in
``loadtests.client.transport``), so no request time moves. Over TLS reads are stamped when
they return, so the interval is not used for an ``https`` target.

gevent does not expose the setting; libev's ``ev_set_io_collect_interval`` is called on
its loop through ctypes (gevent's libev extension exports it). Where the loop is not
libev's (``GEVENT_LOOP`` chose libuv), nothing changes and ``set_poll_interval`` says so.
"""

from __future__ import annotations

import ctypes
from functools import cache

import gevent

__all__ = ["set_poll_interval"]


@cache
def _collect_interval() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    try:
        from gevent.libev import corecext
    except ImportError:
        return None
    try:
        setter = ctypes.CDLL(corecext.__file__).ev_set_io_collect_interval
    except (OSError, AttributeError):
        return None
    setter.argtypes = [ctypes.c_void_p, ctypes.c_double]
    setter.restype = None
    return setter


def set_poll_interval(seconds: float) -> bool:
    """Make this thread's event loop poll the network at most once per ``seconds`` (0: as
    soon as it has nothing else to do, libev's default). Whether it took effect."""
    loop = gevent.get_hub().loop
    setter = _collect_interval()
    ptr = getattr(loop, "ptr", None)
    if setter is None or not ptr or type(loop).__module__ != "gevent.libev.corecext":
        return False
    setter(ptr, max(0.0, seconds))
    return True
