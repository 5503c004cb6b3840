"""Streaming reader of ShareGPT JSON for ``loadtests.workloads.datasets`` (the format is in
its docstring).

The file is one top-level JSON list, often gigabytes, so items are decoded one at a time
from chunks and reading stops once `limit` usable pairs are in hand.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import Any, BinaryIO, NamedTuple, TextIO

from loadtests.errors import DatasetError

__all__ = [
    "SHAREGPT_MIN_TOKENS",
    "Messages",
    "SharegptDialogue",
    "SharegptPair",
    "json_kind",
    "read_sharegpt",
    "read_sharegpt_dialogues",
]

Messages = tuple[tuple[str, str], ...]

SHAREGPT_MIN_TOKENS = 4  # vLLM's benchmark drops shorter ShareGPT pairs too
_CHUNK_CHARS = 1 << 20
_JSON_VALUE_START = re.compile(r"[^ \t\n\r]")
_SHAREGPT_HINT = 'expected ShareGPT entries {"conversations": [{"from": "human", "value": "..."}]}'
_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "assistant": "assistant",
    "system": "system",
}


class SharegptPair(NamedTuple):
    messages: Messages  # the turns up to and including the first human one
    reply_chars: int  # the length of the gpt reply that follows it


class SharegptDialogue(NamedTuple):
    system: str | None  # a system turn before the first human one
    pairs: tuple[tuple[str, int], ...]  # every human turn and the length of the reply to it


def json_kind(value: Any) -> str:
    """A short description of a JSON value for an error line."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else f"{type(value).__name__} {text[:30]}..."


def read_sharegpt(
    raw: BinaryIO, name: str, limit: int | None, chars_per_token: float
) -> tuple[list[SharegptPair], int]:
    """The usable pairs of the file `name` (at most `limit`) and how many entries were skipped.

    Raises `DatasetError` for a malformed file or one without a usable pair.
    """
    pairs: list[SharegptPair] = []
    unpaired = short = entry = 0
    min_chars = SHAREGPT_MIN_TOKENS * chars_per_token
    with io.TextIOWrapper(raw, encoding="utf-8-sig") as fh:
        try:
            for entry, obj in enumerate(_JsonArrayReader(fh, name).items(), 1):
                pair = _sharegpt_pair(obj, f"dataset {name} entry {entry}")
                if pair is None:
                    unpaired += 1
                    continue
                if min(len(pair.messages[-1][1]), pair.reply_chars) < min_chars:
                    short += 1
                    continue
                pairs.append(pair)
                if len(pairs) == limit:
                    break
        except UnicodeDecodeError:
            where = f"dataset {name} near entry {entry + 1}"
            raise DatasetError(f"{where}: not UTF-8 text; save the file as UTF-8") from None
    if not pairs:
        raise DatasetError(
            f"dataset {name}: no usable entries ({unpaired} without a human turn followed by a"
            f" gpt reply, {short} under {SHAREGPT_MIN_TOKENS} tokens); {_SHAREGPT_HINT}"
        )
    return pairs, unpaired + short


def read_sharegpt_dialogues(
    raw: BinaryIO, name: str, limit: int | None
) -> tuple[list[SharegptDialogue], int]:
    """Every entry's human turns in order, each with its gpt reply's length in characters,
    up to the first human turn no gpt reply follows (at most `limit` entries), and how many
    entries were skipped (not one such pair). Raises `DatasetError` as `read_sharegpt`."""
    dialogues: list[SharegptDialogue] = []
    skipped = entry = 0
    with io.TextIOWrapper(raw, encoding="utf-8-sig") as fh:
        try:
            for entry, obj in enumerate(_JsonArrayReader(fh, name).items(), 1):
                dialogue = _dialogue(obj, f"dataset {name} entry {entry}")
                if not dialogue.pairs:
                    skipped += 1
                    continue
                dialogues.append(dialogue)
                if len(dialogues) == limit:
                    break
        except UnicodeDecodeError:
            where = f"dataset {name} near entry {entry + 1}"
            raise DatasetError(f"{where}: not UTF-8 text; save the file as UTF-8") from None
    if not dialogues:
        raise DatasetError(
            f"dataset {name}: no usable entries ({skipped} without a human turn followed by a"
            f" gpt reply); {_SHAREGPT_HINT}"
        )
    return dialogues, skipped


