"""The live state of a run: bounded, incremental figures per endpoint, fed with the same
rows the run directory gets (no gevent; the run session feeds it, on the master from what
the workers ship).

Each row is counted once, when it reaches the recorder, into:

- the measured window (requests that started after ``measured_from``: the run's warm-up and
  the spec's): ``sla.live.LiveSamples`` per endpoint, judged by ``sla.provisional``;
- a ring of per-second ``LiveSamples`` (by the second the request ended), of which the last
  ``recent_s`` seconds make the "recent" figures.

Memory is bounded by the sketches (a few hundred buckets a metric) times the endpoints
times ``recent_s + 1``, whatever the length of the run. Rows cut off by the end of the test
(``cancelled``) are left out, as every figure of the run leaves them out.
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
        self._ring: deque[tuple[int, dict[str, LiveSamples]]] = deque()
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
        second = self._second(int(done))
        recent = second.get(endpoint)
        if recent is None:
            recent = second[endpoint] = LiveSamples()
        targets = [recent]
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

    def _second(self, second: int) -> dict[str, LiveSamples]:
        ring = self._ring
        if ring and ring[-1][0] == second:
            return ring[-1][1]
        for t, old in reversed(ring):  # a straggler: its second is already in the ring
            if t == second:
                return old
        bucket: dict[str, LiveSamples] = {}
        if not ring or second > ring[-1][0]:
            ring.append((second, bucket))
            while ring and ring[0][0] <= second - self.recent_s - 1:
                ring.popleft()
        return bucket  # older than the ring: counted nowhere recent

    def recent(self, now_s: float) -> dict[str, LiveSamples]:
        """Per endpoint, the rows that ended in the last ``recent_s`` whole seconds."""
        out: dict[str, LiveSamples] = {}
        since = int(now_s) - self.recent_s
        for t, bucket in self._ring:
            if t >= since:
                for endpoint, samples in bucket.items():
                    out.setdefault(endpoint, LiveSamples()).merge(samples)
        return out

    def window_s(self, now_s: float) -> float | None:
        """The measured window so far (None during the warm-up)."""
        span = now_s - self.measured_from
        return span if span > 0 else None

    def endpoints(self) -> list[str]:
        return sorted(self.window)
