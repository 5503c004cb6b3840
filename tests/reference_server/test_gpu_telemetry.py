"""GPU telemetry on ``/metrics``: a CPU server says it has no energy source; the NVML
collector's arithmetic and its failures, tested with a fake NVML module injected (a unit test
of our collector, not of NVML: the real GPU path runs only in ``benchmarks/gpu_smoke.py``)."""

from __future__ import annotations

import logging
import sys
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from reference_server.gpu_telemetry import telemetry_for
from reference_server.state import SCHEDULERS
from tests.reference_server.helpers import metric
from tests.reference_server.in_process import SMALL, run


class NotSupported(Exception):
    pass


class FakeNvml:
    """The NVML calls the collector makes, with known readings; energy grows 2.5 J a read."""

    def __init__(self, *, energy_supported: bool = True, init_error: str = "") -> None:
        self.energy_mj = 1_000_000
        self.energy_supported = energy_supported
        self.init_error = init_error
        self.shut = False

    def nvmlInit(self) -> None:
        if self.init_error:
            raise RuntimeError(self.init_error)

    def nvmlShutdown(self) -> None:
        self.shut = True

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return f"handle{index}"

    def nvmlDeviceGetUUID(self, handle: str) -> bytes:
        return b"GPU-1234"  # older nvidia-ml-py versions answer bytes

    def nvmlDeviceGetUtilizationRates(self, handle: str) -> Any:
        return SimpleNamespace(gpu=42, memory=10)

    def nvmlDeviceGetMemoryInfo(self, handle: str) -> Any:
        return SimpleNamespace(used=3 * 2**30, total=80 * 2**30, free=77 * 2**30)

    def nvmlDeviceGetPowerUsage(self, handle: str) -> int:
        return 123_456  # mW

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: str) -> int:
        if not self.energy_supported:
            raise NotSupported("Not Supported")
        self.energy_mj += 2_500
        return self.energy_mj


def scrape(collector: Any) -> str:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


def test_a_cpu_server_says_it_has_no_energy_source() -> None:
    async def body(client: Any) -> tuple[str, str]:
        async with client.get("/metrics") as resp:
            return await resp.text(), client.server.app[SCHEDULERS].telemetry.summary

    text, summary = run(SMALL, body)
    assert metric(text, "slabench_energy_source", source="none") == 1
    assert "slabench_gpu_" not in text
    assert summary == "energy source: none (the server runs on cpu, not on a GPU)"


def test_nvml_readings_become_metrics_in_base_units() -> None:
    nvml = FakeNvml()
    telemetry = telemetry_for("cuda", [0], nvml=nvml)
    assert telemetry.source == "nvml" and "GPU 0 (GPU-1234)" in telemetry.summary
    first, second = scrape(telemetry), scrape(telemetry)
    gpu = {"gpu": "0", "uuid": "GPU-1234"}
    assert metric(first, "slabench_energy_source", source="nvml") == 1
    assert metric(first, "slabench_gpu_utilization_ratio", **gpu) == pytest.approx(0.42)
    assert metric(first, "slabench_gpu_memory_used_bytes", **gpu) == 3 * 2**30
    assert metric(first, "slabench_gpu_power_watts", **gpu) == pytest.approx(123.456)
    energy = [metric(t, "slabench_gpu_energy_joules_total", **gpu) for t in (first, second)]
    assert energy == [pytest.approx(1002.5), pytest.approx(1005.0)]  # read at each scrape
    telemetry.close()
    assert nvml.shut


def test_a_reading_nvml_cannot_make_is_left_out_and_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    telemetry = telemetry_for("cuda", [0], nvml=FakeNvml(energy_supported=False))
    with caplog.at_level(logging.WARNING, logger="reference_server"):
        texts = [scrape(telemetry) for _ in range(3)]
    assert all("slabench_gpu_energy" not in t and "slabench_gpu_power_watts{" in t for t in texts)
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "NVML: GPU 0 slabench_gpu_energy_joules cannot be read (Not Supported); left out"
    ]


def test_nvml_missing_or_failing_means_no_energy_source(monkeypatch: pytest.MonkeyPatch) -> None:
    failing = telemetry_for("cuda", [0], nvml=FakeNvml(init_error="Driver Not Loaded"))
    assert failing.summary == "energy source: none (NVML failed to start: Driver Not Loaded)"
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    missing = telemetry_for("cuda", [0])
    assert "pynvml is not installed" in missing.summary
    for telemetry in (failing, missing):
        text = scrape(telemetry)
        assert metric(text, "slabench_energy_source", source="none") == 1
        assert "slabench_gpu_" not in text
