"""``create_app(config)``: the aiohttp application used by ``__main__`` and by tests alike."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import torch
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from reference_server import admin, kserve_api, openai_api
from reference_server.batcher import DynamicBatcher
from reference_server.config import ServerConfig
from reference_server.connections import BodyReader
from reference_server.errors import ShuttingDown
from reference_server.faults import FaultInjector
from reference_server.generation import GenerationEngine
from reference_server.gpu_telemetry import telemetry_for
from reference_server.metrics import ServerMetrics, create_metrics
from reference_server.middleware import admission_middleware, error_middleware
from reference_server.models import CausalLM, Encoder, KVCache, MLPClassifier
from reference_server.runtime import classify_batch, embed_batch, resolve_device
from reference_server.state import (
    BODIES,
    CONFIG,
    FAULTS,
    LIFECYCLE,
    METRICS,
    SCHEDULERS,
    Lifecycle,
    Schedulers,
)


def create_app(
    config: ServerConfig, *, registry: CollectorRegistry | None = None
) -> web.Application:
    app = web.Application(
        client_max_size=config.max_body_bytes,
        middlewares=[error_middleware, admission_middleware],
    )
    app[CONFIG] = config
    app[METRICS] = create_metrics(registry)
    app[FAULTS] = FaultInjector(config.faults)
    app[LIFECYCLE] = Lifecycle()
    app[LIFECYCLE].idle.set()
    app[BODIES] = BodyReader(
        config.max_body_reads, config.body_timeout_s, memory_limit=config.max_body_memory
    )
    app.cleanup_ctx.append(_schedulers)
    openai_api.add_routes(app)
    kserve_api.add_routes(app)
    app.router.add_get("/metrics", _metrics)
    app.router.add_post("/reset_prefix_cache", _reset_prefix_cache)
    if config.enable_admin:
        admin.add_routes(app)
    return app


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _reset_prefix_cache(request: web.Request) -> web.Response:
    """Empty the prefix cache (as vLLM's dev-mode endpoint): 200, no body."""
    admin.check_same_site(request, "reset_prefix_cache")
    request.app[SCHEDULERS].generation.reset_prefix_cache()
    return web.Response(status=200)


def _build_schedulers(
    config: ServerConfig, metrics: ServerMetrics, faults: FaultInjector
) -> Schedulers:
    """The three models on the resolved device, each behind its scheduler."""
    device, dtype = resolve_device(config.device, config.dtype)
    lm = CausalLM(config.lm).to(device=device, dtype=dtype).eval()
    encoder = Encoder(config.embedder).to(device=device, dtype=dtype).eval()
    classifier = MLPClassifier(config.classifier).to(device=device, dtype=dtype).eval()
    limits = config.batching
    gpus = []
    if device.type == "cuda":
        gpus = [device.index if device.index is not None else torch.cuda.current_device()]
    cache = KVCache(config.lm, limits.max_num_seqs, device, dtype)
    return Schedulers(
        generation=GenerationEngine(lm, cache, limits, metrics, faults, config.prefix_cache),
        embeddings=DynamicBatcher(
            "embeddings", lambda items: embed_batch(encoder, items, device), limits, metrics, faults
        ),
        classifier=DynamicBatcher(
            "kserve",
            lambda items: classify_batch(classifier, items, device, dtype),
            limits,
            metrics,
            faults,
        ),
        device=str(device),
        dtype=str(dtype).removeprefix("torch."),
        telemetry=telemetry_for(device.type, gpus),
    )


async def _schedulers(app: web.Application) -> AsyncIterator[None]:
    """Build the models, start one scheduler task each, stop them on cleanup."""
    schedulers = _build_schedulers(app[CONFIG], app[METRICS], app[FAULTS])
    app[SCHEDULERS] = schedulers
    registry = app[METRICS].registry
    registry.register(schedulers.telemetry)
    tasks = [
        asyncio.create_task(schedulers.generation.run(), name="generation"),
        asyncio.create_task(schedulers.embeddings.run(), name="embeddings"),
        asyncio.create_task(schedulers.classifier.run(), name="kserve"),
    ]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    schedulers.generation.abort_all(ShuttingDown("server stopped"))
    registry.unregister(schedulers.telemetry)
    for closable in (
        schedulers.generation,
        schedulers.embeddings,
        schedulers.classifier,
        schedulers.telemetry,
    ):
        closable.close()


async def drain(app: web.Application, deadline_s: float) -> bool:
    """Stop accepting work, wait for in-flight requests, then cut what is left.

    Returns True when everything finished before the deadline.
    """
    lifecycle = app[LIFECYCLE]
    lifecycle.draining = True
    try:
        await asyncio.wait_for(lifecycle.idle.wait(), deadline_s)
        return True
    except TimeoutError:
        # Open streams get an error event and [DONE] from their handlers.
        app[SCHEDULERS].generation.abort_all(ShuttingDown("server shutting down: drain deadline"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(lifecycle.idle.wait(), 5.0)
        return False
