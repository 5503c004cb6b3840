"""Admin endpoint (off unless ``--enable-admin``): read and change fault injection live.

GET  /admin/faults          -> the current FaultConfig as JSON
POST /admin/faults  {...}   -> apply the given fields, answer the new config
"""

from __future__ import annotations

import dataclasses

import orjson
from aiohttp import web

from reference_server.errors import BadRequest
from reference_server.faults import from_mapping
from reference_server.state import FAULTS


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/faults", get_faults)
    app.router.add_post("/admin/faults", set_faults)
    app.router.add_put("/admin/faults", set_faults)


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(dataclasses.asdict(request.app[FAULTS].config))


async def set_faults(request: web.Request) -> web.Response:
    try:
        # orjson, not json: it refuses NaN/Infinity and bounds nesting instead of recursing.
        changes = orjson.loads(await request.read())
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest("body must be a JSON object of fault fields") from None
    if not isinstance(changes, dict):
        raise BadRequest("body must be a JSON object of fault fields")
    injector = request.app[FAULTS]
    try:
        injector.config = from_mapping(injector.config, changes)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return web.json_response(dataclasses.asdict(injector.config))
