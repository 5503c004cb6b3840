"""The two middlewares: errors become protocol-shaped JSON (and metrics), and admission
control (a body read whole first, then draining, slow start, injected faults, simulated
capacity) guards the inference endpoints."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from reference_server.errors import ApiError, InjectedFault, ShuttingDown, Unavailable
from reference_server.state import BODIES, CONFIG, FAULTS, LIFECYCLE, METRICS
from reference_server.timings import start_clock

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = logging.getLogger("reference_server")

INFERENCE_ENDPOINTS = frozenset(
    {
        "/v1/completions",
        "/v1/chat/completions",
        "/v1/embeddings",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
    }
)
# Set by a streaming handler whose stream ended in an error after the 200 headers went out.
STREAM_REASON = "slabench.stream_reason"


def endpoint_of(request: web.Request) -> str:
    """The route template, so that metric labels stay bounded (never the raw path)."""
    info = request.match_info
    route = info.route if info is not None else None
    if route is None or route.resource is None or info.http_exception is not None:
        return "unmatched"
    return route.resource.canonical


def error_body(request: web.Request, status: int, message: str, exc: ApiError | None) -> bytes:
    if request.path.startswith("/v2"):
        return json.dumps({"error": message}).encode()
    error = {
        "message": message,
        "type": exc.error_type
        if exc
        else ("invalid_request_error" if status < 500 else "server_error"),
        "param": exc.param if exc else None,
        "code": exc.code if exc and exc.code else status,
    }
    return json.dumps({"error": error}).encode()


def error_response(
    request: web.Request, status: int, message: str, exc: ApiError | None
) -> web.Response:
    headers = {"Content-Type": "application/json"}
    if status in (429, 503):
        headers["Retry-After"] = "1"
    response = web.Response(
        status=status, body=error_body(request, status, message, exc), headers=headers
    )
    if status == 408:  # the rest of the body may never come: do not linger reading it
        response.force_close()
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    endpoint = endpoint_of(request)
    reason = "ok"
    try:
        response = await handler(request)
        reason = request.get(STREAM_REASON, "ok")
    except ApiError as exc:
        response, reason = error_response(request, exc.status, exc.message, exc), exc.reason
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.text if exc.status != 413 else f"request body too large ({exc.text})"
        response = error_response(request, exc.status, message or exc.reason, None)
        if "Allow" in exc.headers:  # a 405 must say which methods are allowed
            response.headers["Allow"] = exc.headers["Allow"]
        reason = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
            exc.status, "bad_request"
        )
    except asyncio.CancelledError:
        # The client went away (aiohttp cancels the handler); count it, then let it unwind.
        _count(request, endpoint, "499", "client_disconnected", started)
        raise
    except Exception:
        log.exception("unhandled error on %s", request.path)
        response = error_response(request, 500, "internal server error", None)
        reason = "internal"
    _count(request, endpoint, str(response.status), reason, started)
    return response


def _count(request: web.Request, endpoint: str, status: str, reason: str, started: float) -> None:
    metrics = request.app[METRICS]
    metrics.requests.labels(endpoint, status, reason).inc()
    metrics.request_latency.labels(endpoint).observe(time.perf_counter() - started)


@web.middleware
async def admission_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    endpoint = endpoint_of(request)
    held, bodies = 0, request.app[BODIES]
    if request.body_exists and endpoint != "unmatched":
        # Read whole before admission: a slow sender holds no slot and delays no drain; and
        # the bytes held by requests not yet answered stay within --max-body-memory.
        held = await bodies.hold(request)
    try:
        return await _admitted(request, handler, endpoint)
    finally:
        bodies.release(held)


async def _admitted(request: web.Request, handler: Handler, endpoint: str) -> web.StreamResponse:
    if endpoint not in INFERENCE_ENDPOINTS:
        return await handler(request)
    # Its body is read whole by now: the server's timings start here (reference_server.timings).
    start_clock()
    lifecycle, faults = request.app[LIFECYCLE], request.app[FAULTS]
    if lifecycle.draining:
        raise ShuttingDown("server is shutting down; send new requests elsewhere")
    if faults.starting():
        raise Unavailable("server is still starting (slow start); retry later")
    lifecycle.enter()
    request.app[METRICS].inflight.inc()
    try:
        await _pass_capacity_gate(request)
        delay = faults.added_latency_s()
        if delay > 0:
            await asyncio.sleep(delay)
        if faults.should_fail():
            raise InjectedFault("injected error (fault injection error_rate)")
        return await handler(request)
    finally:
        lifecycle.leave()
        request.app[METRICS].inflight.dec()


async def _pass_capacity_gate(request: web.Request) -> None:
    """Wait out this request's slot of the simulated fixed capacity (``capacity_rps``).

    The slot is booked on arrival, before any await, so that the queue order is the order
    in which requests reached the server.
    """
    timeout_s = request.app[CONFIG].batching.request_timeout_s
    slot = request.app[FAULTS].book_capacity(timeout_s)
    if slot is None:
        return
    request.app[METRICS].queue_time.labels("capacity").observe(slot.queued_s)
    await asyncio.sleep(slot.wait_s)
