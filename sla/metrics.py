"""Per-request metrics derived from the exact timestamps of ``requests.parquet``.

Definitions (the same text as ARCHITECTURE.md, "Metric definitions"):

- ``latency_ms`` (E2E) = ``done_at - start``, where start = ``scheduled_at`` in open-loop mode
  (free of coordinated omission) and ``sent_at`` otherwise;
  ``schedule_lag_ms`` = ``sent_at - scheduled_at``.
- ``ttft_ms`` = ``first_token_at - start``: the first token of any kind (reasoning, a tool
  call, text, even a token whose text is empty).
- ``ttfot_ms`` (time to first output token) = ``first_output_at - start``: the first visible
  output (text or a tool call, not reasoning); equal to ``ttft_ms`` for a model that does
  not reason, later by the thinking time for one that does.
- ``itl_ms`` = each gap between consecutive token-bearing chunks (one value per gap, pooled).
- ``tpot_ms`` = ``(done_at - first_token_at) / (output_tokens - 1)``, output tokens from the
  server's ``usage`` when it reports them, else counted from chunks.
- ``server_queue_ms``, ``server_prefill_ms``, ``server_decode_ms``, ``server_total_ms``: what
  the server said of its own time for the request (``requests.parquet``, read by
  ``loadtests.client.server_timings``); NaN where it said nothing.
- ``client_overhead_ms`` = ``(done_at - sent_at) * 1000 - server_total_ms``: the time the
  client saw that the server does not account for: the network both ways, HTTP, and the load
  generator's own reading. From ``sent_at``, not the open-loop ``start``: the schedule lag
  (``schedule_lag_ms``) is time the load generator held the request before sending it, which
  neither the network nor the server saw. NaN without a server total.
- Throughput: requests/s and output tokens/s over the measured window (after warm-up),
  counting the requests that *ended* inside it (``sla.reading.Reading.completed``): a
  request still in flight when the test stops is cut off and left out of every metric, so
  counting by start would make every rate low by about latency / window (20% for 2 s
  answers in a 10 s window).

Aliases: vLLM TPOT = GenAI-Perf/AIPerf/GuideLLM "ITL" = our ``tpot_ms``;
vLLM "ITL" = AIPerf "ICL" = our ``itl_ms``; GuideLLM "TPOT" = E2E / output tokens.

Every function here is pure and vectorised: a run of millions of rows never loops in Python.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sla.files.error_class import fill_error_classes
from sla.files.run import CANCELLED_ERRORS

FloatArray = npt.NDArray[np.float64]


def floats(df: pd.DataFrame, column: str) -> FloatArray:
    """A column as float64 with NaN for nulls (works for Int32, float and object columns)."""
    return pd.to_numeric(df[column]).to_numpy(dtype=np.float64, na_value=np.nan)


def start_s(df: pd.DataFrame) -> FloatArray:
    """The start of each request: ``scheduled_at`` in open loop, ``sent_at`` in closed loop."""
    scheduled = floats(df, "scheduled_at")
    return np.where(np.isnan(scheduled), floats(df, "sent_at"), scheduled)


def ok_mask(df: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """True for a request that succeeded: ``200 <= status < 300`` and ``error`` is null."""
    status = floats(df, "status")
    no_error = df["error"].isna().to_numpy(dtype=bool)
    return (status >= 200) & (status < 300) & no_error


def with_request_metrics(df: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of ``df`` with the per-request metric columns added.

    - ``start`` = ``scheduled_at`` when it is not NaN (open loop), else ``sent_at``.
    - ``latency_ms`` = ``(done_at - start) * 1000``.
    - ``ttft_ms`` = ``(first_token_at - start) * 1000``; NaN when no token arrived.
    - ``ttfot_ms`` = ``(first_output_at - start) * 1000``; NaN when no visible output
      arrived (and for runs recorded before the column existed).
    - ``schedule_lag_ms`` = ``(sent_at - scheduled_at) * 1000``; NaN in closed loop and for
      dropped open-loop sends.
    - ``tpot_ms`` = ``(done_at - first_token_at) * 1000 / (output_tokens - 1)``; NaN unless
      ``output_tokens >= 2`` and ``first_token_at`` is known.
    - ``client_overhead_ms`` = ``(done_at - sent_at) * 1000 - server_total_ms``; NaN when
      the server told no total (the ``server_*_ms`` columns are NaN in runs recorded
      before they existed).
    - ``ok`` = ``200 <= status < 300`` and ``error`` is null.
    - ``error_class`` = the row's class, derived from ``status`` and ``error`` where it has
      none (``sla.files.error_class.fill_error_classes``); None for a successful row.
    """
    start = start_s(df)
    sent = floats(df, "sent_at")
    first = floats(df, "first_token_at")
    output = _optional(df, "first_output_at")
    done = floats(df, "done_at")
    tokens = floats(df, "output_tokens")
    server_total = _optional(df, "server_total_ms")
    has_tpot = (tokens >= 2) & ~np.isnan(first)
    with np.errstate(divide="ignore", invalid="ignore"):
        tpot = np.where(has_tpot, (done - first) * 1000.0 / (tokens - 1.0), np.nan)
    return df.assign(
        start=start,
        latency_ms=(done - start) * 1000.0,
        ttft_ms=(first - start) * 1000.0,
        ttfot_ms=(output - start) * 1000.0,
        schedule_lag_ms=(sent - floats(df, "scheduled_at")) * 1000.0,
        tpot_ms=tpot,
        client_overhead_ms=(done - sent) * 1000.0 - server_total,
        ok=ok_mask(df),
        error_class=fill_error_classes(df),
    )


