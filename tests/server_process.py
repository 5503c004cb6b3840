"""Test-side names for the reference-server subprocess helper (it lives in loadtests)."""

from __future__ import annotations

from loadtests.bundled_server import SMALL_MODELS, ServerProcess, ServerStartError, wait_until

__all__ = ["SMALL_MODELS", "ServerProcess", "ServerStartError", "wait_until"]
