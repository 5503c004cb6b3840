"""Runs that do not feed each other's prefix caches: the prompt nonce and the cache reset.

- ``--prompt-nonce``: by default each run draws a nonce that starts every prompt it sends
  (``loadtests.client.nonce``), recorded in run.json ``prompt_nonce``; the master draws it
  and hands it to its workers with their plan, so every process of a run sends the same
  one. ``--prompt-nonce VALUE`` sends a recorded run's prompts again byte for byte;
  ``--prompt-nonce none`` sends the prompts as they are (run.json ``prompt_nonce: null``),
  for a workload that wants hits from earlier runs.
- ``--reset-prefix-cache``: in the pre-flight before the load, before the first request
  (so before the warm-up, whose requests then fill the cache as the run's own), ``POST
  {host}/reset_prefix_cache`` (vLLM's endpoint, served when vLLM runs with
  ``VLLM_SERVER_DEV_MODE=1``, and the reference server's), with the ``--api-key`` header
  only when the target is the ``--host`` the key was given for. Its outcome is run.json
  ``prefix_cache_reset`` (``{"ok": true, "status": 200}``, or ``ok: false`` with the
  reason; done by ``harness.run_start.preflight``, this module imports no gevent). A target that
  cannot reset (404, unreachable) is one warning line and the run
  goes on: a run is worth having without the reset, and run.json says that its cache was
  *not* reset rather than letting it pass as reset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loadtests.client.nonce import draw_nonce, parse_prompt_nonce

__all__ = ["PromptCacheOptions", "add_prompt_cache_options"]


def add_prompt_cache_options(opt: Callable[..., None]) -> None:
    """Register the options through the ``opt(flag, env, **kw)`` helper of add_options."""
    opt(
        "--prompt-nonce",
        "PROMPT_NONCE",
        default="",
        help="the word every prompt of the run starts with, so that runs share no cached "
        "prefix: drawn per run by default (run.json prompt_nonce); a recorded value sends "
        "that run's prompts again; 'none' sends prompts as they are",
    )
    opt(
        "--reset-prefix-cache",
        "RESET_PREFIX_CACHE",
        action="store_true",
        default=False,
        help="POST {host}/reset_prefix_cache before the first request (vLLM with "
        "VLLM_SERVER_DEV_MODE=1, the reference server); a failure is a warning",
    )


@dataclass(frozen=True, slots=True)
class PromptCacheOptions:
    """``prompt_nonce``: None draws one per run, "" sends prompts as they are."""

    prompt_nonce: str | None = None
    reset_prefix_cache: bool = False

    @classmethod
    def from_namespace(cls, ns: Any) -> PromptCacheOptions:
        return cls(parse_prompt_nonce(ns.prompt_nonce), bool(ns.reset_prefix_cache))

    def run_nonce(self) -> str:
        """The nonce of a new run: the given one, or a fresh one."""
        return draw_nonce() if self.prompt_nonce is None else self.prompt_nonce
