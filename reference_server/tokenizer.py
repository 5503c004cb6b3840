"""Byte-level tokenizer: one token per UTF-8 byte, plus three special tokens.

Token counts are therefore exact and easy to reason about in tests: a prompt of N ASCII
characters is N tokens (plus BOS), and every generated token is one printable character.
"""

from __future__ import annotations

from collections.abc import Sequence

BOS = 256
EOS = 257
PAD = 258
VOCAB_SIZE = 259

# Generation is restricted to printable ASCII and newline so that every token decodes to
# exactly one character and streamed chunks are valid UTF-8 on their own.
PRINTABLE_IDS: tuple[int, ...] = (10, *range(32, 127))


def encode(text: str, *, bos: bool = True) -> list[int]:
    ids = list(text.encode("utf-8"))
    return [BOS, *ids] if bos else ids


def decode_token(token_id: int) -> str:
    if token_id >= 256:
        return ""
    return chr(token_id) if token_id < 128 else bytes([token_id]).decode("latin-1")


def decode(ids: Sequence[int]) -> str:
    return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


def chat_prompt(messages: Sequence[tuple[str, str]]) -> str:
    """Render (role, content) pairs with a minimal template ending in the assistant turn."""
    parts = [f"<|{role}|>{content}\n" for role, content in messages]
    return "".join(parts) + "<|assistant|>"
