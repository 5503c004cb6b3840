"""Typed application keys and the server's lifecycle state."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np
from aiohttp import web

from reference_server.batcher import DynamicBatcher
from reference_server.config import ServerConfig
from reference_server.connections import BodyReader
from reference_server.faults import FaultInjector
from reference_server.generation import GenerationEngine
from reference_server.gpu_telemetry import Telemetry
from reference_server.metrics import ServerMetrics


@dataclass
class Lifecycle:
    """Readiness and in-flight accounting, for graceful shutdown."""

    draining: bool = False
    inflight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def enter(self) -> None:
        self.inflight += 1
        self.idle.clear()

    def leave(self) -> None:
        self.inflight -= 1
        if self.inflight == 0:
            self.idle.set()


@dataclass(frozen=True)
class Schedulers:
    generation: GenerationEngine
    embeddings: DynamicBatcher[list[int], np.ndarray]
    classifier: DynamicBatcher[np.ndarray, np.ndarray]
    device: str
    dtype: str
    telemetry: Telemetry  # GPU figures and energy on /metrics, or why there are none


CONFIG = web.AppKey("config", ServerConfig)
METRICS = web.AppKey("metrics", ServerMetrics)
FAULTS = web.AppKey("faults", FaultInjector)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
SCHEDULERS = web.AppKey("schedulers", Schedulers)
BODIES = web.AppKey("bodies", BodyReader)
