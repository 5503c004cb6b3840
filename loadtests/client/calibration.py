"""The round trip to the target before the measured window: run.json's ``calibration``.

How much of a request's client-side latency is the path to the server and back, measured
before any load: ``rounds`` TCP connects on fresh sockets (the TCP handshake only: no TLS,
closed at once), then ``rounds`` cheap GETs (the scenario's warm-up path: ``/v1/models``,
``/v2/health/ready``) one after another over one kept-alive connection of the run's own
transport (its HTTP client, headers and TLS), the first one untimed (it opens the
connection). Each figure is the median and the 90th percentile, in ms; the GETs count
whatever status the target answers (a 404 still went there and back).

It runs before the load's clock starts (``harness.run_start.preflight``) and is bounded:
each connect by the run's connect timeout, each GET's whole answer by the start-up bound
(``loadtests.client.startup``: ``--idle-timeout``, at most ``--request-timeout``), and the
whole calibration by ``BUDGET_S``, past which it keeps what it measured (``n`` says how
much). It stops at the first failure and says why in ``error`` (one line): a target that is
down costs one connect timeout, one that never answers one start-up bound, never the run.
In distributed mode the master measures its own path to the target, not the workers'.
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import gevent

from loadtests.client.startup import answer_within
from loadtests.client.transport import Transport

__all__ = ["BUDGET_S", "ROUNDS", "calibrate"]

ROUNDS = 10
BUDGET_S = 10.0  # the longest the whole calibration may take: it is worth no more start-up


class _OverBudget(Exception):
    pass


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
    answer_timeout_s: float = 10.0,
    budget_s: float = BUDGET_S,
) -> dict[str, Any]:
    """run.json's ``calibration``: ``connect_ms``, ``rtt_ms`` ({p50, p90, n}; null when
    not measured), ``path``, ``status`` (the GETs' last answer) and ``error`` (null)."""
    transport = new_transport()
    out: dict[str, Any] = {"rounds": rounds, "path": path, "status": None, "error": None}
    connects: list[float] = []
    rtts: list[float] = []
    step = "a TCP connect"
    budget = gevent.Timeout(budget_s, _OverBudget())
    budget.start()
    try:
        address = _address(transport.target.base_url)
        for _ in range(rounds):
            start = time.perf_counter()
            sock = socket.create_connection(address, timeout=connect_timeout_s)
            connects.append(time.perf_counter() - start)
            sock.close()
        step = f"GET {path}"
        for i in range(rounds + 1):
            start = time.perf_counter()
            with answer_within(answer_timeout_s, step):
                response = transport.send("GET", path, None)
                response.read()
            out["status"] = response.status_code
            response.release()
            if i:  # the first one opened the connection
                rtts.append(time.perf_counter() - start)
    except _OverBudget:
        out["error"] = (
            f"stopped at its {budget_s:g} s budget during {step}: {len(connects)} connects "
            f"and {len(rtts)} round trips of {rounds} measured"
        )
    except Exception as exc:  # whatever stopped it is reported in run.json, never raised
        out["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    finally:
        budget.cancel()
        transport.close()
    out["connect_ms"] = _percentiles(connects)
    out["rtt_ms"] = _percentiles(rtts)
    return out


def _address(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "", port
