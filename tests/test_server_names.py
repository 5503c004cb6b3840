"""The names the reference server exports are the names slabench reads: its NVML collector
(with the fake NVML module of its tests) and its timing histograms, written by
prometheus_client, parsed as the scraper parses them (``ScrapeRecorder``), then read by
``sla.energy`` and ``sla.server_intervals`` over two scrapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from reference_server.gpu_telemetry import telemetry_for
from reference_server.metrics import create_metrics
from sla.energy import GPU_UTILISATION, TARGET_REPORTS_NONE, energy_in_window, no_energy_reason
from sla.server_intervals import decompose
from tests.reference_server.test_gpu_telemetry import FakeNvml
from tests.sla.test_server_intervals import T0, client_rows, scraped

URL = "http://127.0.0.1:8000/metrics"


def exposition(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def test_nvml_telemetry_as_scraped_gives_the_fake_counters_joules_per_token(
    tmp_path: Path,
) -> None:
    """The fake NVML's energy counter grows 2.5 J a read (one read a scrape): 2.5 J between
    two scrapes 2 s apart, 50 output tokens and 5 requests in the window: 0.05 J/token."""
    registry = CollectorRegistry()
    telemetry = telemetry_for("cuda:0", [0], nvml=FakeNvml())
    registry.register(telemetry)
    samples = scraped(
        tmp_path, (T0, URL, exposition(registry)), (T0 + 2, URL, exposition(registry))
    )
    e = energy_in_window(samples, T0, T0 + 2, output_tokens=50, requests=5)
    assert e is not None and e.source == "counter" and e.metric == "slabench_gpu_energy_joules"
    assert e.joules == pytest.approx(2.5) and e.mean_power_w == pytest.approx(1.25)
    assert e.j_per_output_token == pytest.approx(0.05) and e.j_per_request == pytest.approx(0.5)
    names = set(samples["name"])
    utilisation = next(n for n, _ in GPU_UTILISATION if n in names)
    assert samples[samples["name"] == utilisation]["value"].iloc[0] == pytest.approx(0.42)


def test_a_cpu_servers_energy_source_none_is_said_as_the_targets_own(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    registry.register(telemetry_for("cpu", []))
    samples = scraped(
        tmp_path, (T0, URL, exposition(registry)), (T0 + 2, URL, exposition(registry))
    )
    assert energy_in_window(samples, T0, T0 + 2, output_tokens=50, requests=5) is None
    assert no_energy_reason(samples) == TARGET_REPORTS_NONE


def test_the_servers_timing_histograms_decompose_to_its_own_means(tmp_path: Path) -> None:
    """A first round of observations, a scrape, a second round, a scrape: each component's
    mean over the interval is the mean of the second round, as the server observed it."""
    m = create_metrics()
    rounds = {
        "queue": [(m.queue_time.labels("generation"), (0.5, 0.1, 0.3))],
        "prefill": [(m.prefill_time, (0.9, 0.02, 0.04))],
        "decode": [(m.decode_time, (3.0, 1.0, 2.0))],
        "ttft": [(m.ttft, (1.0, 0.15, 0.35))],
        "tpot": [(m.itl, (0.2, 0.01, 0.03))],
        "e2e": [(m.request_latency.labels("chat"), (5.0, 1.2, 2.4))],
    }
    expected = {"queue": 200.0, "prefill": 30.0, "decode": 1500.0, "ttft": 250.0}
    expected.update(tpot=20.0, e2e=1800.0)
    for parts in rounds.values():
        for histogram, values in parts:
            histogram.observe(values[0])
    first = exposition(m.registry)
    for parts in rounds.values():
        for histogram, values in parts:
            for value in values[1:]:
                histogram.observe(value)
    samples = scraped(tmp_path, (T0, URL, first), (T0 + 2, URL, exposition(m.registry)))
    d = decompose(samples, client_rows([], [], []))
    assert d.server == "slabench reference server" and d.missing == ()
    for key, mean_ms in expected.items():
        assert d.frame[f"server_{key}_ms"].tolist() == pytest.approx([mean_ms]), key
    assert np.isnan(d.frame["client_e2e_ms"]).all()
