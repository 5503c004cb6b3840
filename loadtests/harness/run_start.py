"""What a run adds to run.json as it starts (``harness.events._test_start``): its prompt
nonce, a sessions run's settings (``sessions``), the sizes it asks for (``requested``),
against which the end of the run checks the server's usage (``reports.sizes``), and what
the pre-flight found (``preflight``).

The pre-flight is the start-up work that goes to the target before the load: the outcome
of ``--reset-prefix-cache`` (``harness.prompt_cache``) and the round trip to the target
(``calibration``: ``loadtests.client.calibration``). It runs before the load's clock
starts: in ``init`` when Locust starts the test by itself (headless, ``--autostart``), since
Locust arms ``-t`` as it starts the test, before ``test_start`` runs, and has no way to put
it back; a test started from the web UI does it in ``test_start``, inside the run time its
form armed, and run.json's ``started_at`` comes after it. Each of its requests ends within
the start-up bound (``loadtests.client.startup``), the calibration within its budget.

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
from loadtests.client.prefix_cache import RESET_PATH, reset_prefix_cache, reset_warning
from loadtests.client.startup import answer_within
from loadtests.harness.state import RunState

__all__ = ["preflight", "run_start_meta"]


def run_start_meta(
    state: RunState, nonce: str, *, bundled: bool, preflight: dict[str, Any]
) -> dict[str, Any]:
    """run.json's ``prompt_nonce`` (null: none), ``requested``, a sessions run's
    ``sessions``, and the ``preflight``'s ``prefix_cache_reset`` and ``calibration``."""
    meta: dict[str, Any] = {
        "prompt_nonce": nonce or None,
        "requested": requested_sizes(state, nonce, bundled=bundled),
    }
    if any(getattr(c, "multi_turn", False) for c in state.user_classes()):
        meta["sessions"] = state.options.sessions.describe()  # harness.sessions' workload
    return {**meta, **preflight}


def preflight(state: RunState) -> dict[str, Any]:
    """The start-up requests to the target, before the load: ``--reset-prefix-cache`` (when
    asked for: before the first request) and the round-trip calibration. Neither stops the
    run; each failure is one warning line and its reason in run.json."""
    meta: dict[str, Any] = {}
    if state.options.cache.reset_prefix_cache:
        transport = state.new_transport(concurrency=1)
        try:
            with answer_within(state.startup_timeout_s, f"POST {RESET_PATH}"):
                outcome = reset_prefix_cache(transport)  # a NoAnswer becomes its ok: false
        finally:
            transport.close()
        if not outcome["ok"]:
            print(reset_warning(state.target.base_url, outcome), flush=True)
        meta["prefix_cache_reset"] = outcome
    path = next((c.warmup_path for c in state.user_classes() if hasattr(c, "warmup_path")), None)
    meta["calibration"] = calibration = calibrate(
        lambda: state.new_transport(concurrency=1),
        path or "/",
        connect_timeout_s=state.connect_timeout_s,
        answer_timeout_s=state.startup_timeout_s,
    )
    if calibration["error"]:
        print(
            f"slabench: WARNING: the round-trip calibration of {state.target.base_url} before "
            f"the run stopped: {calibration['error']}; the run goes on (run.json calibration)",
            flush=True,
        )
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
