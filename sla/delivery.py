"""Delivery against generation: did the client see tokens as the server made them?

A server that is busy writing its output (vLLM on a loaded CPU) often hands several tokens
to the network in one write, and the client reads them at the same instant: its gaps of
0.0 ms are a delivery artefact, and its TPOT/ITL describe delivery, not generation. A
stream is *burst-delivered* when its tokens arrived in fewer reads than tokens: the reads
are the distinct arrival instants of its token-bearing chunks (``1 +`` the non-zero chunk
gaps), never more than ``chunk_count``; streams of fewer than 2 output tokens say nothing.

Usage::

    b = burst_delivery(reading.measured_ok)
    b.streams, b.burst, b.share         # share: None without any stream of 2+ tokens
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["BURST_WARN_SHARE", "BurstDelivery", "burst_delivery", "delivery_note"]

BURST_WARN_SHARE = 0.10  # the terminal says so above this share of streams


@dataclass(frozen=True, slots=True)
class BurstDelivery:
    streams: int  # successful streams with 2+ output tokens
    burst: int  # of them, delivered in fewer reads than tokens

    @property
    def share(self) -> float | None:
        return self.burst / self.streams if self.streams else None


def burst_delivery(rows: pd.DataFrame, *, stream: bool = True) -> BurstDelivery:
    """Count the burst-delivered streams among ``rows`` (successful requests); nothing when
    the run asked for non-streamed answers (``stream`` False: one read by design)."""
    if (
        not stream
        or rows.empty
        or not {"output_tokens", "chunk_count", "chunk_gaps_ms"} <= set(rows)
    ):
        return BurstDelivery(0, 0)
    tokens = rows["output_tokens"].to_numpy(dtype=np.float64)
    chunks = rows["chunk_count"].to_numpy(dtype=np.float64)
    streams = burst = 0
    for n_tokens, n_chunks, gaps in zip(tokens, chunks, rows["chunk_gaps_ms"], strict=True):
        if not n_tokens >= 2 or not n_chunks >= 1:
            continue
        values = np.asarray(gaps if gaps is not None else [], dtype=np.float64)
        reads = min(n_chunks, 1 + int(np.count_nonzero(values[~np.isnan(values)] > 0.0)))
        streams += 1
        burst += reads < n_tokens
    return BurstDelivery(streams, burst)


def delivery_note(burst: BurstDelivery) -> str | None:
    """The sentence the report and the terminal print; None without any stream."""
    share = burst.share
    if share is None:
        return None
    return (
        f"{burst.burst} of {burst.streams} streams ({share:.0%}) arrived in fewer reads than "
        "tokens (burst delivery): the client's TTFT, TPOT and ITL describe delivery, the "
        "server's TTFT and TPOT histograms describe generation."
    )
