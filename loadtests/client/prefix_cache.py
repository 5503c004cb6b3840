"""``POST /reset_prefix_cache`` on the target (``--reset-prefix-cache``: see
``loadtests.harness.prompt_cache``): vLLM's endpoint (served with
``VLLM_SERVER_DEV_MODE=1``) and the reference server's."""

from __future__ import annotations

from typing import Any

from loadtests.client.transport import Transport, finish, read_some

__all__ = ["RESET_PATH", "reset_prefix_cache", "reset_warning"]

RESET_PATH = "/reset_prefix_cache"


def reset_prefix_cache(transport: Transport) -> dict[str, Any]:
    """POST ``/reset_prefix_cache`` on ``transport``'s target: run.json's
    ``prefix_cache_reset``. Never raises for the target's sake: a failure is ``ok: false``
    with the reason (one line)."""
    try:
        response = transport.send("POST", RESET_PATH, b"")
        try:
            status = response.status_code
            while read_some(response):
                pass
        finally:
            finish(response)
    except Exception as exc:  # refused, unreachable, timeout, TLS: the reason is the record
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        return {"ok": False, "status": None, "error": reason}
    if 200 <= status < 300:
        return {"ok": True, "status": status}
    return {"ok": False, "status": status, "error": f"HTTP {status}"}


def reset_warning(url: str, outcome: dict[str, Any]) -> str:
    """The one line a failed reset prints."""
    return (
        f"slabench: WARNING: --reset-prefix-cache: POST {url}{RESET_PATH} failed "
        f"({outcome.get('error')}): the target's prefix cache was NOT reset (run.json "
        "prefix_cache_reset); vLLM serves this endpoint only with VLLM_SERVER_DEV_MODE=1"
    )
