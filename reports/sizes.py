"""Requests that are not the size asked for: the server's usage against run.json
``requested`` (written as the run starts, ``loadtests.harness.run_start``).

A prompt is sized in estimated tokens (``--chars-per-token``, 4 by default, 1 on the
bundled server) unless ``--tokenizer`` gives the target's own; a server whose tokenizer
differs sees other sizes (``--input-len fixed:128`` reached vLLM as 406 prompt tokens).
A server may also ignore ``max_tokens``. Over the successful measured requests:

- input: the median ``input_tokens`` against the requested median; flagged when they
  differ by more than 10% *and* by more than ``INPUT_SLACK_TOKENS`` (a chat template adds
  tens of tokens of its own to every prompt, which is not a sizing error);
- output: the median ``output_tokens`` counted by the server (``output_tokens_source``
  ``usage``) against the median ``max_tokens``: flagged when more than 10% above it, or,
  when the run asked for exact lengths (``ignore_eos``), more than 10% away either way.

Runs without ``requested`` (older runs, or with no usage) get no line.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sla.metrics import floats

__all__ = ["INPUT_SLACK_TOKENS", "TOLERANCE", "size_mismatches"]

TOLERANCE = 0.10
INPUT_SLACK_TOKENS = 32
_FIX = "size prompts with the target's tokenizer (--tokenizer PATH) or --chars-per-token"


def size_mismatches(meta: dict[str, Any], ok_rows: pd.DataFrame) -> tuple[str, ...]:
    """One line per size the server did not get as asked (see the module)."""
    requested = meta.get("requested")
    if not isinstance(requested, dict) or not len(ok_rows):
        return ()
    out = []
    asked_in = _number(requested.get("input_tokens"))
    got_in = _median(floats(ok_rows, "input_tokens"))
    if asked_in and got_in is not None:
        off = abs(got_in - asked_in)
        if off > TOLERANCE * asked_in and off > INPUT_SLACK_TOKENS:
            cpt = requested.get("chars_per_token")
            sizing = f" at {cpt:g} characters per token" if isinstance(cpt, int | float) else ""
            out.append(
                f"prompts are not the size asked for: the server counted a median of "
                f"{got_in:.0f} prompt tokens, {asked_in:.0f} were asked for{sizing} "
                f"({got_in / asked_in:.2f}x); {_FIX}"
            )
    asked_out = _number(requested.get("output_tokens"))
    by_usage = (ok_rows["output_tokens_source"] == "usage").to_numpy(dtype=bool, na_value=False)
    got_out = _median(floats(ok_rows, "output_tokens")[by_usage])
    if asked_out and got_out is not None:
        exact = bool(requested.get("exact_output"))
        over = got_out > asked_out * (1 + TOLERANCE)
        under = exact and got_out < asked_out * (1 - TOLERANCE)
        if over or under:
            how = "exactly " if exact else "at most "
            out.append(
                f"answers are not the length asked for: the server counted a median of "
                f"{got_out:.0f} output tokens, {how}{asked_out:.0f} were asked for "
                f"(max_tokens{', ignore_eos' if exact else ''}): it ignores them, or "
                f"counts in other tokens than the sizing; {_FIX}"
            )
    return tuple(out)


def _number(value: object) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    return float(value) if ok else None  # type: ignore[arg-type]


def _median(values: np.ndarray[Any, np.dtype[np.float64]]) -> float | None:
    values = values[~np.isnan(values)]
    return float(np.median(values)) if len(values) else None
