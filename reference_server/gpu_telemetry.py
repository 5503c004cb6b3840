"""GPU telemetry and energy on ``/metrics``, read through NVML at scrape time.

On CUDA, ``telemetry_for(device)`` opens NVML (``pynvml``, from the ``nvidia-ml-py`` package,
imported only then) and returns a prometheus_client collector that reads, per GPU the server
uses, at each scrape (no background thread):

==================================  ===============================================  ==========
metric                              NVML call (unit converted)                       DCGM field
==================================  ===============================================  ==========
slabench_gpu_utilization_ratio      nvmlDeviceGetUtilizationRates().gpu / 100        GPU_UTIL
slabench_gpu_memory_used_bytes      nvmlDeviceGetMemoryInfo().used                   FB_USED
slabench_gpu_power_watts            nvmlDeviceGetPowerUsage() mW / 1000              POWER_USAGE
slabench_gpu_energy_joules_total    nvmlDeviceGetTotalEnergyConsumption() mJ / 1000  TOTAL_ENERGY_
                                                                                     CONSUMPTION
==================================  ===============================================  ==========

and ``slabench_energy_source{source="nvml"} 1``. Anywhere else (the CPU, NVML missing or
failing) it exports ``slabench_energy_source{source="none"} 1`` and no GPU metric, and
``Telemetry.summary`` says why in one line, which the server prints at start-up.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("reference_server")


@dataclass(frozen=True, slots=True)
class Gpu:
    index: str  # the CUDA index the server uses (label ``gpu``)
    uuid: str
    handle: Any


@dataclass(eq=False)  # hashable: the registry keys its collectors
class Telemetry(Collector):
    """The collector; ``source`` is ``"nvml"`` or ``"none"``."""

    source: str
    summary: str
    nvml: Any = None
    gpus: list[Gpu] = field(default_factory=list)
    _failed: set[str] = field(default_factory=set)  # readings already reported as failing

    def collect(self) -> Iterator[Any]:
        source = GaugeMetricFamily(
            "slabench_energy_source",
            "Where GPU power and energy figures come from: nvml, or none (no GPU, no NVML)",
            labels=["source"],
        )
        source.add_metric([self.source], 1.0)
        yield source
        if not self.gpus:
            return
        labels = ["gpu", "uuid"]
        util = GaugeMetricFamily(
            "slabench_gpu_utilization_ratio",
            "Share of the last sample period a kernel ran on the GPU (NVML; DCGM GPU_UTIL / 100)",
            labels=labels,
        )
        memory = GaugeMetricFamily(
            "slabench_gpu_memory_used_bytes",
            "GPU memory in use, all processes (NVML; DCGM FB_USED is in MiB)",
            labels=labels,
        )
        power = GaugeMetricFamily(
            "slabench_gpu_power_watts",
            "GPU power draw (NVML; DCGM POWER_USAGE)",
            labels=labels,
        )
        energy = CounterMetricFamily(
            "slabench_gpu_energy_joules",
            "GPU energy since the driver loaded (NVML; DCGM TOTAL_ENERGY_CONSUMPTION is in mJ)",
            labels=labels,
        )
        readings = ((util, _utilization), (memory, _memory), (power, _power), (energy, _energy))
        for gpu in self.gpus:
            for family, read in readings:
                self._read(family, gpu, read)
        yield from (family for family, _ in readings if family.samples)

    def _read(self, family: Any, gpu: Gpu, read: Callable[[Any, Any], float]) -> None:
        """One reading; a failing one is left out of the scrape, and said once in the log."""
        try:
            family.add_metric([gpu.index, gpu.uuid], read(self.nvml, gpu.handle))
        except Exception as exc:  # NVMLError_NotSupported on GPUs without the counter, ...
            key = f"{gpu.index}:{family.name}"
            if key not in self._failed:
                self._failed.add(key)
                log.warning(
                    "NVML: GPU %s %s cannot be read (%s); left out", gpu.index, family.name, exc
                )

    def close(self) -> None:
        if self.nvml is not None:
            _shutdown_quietly(self.nvml)
            self.nvml, self.gpus = None, []


def _utilization(nvml: Any, handle: Any) -> float:
    return float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu) / 100.0


def _memory(nvml: Any, handle: Any) -> float:
    return float(nvml.nvmlDeviceGetMemoryInfo(handle).used)


def _power(nvml: Any, handle: Any) -> float:
    return float(nvml.nvmlDeviceGetPowerUsage(handle)) / 1000.0  # mW


def _energy(nvml: Any, handle: Any) -> float:
    return float(nvml.nvmlDeviceGetTotalEnergyConsumption(handle)) / 1000.0  # mJ


def _no_source(why: str) -> Telemetry:
    return Telemetry("none", f"energy source: none ({why})")


def telemetry_for(device: str, cuda_indices: list[int], nvml: Any = None) -> Telemetry:
    """The collector for a server on ``device`` using CUDA GPUs ``cuda_indices``.

    ``nvml`` is the NVML module (``pynvml``), imported here on CUDA when not given."""
    if not device.startswith("cuda"):
        return _no_source(f"the server runs on {device}, not on a GPU")
    if nvml is None:
        try:
            nvml = importlib.import_module("pynvml")
        except ImportError:
            return _no_source("pynvml is not installed; pip install nvidia-ml-py")
    try:
        nvml.nvmlInit()
    except Exception as exc:
        return _no_source(f"NVML failed to start: {exc}")
    try:
        gpus = [_gpu(nvml, index) for index in cuda_indices]
    except Exception as exc:
        _shutdown_quietly(nvml)
        return _no_source(f"NVML cannot open the GPU: {exc}")
    names = ", ".join(f"GPU {g.index} ({g.uuid})" for g in gpus)
    return Telemetry("nvml", f"energy source: NVML, {names}", nvml, gpus)


def _gpu(nvml: Any, cuda_index: int) -> Gpu:
    """NVML's handle of the GPU that CUDA calls ``cuda_index``: found by UUID, since
    CUDA_VISIBLE_DEVICES renumbers CUDA's GPUs but not NVML's."""
    uuid = _cuda_uuid(cuda_index)
    if uuid is not None:
        try:
            return Gpu(str(cuda_index), uuid, nvml.nvmlDeviceGetHandleByUUID(uuid))
        except Exception:  # a UUID spelled otherwise: the index is right without renumbering
            log.debug("NVML has no GPU %s; taking index %d", uuid, cuda_index, exc_info=True)
    handle = nvml.nvmlDeviceGetHandleByIndex(cuda_index)
    raw = nvml.nvmlDeviceGetUUID(handle)
    return Gpu(str(cuda_index), raw if isinstance(raw, str) else raw.decode(), handle)


def _cuda_uuid(cuda_index: int) -> str | None:
    """``GPU-...``, as NVML spells it, of a CUDA device; None when torch cannot say."""
    try:
        import torch

        raw = getattr(torch.cuda.get_device_properties(cuda_index), "uuid", None)
    except Exception:  # no CUDA here (a test with a fake NVML), or an old torch
        return None
    if raw is None:
        return None
    text = str(raw)
    return text if text.startswith("GPU-") else f"GPU-{text}"


def _shutdown_quietly(nvml: Any) -> None:
    try:
        nvml.nvmlShutdown()
    except Exception:
        log.debug("nvmlShutdown failed", exc_info=True)
