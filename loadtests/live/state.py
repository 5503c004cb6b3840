"""The live state of a run: bounded, incremental figures per endpoint, fed with the same
rows the run directory gets (no gevent; the run session feeds it, on the master from what
the workers ship).

Each row is counted once, when it reaches the recorder, into:

- the measured window (requests that started after ``measured_from``: the run's warm-up and
  the spec's): ``sla.live.LiveSamples`` per endpoint, judged by ``sla.provisional``;
- a ring of per-second ``LiveSamples`` (by the second the request ended), of which the last
  ``recent_s`` seconds make the "recent" figures; per endpoint, a running sum of them that
  a look reads in two pieces (see ``_Recent``), not ``recent_s``.

Memory is bounded by the sketches (a few hundred buckets a metric) and the values a second
keeps uncounted until it leaves the ring (at most ``sla.live.BATCH`` a metric), times the
endpoints times ``recent_s + 1``, whatever the length of the run. Rows cut off by the end of
the test (``cancelled``) are left out, as every figure of the run leaves them out.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

from sla.files import error_class as ec
from sla.files.run import REQUEST_COLUMNS, RequestRecord
from sla.live import LiveSamples
from sla.spec import Spec

__all__ = ["LiveState"]

_COL = {name: i for i, name in enumerate(REQUEST_COLUMNS)}
_ENDPOINT, _SCHEDULED, _SENT = _COL["endpoint"], _COL["scheduled_at"], _COL["sent_at"]
_FIRST, _DONE = _COL["first_token_at"], _COL["done_at"]
_STATUS, _ERROR = _COL["status"], _COL["error"]
_OUT, _GAPS, _CLASS = _COL["output_tokens"], _COL["chunk_gaps_ms"], _COL["error_class"]
_OUTPUT_AT = _COL["first_output_at"]


class LiveState:
    """Per-endpoint live figures of one run (see the module)."""

    def __init__(
        self,
        *,
        measured_from: float,
        spec: Spec | None = None,
        recent_s: int = 30,
    ) -> None:
        self.measured_from = measured_from
        self.recent_s = recent_s
        self.window: dict[str, LiveSamples] = {}
        self._rings: dict[str, _Recent] = {}
        self._per_request = spec.per_request if spec is not None else ()
        self.rows = 0  # every row seen, warm-up and cancelled included
        # The end of the measured window, once the test is stopping: as at the end of the
        # run, requests started later, and rates of requests done later, are not measured.
        self.until = math.inf

    def add_record(self, rec: RequestRecord) -> None:
        self._add(
            rec.endpoint,
            rec.scheduled_at,
            rec.sent_at,
            rec.first_token_at,
            rec.done_at,
            rec.status,
            rec.error,
            rec.output_tokens,
            rec.chunk_gaps_ms,
            rec.error_class,
            rec.first_output_at,
        )

    def add_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """Rows in ``REQUEST_COLUMNS`` order (as workers ship them)."""
        for r in rows:
            self._add(
                r[_ENDPOINT],
                r[_SCHEDULED],
                r[_SENT],
                r[_FIRST],
                r[_DONE],
                r[_STATUS],
                r[_ERROR],
                r[_OUT],
                r[_GAPS],
                r[_CLASS],
                r[_OUTPUT_AT],
            )

    def _add(
        self,
        endpoint: str,
        scheduled: float,
        sent: float,
        first: float,
        done: float,
        status: int,
        error: str | None,
        output_tokens: int | None,
        gaps: Sequence[float] | None,
        error_class: str | None,
        output_at: float | None,
    ) -> None:
        self.rows += 1
        if error_class == ec.CANCELLED:
            return
        open_loop = scheduled == scheduled  # not NaN
        start = scheduled if open_loop else sent
        ok = error is None and 200 <= status < 300
        began = start if start == start else done
        in_window = self.measured_from <= began <= self.until
        # get-then-create: setdefault would build (and drop) a LiveSamples for every row
        ring = self._rings.get(endpoint)
        if ring is None:
            ring = self._rings[endpoint] = _Recent(self.recent_s)
        targets = ring.targets(int(done))
        if in_window:
            window = self.window.get(endpoint)
            if window is None:
                window = self.window[endpoint] = LiveSamples()
            targets.append(window)
        ttft = (first - start) * 1000.0
        latency = (done - start) * 1000.0
        tokens = output_tokens or 0
        tpot = (done - first) * 1000.0 / (tokens - 1) if tokens >= 2 else math.nan
        good = ok and self._good(ttft, latency, tpot, gaps, start, output_at)
        for s in targets:
            s.n += 1
            if ok:
                lat = s.latency
                lat["ttft_ms"].add(ttft)
                lat["latency_ms"].add(latency)
                lat["tpot_ms"].add(tpot)
                if output_at is not None:
                    lat["ttfot_ms"].add((output_at - start) * 1000.0)
                if open_loop:
                    lat["schedule_lag_ms"].add((sent - scheduled) * 1000.0)
                if gaps:
                    lat["itl_ms"].add_all(gaps)
                if self.measured_from <= done <= self.until:
                    s.done_ok += 1
                    s.done_tokens += tokens
                    s.done_tokens_sq += tokens * tokens
                    s.done_good += good
                    s.done_counted += output_tokens is not None
                s.good += good
            else:
                s.failed += 1
                name = error_class or ec.CLIENT_ERROR
                s.errors[name] = s.errors.get(name, 0) + 1
                if error_class == ec.DROPPED:
                    s.dropped += 1

    def _good(
        self,
        ttft: float,
        latency: float,
        tpot: float,
        gaps: Sequence[float] | None,
        start: float,
        output_at: float | None,
    ) -> bool:
        """Every ``per_request`` limit of the spec holds (a missing value fails it)."""
        for metric, limit in self._per_request:
            if metric == "ttft_ms":
                value = ttft
            elif metric == "latency_ms":
                value = latency
            elif metric == "tpot_ms":
                value = tpot
            elif metric == "itl_ms":
                value = max(gaps) if gaps else math.nan
            else:
                value = (output_at - start) * 1000.0 if output_at is not None else math.nan
            if not value <= limit:
                return False
        return True

    def recent(self, now_s: float) -> dict[str, LiveSamples]:
        """Per endpoint, the rows that ended in the last ``recent_s`` whole seconds."""
        since = int(now_s) - self.recent_s
        return {endpoint: ring.total(since) for endpoint, ring in self._rings.items()}

    def window_s(self, now_s: float) -> float | None:
        """The measured window so far (None during the warm-up)."""
        span = now_s - self.measured_from
        return span if span > 0 else None

    def endpoints(self) -> list[str]:
        return sorted(self.window)


class _Recent:
    """One endpoint's last seconds: a ring of per-second ``LiveSamples`` (by the second the
    request ended) and the running sum of its closed seconds (all but the last). A second
    is merged into the sum once, when a later one begins, and subtracted as it leaves the
    ring: the work is the endpoint's own, spread over the run, and a look adds two pieces.
    A closing second's values join the sum's buffer (``LiveSamples.absorb``), counted in
    its next batch; the second keeps them to be subtracted when it leaves."""

    __slots__ = ("closed", "recent_s", "ring")

    def __init__(self, recent_s: int) -> None:
        self.recent_s = recent_s
        self.ring: deque[tuple[int, LiveSamples]] = deque()
        self.closed = LiveSamples()

    def targets(self, second: int) -> list[LiveSamples]:
        """Where a row that ended in ``second`` is counted: its second's samples, and the
        running sum too when that second is already closed (a straggler)."""
        ring = self.ring
        if ring and ring[-1][0] == second:
            return [ring[-1][1]]
        samples = LiveSamples()
        if not ring or second > ring[-1][0]:
            if ring:  # the last second closes: into the running sum
                self.closed.absorb(ring[-1][1])
            ring.append((second, samples))
            self.expire(second - self.recent_s)
            return [samples]
        if second < ring[-1][0] - self.recent_s:
            return []  # too old to be recent
        # A straggler: its second is closed, in the ring or in a gap of it (no row ended then).
        for i in range(len(ring) - 1, -1, -1):
            t, old = ring[i]
            if t == second:
                return [old, self.closed]
            if t < second:
                ring.insert(i + 1, (second, samples))
                return [samples, self.closed]
        ring.appendleft((second, samples))
        return [samples, self.closed]

    def expire(self, since: int) -> None:
        """Drop the seconds before ``since`` (closed ones leave the running sum)."""
        ring = self.ring
        while ring and ring[0][0] < since:
            _, samples = ring.popleft()
            if ring:  # it was closed (a later second exists)
                self.closed.subtract(samples)

    def total(self, since: int) -> LiveSamples:
        """The rows that ended in ``since`` or later."""
        self.expire(since)
        out = LiveSamples()
        if self.ring:
            out.merge(self.closed)
            out.merge(self.ring[-1][1])
        return out
