"""Where a sessions run's conversations come from: synthetic, a JSONL file, or ShareGPT.

    source = load_conversations("chats.jsonl", settings, limit=None)
    for conv in source.cycle(start=worker_index, step=worker_count): ...

- ``"synthetic"``: ``SyntheticConversations`` (``loadtests.workloads.conversations``); the
  number of turns follows ``turns``, each user message ``input_len``, each reply's
  ``max_tokens`` ``output_len``; a shared system prompt of ``system_tokens`` and a document
  per conversation of ``doc_len``.
- ``*.jsonl``: one conversation per line,
  ``{"system": "...", "turns": [{"user": "...", "max_tokens": 64}, ...]}``; ``system`` and
  each ``max_tokens`` are optional (a missing ``max_tokens`` is drawn from ``output_len``).
- ``*.json`` in ShareGPT form: every human turn in order, each with ``max_tokens`` the
  length of the gpt reply that followed it (characters / chars_per_token), up to the first
  human turn without a reply; a leading system turn becomes the system prompt.

A file's conversations whose first turn cannot fit in ``max_history_tokens`` are left out
(counted in ``skipped``). ``turns``, ``system_tokens`` and ``doc_len`` shape synthetic
conversations only. Every bad file gets one line naming the file, the line (or entry) and
the fix (a ``DatasetError``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from loadtests.errors import DatasetError
from loadtests.workloads.conversations import (
    MESSAGE_TOKENS,
    PROMPT_TOKENS,
    ChatBody,
    Conversation,
    ConversationList,
    Session,
    SyntheticConversations,
    ThinkTime,
    Turn,
)
from loadtests.workloads.datasets import LengthDist, jsonl_objects
from loadtests.workloads.sharegpt import json_kind, read_sharegpt_dialogues

__all__ = ["ConversationSettings", "ConversationSource", "load_conversations"]

ConversationSource = SyntheticConversations | ConversationList
_JSONL_HINT = (
    'each line must be {"turns": [{"user": "...", "max_tokens": 64}, ...]} with an optional'
    ' "system": "..." (max_tokens optional)'
)
_SOURCES_HINT = 'give "synthetic", a .jsonl file of conversations or a ShareGPT .json file'


@dataclass(frozen=True, slots=True)
class ConversationSettings:
    seed: int
    input_len: LengthDist
    output_len: LengthDist
    turns: LengthDist
    system_tokens: int
    doc_len: LengthDist | None
    chars_per_token: float
    max_history_tokens: int  # 0: no bound


def load_conversations(
    source: str, settings: ConversationSettings, limit: int | None = None
) -> ConversationSource:
    """The conversations of `source` (see the module docstring); raises `DatasetError`."""
    s = settings
    if source == "synthetic":
        synthetic = SyntheticConversations(
            s.seed, s.input_len, s.output_len, s.turns, s.system_tokens, s.doc_len,
            s.chars_per_token,
        )  # fmt: skip
        _check_synthetic_fits(s)
        return synthetic
    suffix = Path(source).suffix.lower()
    if suffix == ".jsonl":
        convs = _read_jsonl(source, s, limit)
        skipped = 0
    elif suffix == ".json":
        convs, skipped = _read_sharegpt(source, s, limit)
    else:
        raise DatasetError(f"--conversations {source}: unknown kind of source; {_SOURCES_HINT}")
    fitting = [c for c in convs if _first_turn_fits(c, s)]
    if not fitting:
        raise DatasetError(
            f"--conversations {source}: no conversation's first turn fits in "
            f"--max-history-tokens {s.max_history_tokens}; raise it or shorten the turns"
        )
    return ConversationList(fitting, source, skipped + len(convs) - len(fitting))


def _first_turn_fits(conv: Conversation, s: ConversationSettings) -> bool:
    session = Session(
        conv, "", body=ChatBody("", stream=False, ignore_eos=False),
        chars_per_token=s.chars_per_token, max_history_tokens=s.max_history_tokens,
        think=ThinkTime("fixed", 0.0), rng=random.Random(0),
    )  # fmt: skip
    return session.next_turn() is not None


def _least(dist: LengthDist) -> int:
    return int(dist.a) if dist.kind in ("fixed", "uniform") else 1


def _check_synthetic_fits(s: ConversationSettings) -> None:
    """The shortest first turn the options allow must fit in the context bound."""
    if not s.max_history_tokens:
        return
    system = s.system_tokens + MESSAGE_TOKENS if s.system_tokens > 0 else 0
    doc = _least(s.doc_len) if s.doc_len is not None else 0
    need = PROMPT_TOKENS + system + MESSAGE_TOKENS + doc + _least(s.input_len)
    need += _least(s.output_len)
    if need > s.max_history_tokens:
        raise DatasetError(
            f"a first turn needs at least {need} tokens (system prompt, document, message, "
            f"reply and {MESSAGE_TOKENS} per message for the chat template) but "
            f"--max-history-tokens is {s.max_history_tokens}: lower --system-prompt-len, "
            "--doc-len, --input-len or --output-len, or raise the bound"
        )


def _open(source: str) -> BinaryIO:
    try:
        return Path(source).open("rb")
    except FileNotFoundError:
        raise DatasetError(f"--conversations {source}: file not found; {_SOURCES_HINT}") from None
    except OSError as exc:
        raise DatasetError(f"--conversations {source}: cannot read it ({exc.strerror})") from None


def _read_sharegpt(
    source: str, s: ConversationSettings, limit: int | None
) -> tuple[list[Conversation], int]:
    with _open(source) as raw:
        dialogues, skipped = read_sharegpt_dialogues(raw, source, limit)
    convs = [
        Conversation(
            k,
            d.system,
            tuple(Turn(u, max(1, round(n / s.chars_per_token))) for u, n in d.pairs),
        )
        for k, d in enumerate(dialogues)
    ]
    return convs, skipped


def _read_jsonl(source: str, s: ConversationSettings, limit: int | None) -> list[Conversation]:
    rng = np.random.default_rng([s.seed, 2])
    with _open(source) as fh:
        convs = list(islice(_jsonl_conversations(fh, source, s.output_len, rng), limit))
    if not convs:
        raise DatasetError(
            f"--conversations {source}: the file has no conversations; {_JSONL_HINT}"
        )
    return convs


def _jsonl_conversations(
    fh: BinaryIO, source: str, output_len: LengthDist, rng: np.random.Generator
) -> Iterator[Conversation]:
    label = f"--conversations {source}"
    for index, (where, obj) in enumerate(jsonl_objects(fh, label, _JSONL_HINT)):
        yield _jsonl_conversation(obj, where, index, output_len, rng)


def _jsonl_conversation(
    obj: Any, where: str, index: int, output_len: LengthDist, rng: np.random.Generator
) -> Conversation:
    if not isinstance(obj, dict):
        raise DatasetError(f"{where}: expected a JSON object, got {json_kind(obj)}; {_JSONL_HINT}")
    system = obj.get("system")
    if system is not None and not (isinstance(system, str) and system):
        raise DatasetError(f'{where}: "system" must be a non-empty string; {_JSONL_HINT}')
    turns = obj.get("turns")
    if not isinstance(turns, list) or not turns:
        raise DatasetError(f'{where}: "turns" must be a non-empty list; {_JSONL_HINT}')
    return Conversation(index, system, tuple(_turn(t, f"{where} turns[{i}]", output_len, rng)
                                              for i, t in enumerate(turns)))  # fmt: skip


def _turn(obj: Any, where: str, output_len: LengthDist, rng: np.random.Generator) -> Turn:
    user = obj.get("user") if isinstance(obj, dict) else None
    if not isinstance(user, str) or not user:
        raise DatasetError(f'{where}: needs a non-empty string "user"; {_JSONL_HINT}')
    max_tokens = obj.get("max_tokens")
    if max_tokens is None:
        return Turn(user, int(output_len.sample(rng, 1)[0]))
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise DatasetError(
            f'{where}: "max_tokens" must be a whole number >= 1, got {json_kind(max_tokens)}'
        )
    return Turn(user, max_tokens)
