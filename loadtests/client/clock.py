"""One clock for every timestamp the load generator records.

``time.time()`` can step (NTP) and has coarse resolution on some systems; ``perf_counter``
is monotonic and fine-grained but has no epoch. Anchoring the latter to the former once per
process gives epoch seconds with perf_counter resolution, so differences are exact.
"""

from __future__ import annotations

import time

_WALL0 = time.time()
_PERF0 = time.perf_counter()


def now() -> float:
    """Seconds since the Unix epoch, monotonic within this process."""
    return _WALL0 + (time.perf_counter() - _PERF0)
