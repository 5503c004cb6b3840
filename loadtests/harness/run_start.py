"""What a run adds to run.json as it starts (``harness.events._test_start``): its prompt
nonce, a sessions run's settings (``sessions``), the outcome of ``--reset-prefix-cache``
(``harness.prompt_cache``), the sizes it asks for (``requested``), against which the
end of the run checks the server's usage (``reports.sizes``), and the round trip to the
target before any load (``calibration``: ``loadtests.client.calibration``).

``requested``: ``input_tokens`` is the median of the prompts' ``input_tokens_hint`` (the
length the workload asked for, in the sizing's tokens) plus the nonce's share
(its characters / ``chars_per_token``); ``output_tokens`` the median ``max_tokens``;
``exact_output`` whether the server was asked to produce exactly that many
(``ignore_eos``); ``chars_per_token`` the sizing used. A sessions run (multi-turn) asks for
no one input size (null), nor an output size when its conversations come from a file.
"""

from __future__ import annotations

import statistics
from typing import Any

from loadtests.client.calibration import calibrate
from loadtests.client.nonce import prefixed
from loadtests.client.prefix_cache import reset_prefix_cache, reset_warning
from loadtests.harness.state import RunState

__all__ = ["run_start_meta"]


def run_start_meta(state: RunState, nonce: str, *, bundled: bool) -> dict[str, Any]:
    """run.json's ``prompt_nonce`` (null: none), ``requested`` and, when asked for,
    ``prefix_cache_reset`` (the reset is done here: before the first request)."""
    meta: dict[str, Any] = {
        "prompt_nonce": nonce or None,
        "requested": requested_sizes(state, nonce, bundled=bundled),
    }
    if any(getattr(c, "multi_turn", False) for c in state.user_classes()):
        meta["sessions"] = state.options.sessions.describe()  # harness.sessions' workload
    if state.options.cache.reset_prefix_cache:
        transport = state.new_transport(concurrency=1)
        try:
            outcome = reset_prefix_cache(transport)
        finally:
            transport.close()
        if not outcome["ok"]:
            print(reset_warning(state.target.base_url, outcome), flush=True)
        meta["prefix_cache_reset"] = outcome
    path = next((c.warmup_path for c in state.user_classes() if hasattr(c, "warmup_path")), None)
    meta["calibration"] = calibrate(lambda: state.new_transport(concurrency=1), path or "/")
    return meta


def requested_sizes(state: RunState, nonce: str, *, bundled: bool) -> dict[str, Any]:
    options = state.options
    cpt = options.chars_per_token or (1.0 if bundled else 4.0)  # as the dataset was sized
    nonce_tokens = len(prefixed(nonce, "")) / cpt
    prompts = list(state.dataset)
    ignore_eos = options.ignore_eos == "on" or (options.ignore_eos == "auto" and bundled)
    input_tokens: float | None = (
        statistics.median(p.input_tokens_hint for p in prompts) + nonce_tokens
    )
    output_tokens: float | None = statistics.median(p.max_tokens for p in prompts)
    if state.trace is not None:  # a replay asks for its rows' sizes, not the dataset's
        input_tokens = state.trace.median_sizes[0] + nonce_tokens
        output_tokens = state.trace.median_sizes[1]
    elif any(getattr(c, "multi_turn", False) for c in state.user_classes()):
        # Sessions (harness.sessions): a turn's prompt is its whole history, no one size;
        # a conversation file sets its own max_tokens (synthetic ones follow --output-len).
        input_tokens = None
        if options.sessions.conversations != "synthetic":
            output_tokens = None
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "exact_output": ignore_eos,
        "chars_per_token": cpt,
    }
