"""Energy per token from DCGM's documented families (a counter in mJ, power in W), power
integrated when only a gauge exists, never 0 J without a source; burst delivery counted
from chunk counts and 0.0 ms gaps."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sla.delivery import burst_delivery, delivery_note
from sla.energy import NO_ENERGY, energy_in_window
from tests.sla.test_server_intervals import T0, scraped

DCGM = "http://gpu-node:9400/metrics"


def dcgm_page(energy_mj: float, power_w: float, util: float) -> str:
    """Two GPUs as dcgm-exporter writes them (its documented names and labels)."""
    page = ""
    for gpu in ("0", "1"):
        labels = f'gpu="{gpu}",UUID="GPU-{gpu}",modelName="NVIDIA H100"'
        page += (
            f"# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter\n"
            f"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{{labels}}} {energy_mj}\n"
            f"# TYPE DCGM_FI_DEV_POWER_USAGE gauge\nDCGM_FI_DEV_POWER_USAGE{{{labels}}} {power_w}\n"
            f"# TYPE DCGM_FI_DEV_GPU_UTIL gauge\nDCGM_FI_DEV_GPU_UTIL{{{labels}}} {util}\n"
        )
    return page


def test_the_dcgm_energy_counter_gives_joules_per_token(tmp_path: Path) -> None:
    """Two GPUs each use 600 J (600,000 mJ) over 2 s of scrapes in a 10 s window: 600 W,
    6,000 J for the window; 3,000 output tokens and 30 requests ended in it. A scrape
    outside the window does not count."""
    samples = scraped(
        tmp_path,
        (T0 - 5, DCGM, dcgm_page(0.0, 0.0, 0)),
        (T0 + 4, DCGM, dcgm_page(1_000_000.0, 300.0, 90)),
        (T0 + 6, DCGM, dcgm_page(1_600_000.0, 300.0, 95)),
    )
    e = energy_in_window(samples, T0, T0 + 10, output_tokens=3000, requests=30)
    assert e is not None and e.source == "counter"
    assert e.metric == "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
    assert e.mean_power_w == pytest.approx(600.0)
    assert e.joules == pytest.approx(6000.0)
    assert e.j_per_output_token == pytest.approx(2.0)
    assert e.j_per_request == pytest.approx(200.0)
    assert "2 J/output token" in e.describe() and "energy counter" in e.describe()


def test_power_alone_is_integrated_and_no_source_is_no_figure(tmp_path: Path) -> None:
    """The reference server's power gauge at 100 then 300 W over 2 s: 200 W by trapezoids;
    a target with neither energy nor power gives None (the report says ``NO_ENERGY``)."""
    url = "http://h/metrics"
    gauge = "# TYPE slabench_gpu_power_watts gauge\nslabench_gpu_power_watts {}\n"
    samples = scraped(tmp_path, (T0, url, gauge.format(100.0)), (T0 + 2, url, gauge.format(300.0)))
    e = energy_in_window(samples, T0, T0 + 4, output_tokens=400, requests=0)
    assert e is not None and e.source == "power" and e.mean_power_w == pytest.approx(200.0)
    assert e.j_per_output_token == pytest.approx(2.0) and e.j_per_request is None
    assert "power integrated" in e.describe()
    bare = scraped(tmp_path / "cpu", (T0, url, "# TYPE up gauge\nup 1\n"))
    assert energy_in_window(bare, T0, T0 + 4, output_tokens=400, requests=4) is None
    assert NO_ENERGY == "no energy source: the target exports no energy or power metric"


def test_streams_read_in_fewer_reads_than_tokens_are_burst_delivered() -> None:
    rows = pd.DataFrame(
        {
            "output_tokens": [4, 4, 4, 1, 6],
            "chunk_count": [4, 4, 2, 1, 6],
            "chunk_gaps_ms": [[5.0, 4.0, 6.0], [0.0, 0.0, 7.0], [3.0], [], [1.0] * 5],
        }
    )
    b = burst_delivery(rows)
    assert (b.streams, b.burst) == (4, 2) and b.share == 0.5
    note = delivery_note(b)
    assert note is not None and note.startswith("2 of 4 streams (50%)")
    assert burst_delivery(rows, stream=False).share is None
