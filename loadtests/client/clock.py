"""One clock for every timestamp the load generator records.

``time.time()`` can step (NTP) and has coarse resolution on some systems; ``perf_counter``
is monotonic and fine-grained but has no epoch. Anchoring the latter to the former once per
process gives epoch seconds with perf_counter resolution, so differences are exact.
"""

from __future__ import annotations

import time
from time import perf_counter

_WALL0 = time.time()
_PERF0 = perf_counter()
# One addition per timestamp (called a few times per read of every stream): the offset
# is rounded once, here, and every timestamp keeps perf_counter's steps.
_OFFSET = _WALL0 - _PERF0


def now() -> float:
    """Seconds since the Unix epoch, monotonic within this process."""
    return _OFFSET + perf_counter()
