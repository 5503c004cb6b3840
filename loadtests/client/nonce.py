"""The per-run prompt nonce: a short random word every prompt of a run starts with.

Without it the same command run twice sends the same prompts (they depend only on
``--seed``), and a server with a prefix cache serves the second run from the first one's
cache: vLLM served 94% of a rerun's prompt tokens from it and halved its TTFT. With it no
two runs share a prefix, while the prompts of one run still share theirs (a shared system
prompt stays shared: every prompt starts with the same nonce).

The nonce is at most ``MAX_NONCE_CHARS`` ASCII characters plus a space: 13 bytes, fewer
than the 16 tokens of a cache block even for a byte-level tokenizer, so it never fills a
cache block by itself (the block that holds it also holds the start of the prompt).
"""

from __future__ import annotations

import re
import secrets

from loadtests.errors import LoadSpecError

__all__ = ["MAX_NONCE_CHARS", "draw_nonce", "parse_prompt_nonce", "prefixed"]

MAX_NONCE_CHARS = 12
_NONCE = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_NONCE_CHARS}}}")
NO_NONCE = "none"


def parse_prompt_nonce(text: str | None) -> str | None:
    """``--prompt-nonce``: None (draw one per run) when not given, "" for ``none`` (prompts
    as they are), else the nonce itself (a run's recorded nonce, to send its prompts again)."""
    if text is None or text == "":
        return None
    if text.lower() == NO_NONCE:
        return ""
    if not _NONCE.fullmatch(text):
        raise LoadSpecError(
            f"--prompt-nonce {text!r} must be 1 to {MAX_NONCE_CHARS} letters, digits, '-' "
            f"or '_' (a run.json prompt_nonce), or '{NO_NONCE}'"
        )
    return text


def draw_nonce() -> str:
    """A fresh nonce: 12 hex digits (48 random bits)."""
    return secrets.token_hex(MAX_NONCE_CHARS // 2)


def prefixed(nonce: str, text: str) -> str:
    """``text`` as a run with ``nonce`` sends it ("" sends it as it is)."""
    return f"{nonce} {text}" if nonce else text
