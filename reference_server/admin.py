"""Admin endpoint (off unless ``--enable-admin``): read and change fault injection live.

GET  /admin/faults          -> the current FaultConfig as JSON
POST /admin/faults  {...}   -> apply the given fields, answer the new config

Every call passes ``_guard`` first, before its body is read, so that a web page the
operator happens to open cannot change the faults:

- ``Host`` must name the bound address or a loopback name (a DNS-rebinding page sends its
  own host name); a server bound to a wildcard address relies on the token instead;
- an ``Origin`` header must name the same host as ``Host`` (no cross-origin calls);
- with ``--admin-token`` (required off loopback), ``Authorization: Bearer TOKEN``;
- a POST/PUT body must be declared ``application/json``, which a page can only send
  cross-origin after a CORS preflight that this server never grants.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import urllib.parse

from aiohttp import web

from reference_server.errors import BadRequest, Forbidden, Unauthorized, UnsupportedMediaType
from reference_server.faults import from_mapping
from reference_server.state import CONFIG, FAULTS

_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/faults", get_faults)
    app.router.add_post("/admin/faults", set_faults)
    app.router.add_put("/admin/faults", set_faults)


def _hostname(value: str) -> str | None:
    try:
        return urllib.parse.urlsplit(value if "//" in value else "//" + value).hostname
    except ValueError:
        return None


def check_same_site(request: web.Request, what: str = "admin") -> None:
    """The Host and Origin checks: no DNS-rebinding page, no cross-origin call."""
    bound = request.app[CONFIG].host.strip("[]").lower()
    host = _hostname(request.headers.get("Host", ""))
    if bound not in _WILDCARDS and host not in _LOOPBACK_NAMES | {bound}:
        raise Forbidden(f"{what}: Host {request.headers.get('Host')!r} is not this server")
    origin = request.headers.get("Origin")
    if origin is not None and _hostname(origin) != host:
        raise Forbidden(f"{what}: cross-origin calls are refused (Origin {origin!r})")


def _guard(request: web.Request) -> None:
    config = request.app[CONFIG]
    check_same_site(request)
    if config.admin_token is not None:
        given = request.headers.get("Authorization", "")
        expected = "Bearer " + config.admin_token
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise Unauthorized("admin: send the admin token as 'Authorization: Bearer TOKEN'")
    if request.method != "GET" and request.content_type != "application/json":
        raise UnsupportedMediaType(
            f"admin: the body must be sent as Content-Type: application/json, "
            f"not {request.content_type!r}"
        )


async def get_faults(request: web.Request) -> web.Response:
    _guard(request)
    return web.json_response(dataclasses.asdict(request.app[FAULTS].config))


async def set_faults(request: web.Request) -> web.Response:
    _guard(request)
    try:
        # json, not orjson, so that NaN/Infinity reach from_mapping, whose message names the
        # field; deep nesting ends in a RecursionError, caught here.
        changes = json.loads(await request.read())
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