def _optional(df: pd.DataFrame, column: str) -> FloatArray:
    """A float column added after the first schema (NaN when a frame has none)."""
    return floats(df, column) if column in df else np.full(len(df), np.nan)


def itl_ms(df: pd.DataFrame, *, only_ok: bool = True) -> FloatArray:
    """Every gap between consecutive token-bearing chunks, pooled over the rows (ms).

    One value per gap, not one per request: a request with 100 chunks weighs 99 times as much
    as a request with 2. ``only_ok`` keeps the gaps of successful requests only.
    """
    gaps = df["chunk_gaps_ms"]
    if only_ok:
        gaps = gaps[ok_mask(df)]
    arrow = pa.array(gaps, type=pa.list_(pa.float64()))
    flat = pc.list_flatten(arrow)
    return np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float64)


def window_mask(
    values: FloatArray, begin: float | None, end: float | None
) -> npt.NDArray[np.bool_]:
    """``begin <= values <= end``; a bound that is None is not applied (NaN is never in)."""
    keep = np.ones(len(values), dtype=bool)
    if begin is not None:
        keep &= values >= begin
    if end is not None:
        keep &= values <= end
    return keep


def not_cancelled(df: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """False for a request cut off by the end of the test (``CANCELLED_ERRORS``: in flight,
    or never sent)."""
    return ~df["error"].isin(CANCELLED_ERRORS).to_numpy(dtype=bool, na_value=False)


def throughput(df: pd.DataFrame, window_s: float) -> dict[str, float]:
    """Rates over a window of ``window_s`` seconds (pass ``Reading.completed``).

    - ``requests_per_s`` = successful (``ok``) requests / window.
    - ``output_tokens_per_s`` = output tokens of successful requests / window.
    - ``errors_per_s`` = failed requests (including dropped open-loop sends) / window.
    """
    if not window_s > 0:
        raise ValueError(f"window_s must be > 0, got {window_s}")
    ok = ok_mask(df)
    tokens = floats(df, "output_tokens")[ok]
    n_ok = int(ok.sum())
    return {
        "requests_per_s": n_ok / window_s,
        "output_tokens_per_s": float(np.nansum(tokens)) / window_s,
        "errors_per_s": (len(df) - n_ok) / window_s,
    }
