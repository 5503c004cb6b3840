"""The per-run prompt nonce: a short random word every prompt of a run starts with.

Without it the same command run twice sends the same prompts (they depend only on
``--seed``), and a server with a prefix cache serves the second run from the first one's
cache: vLLM served 94% of a rerun's prompt tokens from it and halved its TTFT. With it no
two runs share a prefix, while the prompts of one run still share theirs (a shared system
prompt stays shared: every prompt starts with the same nonce).

The run's nonce (12 hex digits, 48 random bits, recorded in run.json) is not sent as it is:
each prompt starts with a 6-hex-digit word hashed from the nonce and the prompt's first
``KEYED_CHARS`` characters (``prompt_word``), and a space. Prompts of one run that start
alike (a shared system prompt, a trace's shared first block) get the same word and keep
sharing their prefix; prompts that differ early get different words, so they share no more
than they did before. 7 characters: with a chat template's opening tag in front (the
reference server's ``<|user|>`` is 8 byte-level tokens) that is 15 tokens, under one 16-token
cache block, so distinct prompts of a run report 0 cached tokens. Another run's words differ
(24 bits: equal once in 16.7 million).
"""

from __future__ import annotations

import hashlib
import re
import secrets

from loadtests.errors import LoadSpecError

__all__ = ["MAX_NONCE_CHARS", "draw_nonce", "parse_prompt_nonce", "prefixed"]

MAX_NONCE_CHARS = 12
KEYED_CHARS = 32  # of a prompt's start, hashed with the nonce into its word
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


def prompt_word(nonce: str, text: str) -> str:
    """The 6 hex digits a prompt starting with ``text`` starts with in a run with ``nonce``."""
    key = f"{nonce}\n{text[:KEYED_CHARS]}".encode()
    return hashlib.blake2b(key, digest_size=3).hexdigest()


def prefixed(nonce: str, text: str) -> str:
    """``text`` as a run with ``nonce`` sends it ("" sends it as it is)."""
    return f"{prompt_word(nonce, text)} {text}" if nonce else text