def _dialogue(obj: Any, where: str) -> SharegptDialogue:
    turns = obj.get("conversations") if isinstance(obj, dict) else None
    if not isinstance(turns, list):
        raise DatasetError(
            f"{where}: expected an object with a conversations list; {_SHAREGPT_HINT}"
        )
    roles = [_sharegpt_turn(turn, where, i) for i, turn in enumerate(turns)]
    system = roles[0][1] if roles and roles[0][0] == "system" else None
    pairs: list[tuple[str, int]] = []
    i = 1 if system is not None else 0
    while i + 1 < len(roles) and roles[i][0] == "user" and roles[i + 1][0] == "assistant":
        if roles[i][1]:
            pairs.append((roles[i][1], len(roles[i + 1][1])))
        i += 2
    return SharegptDialogue(system, tuple(pairs))


def _sharegpt_pair(obj: Any, where: str) -> SharegptPair | None:
    """The turns up to the first human one and the length of the reply, or None if unpaired."""
    turns = obj.get("conversations") if isinstance(obj, dict) else None
    if not isinstance(turns, list):
        raise DatasetError(
            f"{where}: expected an object with a conversations list; {_SHAREGPT_HINT}"
        )
    messages: list[tuple[str, str]] = []
    for i, turn in enumerate(turns):
        role, value = _sharegpt_turn(turn, where, i)
        messages.append((role, value))
        if role != "user":
            continue
        if i + 1 == len(turns):
            return None
        reply_role, reply = _sharegpt_turn(turns[i + 1], where, i + 1)
        return SharegptPair(tuple(messages), len(reply)) if reply_role == "assistant" else None
    return None


def _sharegpt_turn(turn: Any, where: str, index: int) -> tuple[str, str]:
    if not (
        isinstance(turn, dict)
        and isinstance(turn.get("from"), str)
        and isinstance(turn.get("value"), str)
    ):
        raise DatasetError(
            f'{where}: conversations[{index}] needs string "from" and "value"; {_SHAREGPT_HINT}'
        )
    role = _SHAREGPT_ROLES.get(turn["from"])
    if role is None:
        raise DatasetError(
            f'{where}: conversations[{index}] has "from": {json_kind(turn["from"])};'
            ' use "human", "gpt" or "system"'
        )
    return role, turn["value"]


class _JsonArrayReader:
    """Yields the items of a top-level JSON list one by one, reading the file in chunks."""

    def __init__(self, fh: TextIO, name: str) -> None:
        self._fh = fh
        self._name = name
        self._buf = ""
        self._pos = 0
        self._decoder = json.JSONDecoder()

    def items(self) -> Iterator[Any]:
        first = self._peek()
        if first != "[":
            found = {"": "an empty file", "{": "an object"}.get(first, f"{first!r}")
            raise DatasetError(
                f"dataset {self._name}: expected a JSON list, found {found}; {_SHAREGPT_HINT}"
                " (for one JSON object per line, name the file .jsonl)"
            )
        self._pos += 1
        if self._peek() == "]":
            return
        entry = 0
        while True:
            entry += 1
            yield self._decode(entry)
            after = self._peek()
            if after == "]":
                return
            if after != ",":
                why = "the file ends inside the list" if not after else "expected ',' or ']'"
                raise self._error(entry, why)
            self._pos += 1

    def _decode(self, entry: int) -> Any:
        if not self._peek():
            raise self._error(entry, "the file ends inside the list")
        while True:
            try:
                obj, end = self._decoder.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                if self._more():  # the item may just be cut by the chunk boundary
                    continue
                raise self._error(entry, f"not valid JSON ({exc.msg})") from None
            except RecursionError:
                raise self._error(entry, "JSON nested too deeply for a conversation") from None
            # A bare number at the buffer's end may continue in the next chunk.
            if end == len(self._buf) and isinstance(obj, (int, float)) and self._more():
                continue
            self._pos = end
            return obj

    def _peek(self) -> str:
        """The next non-whitespace character (position left on it), or "" at the end."""
        while True:
            found = _JSON_VALUE_START.search(self._buf, self._pos)
            if found:
                self._pos = found.start()
                return found.group()
            self._pos = len(self._buf)
            if not self._more():
                return ""

    def _more(self) -> bool:
        # Read at least what is buffered, so re-decoding one huge item costs linear time.
        chunk = self._fh.read(max(_CHUNK_CHARS, len(self._buf) - self._pos))
        if not chunk:
            return False
        self._buf = self._buf[self._pos :] + chunk
        self._pos = 0
        return True

    def _error(self, entry: int, why: str) -> DatasetError:
        return DatasetError(f"dataset {self._name} entry {entry}: {why}; {_SHAREGPT_HINT}")
