"""Energy per token over a run's measured window, from the scraped GPU families.

Sources, the first found wins (two exporters of one GPU must not be added up):

- a cumulative energy counter: DCGM's ``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`` (mJ),
  Triton's ``nv_energy_consumption`` (J), the reference server's NVML counter (J);
  its increase between the first and last scrape in the window, summed over GPUs;
- else a power gauge integrated over those scrapes (trapezoids): DCGM's
  ``DCGM_FI_DEV_POWER_USAGE``, Triton's ``nv_gpu_power_usage``, the reference server's (W).

Either gives the mean power over the scrapes in the window; times the window's length, the
energy of the window, over the output tokens (and the successful requests) that ended in it
(the same requests as the run's throughput): J per output token = mean W / output tok/s.
Without any source there is no figure, never 0 J: ``no_energy_reason`` says why, in one
line (the target exports no energy metric; or it says itself it has none, as the reference
server does with ``slabench_energy_source{source="none"} 1`` on a CPU; or nothing was scraped).

Usage::

    e = energy_in_window(samples, reading.measured_from, reading.ended_at, tokens, requests)
    e.j_per_output_token, e.source     # "counter" or "power"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from sla.server_families import stored_name

__all__ = [
    "ENERGY_COUNTERS",
    "GPU_UTILISATION",
    "NO_ENERGY",
    "POWER_GAUGES",
    "Energy",
    "energy_in_window",
    "no_energy_reason",
]

NO_ENERGY = "no energy source: the target exports no energy or power metric"
NO_SCRAPES = "no energy source: no server metrics were scraped"
TARGET_REPORTS_NONE = (
    'no energy source: the target reports none (slabench_energy_source{source="none"}: '
    "the reference server runs on a CPU, or cannot read NVML; its start-up line says why)"
)
ENERGY_SOURCE = "slabench_energy_source"

# (family, factor to joules)
ENERGY_COUNTERS = (
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", 1e-3),
    ("nv_energy_consumption", 1.0),
    ("slabench_gpu_energy_joules", 1.0),
)
# (family, factor to watts)
POWER_GAUGES = (
    ("DCGM_FI_DEV_POWER_USAGE", 1.0),
    ("nv_gpu_power_usage", 1.0),
    ("slabench_gpu_power_watts", 1.0),
)
# (family, factor to %)
GPU_UTILISATION = (
    ("DCGM_FI_DEV_GPU_UTIL", 1.0),
    ("nv_gpu_utilization", 100.0),
    ("slabench_gpu_utilization_ratio", 100.0),
)


@dataclass(frozen=True, slots=True)
class Energy:
    source: Literal["counter", "power"]
    metric: str
    mean_power_w: float
    window_s: float
    output_tokens: int
    requests: int

    @property
    def joules(self) -> float:
        return self.mean_power_w * self.window_s

    @property
    def j_per_output_token(self) -> float | None:
        return self.joules / self.output_tokens if self.output_tokens else None

    @property
    def j_per_request(self) -> float | None:
        return self.joules / self.requests if self.requests else None

    def describe(self) -> str:
        how = "energy counter" if self.source == "counter" else "power integrated"
        per_token = self.j_per_output_token
        per_request = self.j_per_request
        return (
            f"energy {self.joules:.1f} J over {self.window_s:.1f} s "
            f"(mean {self.mean_power_w:.1f} W, {how}: {self.metric}): "
            + (f"{per_token:.4g} J/output token" if per_token is not None else "no output tokens")
            + (f", {per_request:.4g} J/request" if per_request is not None else "")
        )


def _series(samples: pd.DataFrame, name: str, lo: float, hi: float) -> pd.DataFrame:
    """One column per GPU (label set and URL), one row per scrape inside ``[lo, hi]``."""
    rows = samples[(samples["name"] == name) & samples["scraped_at"].between(lo, hi)]
    key = rows["labels"] + rows["url"] if "url" in rows else rows["labels"]
    wide = rows.assign(key=key).pivot_table(
        index="scraped_at", columns="key", values="value", aggfunc="last"
    )
    return wide.sort_index()


def _counter_power(wide: pd.DataFrame) -> float | None:
    times = wide.index.to_numpy(dtype=np.float64)
    if len(times) < 2 or times[-1] <= times[0]:
        return None
    values = wide.ffill().to_numpy(dtype=np.float64)
    step = np.diff(values, axis=0)
    step = np.where(step < 0, values[1:], step)  # a restarted exporter counts from zero
    return float(np.nansum(step)) / float(times[-1] - times[0])


def _gauge_power(wide: pd.DataFrame) -> float | None:
    times = wide.index.to_numpy(dtype=np.float64)
    if len(times) == 0:
        return None
    total = wide.ffill().fillna(0.0).sum(axis=1).to_numpy(dtype=np.float64)
    if len(times) == 1 or times[-1] <= times[0]:
        return float(total.mean())
    area = float(np.sum((total[1:] + total[:-1]) / 2.0 * np.diff(times)))
    return area / float(times[-1] - times[0])


def energy_in_window(
    samples: pd.DataFrame | None,
    start: float | None,
    end: float | None,
    output_tokens: int,
    requests: int,
) -> Energy | None:
    """The energy of the window ``start``..``end`` (epoch s); None without a source."""
    if samples is None or samples.empty or start is None or end is None or end <= start:
        return None
    names = set(samples["name"].unique())
    window_s = end - start
    for family, to_j in ENERGY_COUNTERS:
        name = stored_name(names, family)
        if name is not None:
            power = _counter_power(_series(samples, name, start, end))
            if power is not None:
                return Energy("counter", family, power * to_j, window_s, output_tokens, requests)
    for name, to_w in POWER_GAUGES:
        if name in names:
            power = _gauge_power(_series(samples, name, start, end))
            if power is not None:
                return Energy("power", name, power * to_w, window_s, output_tokens, requests)
    return None


def no_energy_reason(samples: pd.DataFrame | None) -> str:
    """Why a run has no energy figure, in one line (``energy_in_window`` gave None)."""
    if samples is None or samples.empty:
        return NO_SCRAPES
    said = samples[(samples["name"] == ENERGY_SOURCE) & (samples["value"] > 0)]
    if said["labels"].str.contains('"source": "none"', regex=False).any():
        return TARGET_REPORTS_NONE
    return NO_ENERGY
