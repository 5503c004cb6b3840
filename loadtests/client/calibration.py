"""The round trip to the target before the measured window: run.json's ``calibration``.

How much of a request's client-side latency is the path to the server and back, measured
before any load: ``rounds`` TCP connects on fresh sockets (the TCP handshake only: no TLS,
closed at once), then ``rounds`` cheap GETs (the scenario's warm-up path: ``/v1/models``,
``/v2/health/ready``) one after another over one kept-alive connection of the run's own
transport (its HTTP client, headers and TLS), the first one untimed (it opens the
connection). Each figure is the median and the 90th percentile, in ms; the GETs count
whatever status the target answers (a 404 still went there and back).

It stops at the first failure and says why in ``error`` (one line): a target that is down
costs one connect timeout, never the run. In distributed mode the master measures its own
path to the target, not the workers'.
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from loadtests.client.transport import Transport

__all__ = ["ROUNDS", "calibrate"]

ROUNDS = 10


def _percentiles(values_s: Sequence[float]) -> dict[str, float | int] | None:
    if not values_s:
        return None
    ms = sorted(v * 1000.0 for v in values_s)
    n = len(ms)
    p50 = (ms[(n - 1) // 2] + ms[n // 2]) / 2.0
    p90 = ms[max(0, math.ceil(0.9 * n) - 1)]  # nearest rank
    return {"p50": round(p50, 4), "p90": round(p90, 4), "n": n}


def calibrate(
    new_transport: Callable[[], Transport],
    path: str,
    *,
    rounds: int = ROUNDS,
    connect_timeout_s: float = 5.0,
) -> dict[str, Any]:
    """run.json's ``calibration``: ``connect_ms``, ``rtt_ms`` ({p50, p90, n}; null when
    not measured), ``path``, ``status`` (the GETs' last answer) and ``error`` (null)."""
    transport = new_transport()
    out: dict[str, Any] = {"rounds": rounds, "path": path, "status": None, "error": None}
    connects: list[float] = []
    rtts: list[float] = []
    try:
        address = _address(transport.target.base_url)
        for _ in range(rounds):
            start = time.perf_counter()
            sock = socket.create_connection(address, timeout=connect_timeout_s)
            connects.append(time.perf_counter() - start)
            sock.close()
        for i in range(rounds + 1):
            start = time.perf_counter()
            response = transport.send("GET", path, None)
            response.read()
            out["status"] = response.status_code
            response.release()
            if i:  # the first one opened the connection
                rtts.append(time.perf_counter() - start)
    except Exception as exc:  # whatever stopped it is reported in run.json, never raised
        out["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    finally:
        transport.close()
    out["connect_ms"] = _percentiles(connects)
    out["rtt_ms"] = _percentiles(rtts)
    return out


def _address(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "", port
