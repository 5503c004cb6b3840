"""Sizing synthetic text in tokens: the target's own tokenizer, or characters per token.

    sizer = load_tokenizer("/models/llama/tokenizer.json")   # or CharSizing(4.0)
    block = sizer.sized("17:", 512, rng, end="\\n")           # exactly 512 tokens
    block.prefix(100)                                         # its first 100 tokens
    sizer.count(reply_text)                                   # output tokens of a reply

``--tokenizer PATH`` loads a local ``tokenizer.json`` (or a directory that holds one) with the
`tokenizers` library: nothing is downloaded. Text it sizes is a head (say ``"17:"``, which
keeps texts of distinct heads from sharing a prefix) followed by words that the tokenizer
encodes as one token each after a space, then an optional end (a newline). Its length in
tokens is therefore exact by construction, without encoding the text: head + words + end,
each counted once. That holds for tokenizers that split at spaces and newlines before they
merge (byte-level BPE as in GPT-2, Llama 3 and Qwen; WordPiece; WordLevel); a SentencePiece
tokenizer that marks word starts can differ by a token where two texts meet. Counts leave
out special tokens (BOS, a chat template's): the server adds its own.

Without a tokenizer, ``CharSizing`` keeps the character estimate of the datasets: a token is
``chars_per_token`` characters.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from loadtests.errors import DatasetError
from loadtests.workloads.words import WORDS, words_text

__all__ = ["CharSizing", "SizedText", "Sizer", "TokenizerFile", "load_tokenizer"]

_HINT = (
    "give a local tokenizer.json (or the model directory holding it), e.g. from the "
    "model's Hugging Face snapshot"
)
_MIN_WORDS = 8  # single-token words needed to write varied text


@dataclass(frozen=True, slots=True)
class SizedText:
    """A text and where each of its tokens ends (``cuts``; None: ``chars_per_token``
    characters each), so that a prefix of N tokens costs no encoding."""

    text: str
    tokens: int
    cuts: array[int] | None = None
    chars_per_token: float = 1.0

    def prefix(self, tokens: int) -> str:
        """The text of its first ``tokens`` tokens (all of it when it has fewer)."""
        if tokens >= self.tokens:
            return self.text
        if tokens <= 0:
            return ""
        if self.cuts is None:
            return self.text[: max(1, round(tokens * self.chars_per_token))]
        return self.text[: self.cuts[tokens - 1]]


class Sizer(Protocol):
    """How synthetic text is sized: ``TokenizerFile`` (exact) or ``CharSizing``."""

    def sized(self, head: str, tokens: int, rng: np.random.Generator, end: str = "") -> SizedText:
        """``head``, words and ``end``: ``tokens`` tokens in all (the head is left out when
        it alone is longer)."""
        ...

    def describe(self) -> Any:
        """What run.json records of the sizing."""
        ...


@dataclass(frozen=True, slots=True)
class CharSizing:
    """Tokens estimated as ``chars_per_token`` characters each."""

    chars_per_token: float

    def sized(self, head: str, tokens: int, rng: np.random.Generator, end: str = "") -> SizedText:
        n_chars = max(1, round(tokens * self.chars_per_token)) - len(end)
        text = words_text(head, max(1, n_chars), rng) + end
        return SizedText(text, tokens, None, self.chars_per_token)

    def describe(self) -> str:
        return f"chars-per-token {self.chars_per_token:g}"


class TokenizerFile:
    """A local ``tokenizer.json``, loaded once."""

    __slots__ = ("_counts", "_tok", "path", "vocab_size", "words")

    def __init__(self, path: Path, tok: Any) -> None:
        self.path = str(path)
        self._tok = tok
        self.vocab_size: int = tok.get_vocab_size()
        self._counts: dict[str, int] = {}
        self.words = self._single_token_words()

    def count(self, text: str) -> int:
        """Tokens of ``text``, special tokens left out."""
        return len(self._tok.encode(text, add_special_tokens=False).ids) if text else 0

    def _count_cached(self, text: str) -> int:
        n = self._counts.get(text)
        if n is None:
            if len(self._counts) > 100_000:
                self._counts.clear()
            n = self._counts[text] = self.count(text)
        return n

    def _single_token_words(self) -> tuple[str, ...]:
        words = tuple(w for w in WORDS if self.count(" " + w) == 1)
        if len(words) < _MIN_WORDS:
            words = tuple(c for c in "abcdefghijklmnopqrstuvwxyz" if self.count(" " + c) == 1)
        if len(words) < _MIN_WORDS or self.count(" " + " ".join(words)) != len(words):
            raise DatasetError(
                f"--tokenizer {self.path}: it does not encode plain English words one token "
                "each, so slabench cannot size prompts exactly with it; leave --tokenizer "
                "out and set --chars-per-token"
            )
        return words

    def sized(self, head: str, tokens: int, rng: np.random.Generator, end: str = "") -> SizedText:
        head_n, end_n = self._count_cached(head), self._count_cached(end)
        if head_n + end_n > tokens:
            head, head_n, end, end_n = "", 0, "", 0
        picks = rng.integers(0, len(self.words), size=tokens - head_n - end_n).tolist()
        cuts = array("I", [len(head)] * head_n)
        parts = [head]
        pos = len(head)
        for k in picks:
            word = " " + self.words[k]
            parts.append(word)
            pos += len(word)
            cuts.append(pos)
        parts.append(end)
        cuts.extend([pos + len(end)] * end_n)
        return SizedText("".join(parts), tokens, cuts)

    def describe(self) -> dict[str, Any]:
        return {"path": self.path, "vocab_size": self.vocab_size}


def load_tokenizer(path: str) -> TokenizerFile:
    """``path``: a ``tokenizer.json`` or a directory holding one. Raises ``DatasetError``
    (one line naming the file and the fix)."""
    from tokenizers import Tokenizer  # loaded only when asked for

    file = Path(path)
    if file.is_dir():
        file = file / "tokenizer.json"
    if not file.is_file():
        raise DatasetError(f"--tokenizer {file}: no such file; {_HINT}")
    try:
        tok = Tokenizer.from_file(str(file))
    except Exception as exc:  # the library raises plain Exceptions with multi-line texts
        first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise DatasetError(
            f"--tokenizer {file}: not a tokenizers tokenizer.json ({first}); {_HINT}"
        ) from None
    return TokenizerFile(file, tok)
