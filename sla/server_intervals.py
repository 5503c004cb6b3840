"""Where the time goes, per scrape interval, for a server that reports only Prometheus.

Between two consecutive scrapes, each timing component a recognised server exports
(``sla.server_families``) has a mean: the increase of a histogram's ``_sum`` over the
increase of its ``_count`` (seconds), or of a cumulative µs counter over the increase of the
request counter (Triton). Beside it, the client's mean TTFT, E2E latency and TPOT of the
successful requests that ended in the same interval: the server's figures describe
generation, the client's what was delivered.

Counters are summed over label sets (every model, every endpoint) and scrape URLs; a value
lower than the previous one is a restart, and the new value is the increase.

Usage::

    d = decompose(run.server_metrics, reading.rows)
    d.server, d.found, d.missing    # "vLLM"; ("queue: vllm:request_queue_time_seconds", ...)
    d.frame                         # start, end, server_<key>_ms..., client_..._ms, requests
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sla.server_families import SERVERS, Component, ServerFamilies, stored_name

__all__ = ["Decomposition", "decompose", "increases", "recognised_server"]

_CLIENT = (("ttft", "ttft_ms"), ("e2e", "latency_ms"), ("tpot", "tpot_ms"))


@dataclass(frozen=True, slots=True)
class Decomposition:
    server: str | None  # None: no family of a known server was scraped
    found: tuple[str, ...]  # "<component>: <family>"
    missing: tuple[str, ...]  # "<component>: <family> (or <other>)"
    frame: pd.DataFrame  # one row per scrape interval

    def describe(self) -> str:
        """One line for the terminal and the report: which families were found / missing."""
        if self.server is None:
            known = ", ".join(s.server for s in SERVERS)
            return f"no server timing families scraped (known: {known})"
        text = f"{self.server}: found {', '.join(self.found) or 'none'}"
        return text + (f"; missing {', '.join(self.missing)}" if self.missing else "")


def increases(samples: pd.DataFrame, name: str) -> pd.Series:
    """The increase of counter ``name`` between consecutive scrapes, indexed by the end of
    each interval (epoch s), summed over label sets and URLs; a drop is a restart."""
    rows = samples[samples["name"] == name]
    key = rows["labels"] + rows["url"] if "url" in rows else rows["labels"]
    wide = rows.assign(key=key).pivot_table(
        index="scraped_at", columns="key", values="value", aggfunc="last"
    )
    wide = wide.sort_index().ffill()
    values = wide.to_numpy(dtype=np.float64)
    if len(values) < 2:
        return pd.Series(dtype=np.float64)
    step = np.diff(values, axis=0)
    step = np.where(step < 0, values[1:], step)
    return pd.Series(np.nansum(step, axis=1), index=wide.index[1:])


def recognised_server(names: set[str]) -> ServerFamilies | None:
    """The first known server with a family in ``names``."""
    return next((s for s in SERVERS if any(n.startswith(s.prefix) for n in names)), None)


def _component(
    samples: pd.DataFrame, names: set[str], part: Component
) -> tuple[str, pd.Series] | None:
    """``(family used, mean in ms per interval)``; None when the server lacks it."""
    if part.kind == "histogram":
        for base in part.names:
            if {f"{base}_sum", f"{base}_count"} <= names:
                total, count = (
                    increases(samples, f"{base}_sum"),
                    increases(samples, f"{base}_count"),
                )
                return base, (total / count.where(count > 0)) * 1000.0
        return None
    stored = [stored_name(names, n) for n in (*part.names, part.count)]
    if None in stored:
        return None
    *durations, requests = [n for n in stored if n is not None]
    total = sum((increases(samples, n) for n in durations[1:]), increases(samples, durations[0]))
    count = increases(samples, requests)
    return " + ".join(part.names), (total / count.where(count > 0)) / 1000.0


def decompose(samples: pd.DataFrame | None, rows: pd.DataFrame) -> Decomposition:
    """The per-interval frame of the server's timings and the client's means (``rows``: the
    run's rows with the per-request metric columns, ``Reading.rows``)."""
    names = set() if samples is None or samples.empty else set(samples["name"].unique())
    server = recognised_server(names)
    if server is None or samples is None:
        return Decomposition(None, (), (), pd.DataFrame())
    found, missing, columns = [], [], {}
    for part in server.components:
        got = _component(samples, names, part)
        if got is None:
            joined = (" + " if part.kind == "counter_us" else " or ").join(part.names)
            missing.append(f"{part.key}: {joined}")
            continue
        found.append(f"{part.key}: {got[0]}")
        columns[f"server_{part.key}_ms"] = got[1]
    frame = pd.DataFrame(columns).sort_index()
    if not frame.empty:
        frame = _with_client(frame, samples, rows)
    return Decomposition(server.server, tuple(found), tuple(missing), frame)


def _with_client(frame: pd.DataFrame, samples: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Add ``start`` and the client's means over each interval (requests ended in it)."""
    times = np.sort(samples["scraped_at"].unique())
    ends = frame.index.to_numpy(dtype=np.float64)
    starts = times[np.searchsorted(times, ends) - 1]
    out = frame.reset_index(names="end").assign(start=starts)
    done = rows["done_at"].to_numpy(dtype=np.float64)
    ok = rows["ok"].to_numpy(dtype=bool) if "ok" in rows else np.ones(len(rows), dtype=bool)
    counts: list[int] = []
    means: dict[str, list[float]] = {f"client_{k}_ms": [] for k, _ in _CLIENT}
    for lo, hi in zip(starts, ends, strict=True):
        inside = ok & (done > lo) & (done <= hi)
        counts.append(int(inside.sum()))
        for key, column in _CLIENT:
            values = rows[column].to_numpy(dtype=np.float64)[inside] if column in rows else []
            values = np.asarray(values)[~np.isnan(values)] if len(values) else values
            means[f"client_{key}_ms"].append(float(np.mean(values)) if len(values) else np.nan)
    return out.assign(requests=counts, **means)[
        ["start", "end", *frame.columns, "requests", *means]
    ]
