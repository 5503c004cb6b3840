"""Multi-turn conversations: what each turn sends, and a conversation's history as it grows.

    source = SyntheticConversations(seed=0, input_len=parse_length_dist("fixed:64"), ...)
    for conv in source.cycle(start=worker_index, step=worker_count):
        session = Session(conv, "local-c0", body=ChatBody("m", stream=True, ignore_eos=False),
                          chars_per_token=4.0, max_history_tokens=4096, think=THINK, rng=rng)
        while (turn := session.next_turn()) is not None:
            ...  # send turn.body; on success session.reply(text) and wait session.think_s()

A ``Conversation`` is an optional system prompt and its user turns (text, max_tokens). Each
turn's request carries the whole history (system, every earlier user message and the
assistant's actual reply to it) plus the new user message. Messages are JSON-encoded once,
when they join the history, so building a turn's body is one join of bytes.

Context bound: a turn is sent only if the history, the new message and its ``max_tokens``
fit in ``max_history_tokens`` (estimated: UTF-8 bytes / chars_per_token, rounded up, plus
``MESSAGE_TOKENS`` per message for the chat template and ``PROMPT_TOKENS`` once); otherwise
the conversation ends there (``Session.ended_by_context``) and the caller starts the next
one, before the target could answer 400. 0 means no bound.

Think times, in seconds: ``fixed:S`` (or a bare ``S``), ``uniform:LO,HI``,
``exponential:MEAN``.

Synthetic conversations are reproducible from the seed: conversation k's lengths and text
come from a generator seeded with (seed, k), whichever worker or user takes it. All share
one system prompt of ``system_tokens`` (identical text); each opens with its own document
(``doc_len``, distinct text) at the head of its first user message.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, NoReturn, cast

from loadtests.errors import DatasetError
from loadtests.workloads.datasets import LengthDist

__all__ = [
    "MESSAGE_TOKENS",
    "PROMPT_TOKENS",
    "ChatBody",
    "Conversation",
    "ConversationList",
    "Session",
    "SyntheticConversations",
    "ThinkTime",
    "Turn",
    "TurnRequest",
    "parse_think_time",
    "think_rng",
]

MESSAGE_TOKENS = 16  # chat-template tokens per message, an upper bound (the bundled: <= 14)
PROMPT_TOKENS = 16  # once per prompt (BOS, the assistant's opening tag)
_THINK_FORMS = "use fixed:S, uniform:LO,HI or exponential:MEAN (seconds >= 0)"
_ThinkKind = Literal["fixed", "uniform", "exponential"]
_WORD_TEXT = (
    "the of and to in is that it for on with as was at by be this from are or an have not "
    "they which one you had her all she there would their we him been has when who will more "
    "water light river stone paper window garden market letter number morning evening story "
    "question answer simple model server request token batch queue memory signal value"
)
_WORDS = tuple(_WORD_TEXT.split())


@dataclass(frozen=True, slots=True)
class ThinkTime:
    """A think-time distribution in seconds. `a`, `b`: S; LO, HI; or MEAN."""

    kind: _ThinkKind
    a: float
    b: float = 0.0

    @property
    def spec(self) -> str:
        return f"{self.kind}:{self.a:g}" + (f",{self.b:g}" if self.kind == "uniform" else "")

    def sample(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            return self.a
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        return rng.expovariate(1.0 / self.a) if self.a > 0 else 0.0


def parse_think_time(spec: str) -> ThinkTime:
    """Parses ``fixed:S`` (or ``S``), ``uniform:LO,HI`` or ``exponential:MEAN``."""
    kind, _, args = spec.strip().partition(":")
    if not args:
        kind, args = "fixed", kind
    want = {"fixed": 1, "uniform": 2, "exponential": 1}.get(kind)
    parts = [p.strip() for p in args.split(",")]
    if want is None:
        _bad_think(spec, f"unknown kind {kind!r}")
    if len(parts) != want:
        _bad_think(spec, f"{kind} takes {want} number{'s' if want > 1 else ''}")
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        _bad_think(spec, "not a number")
    if not all(math.isfinite(x) and x >= 0 for x in nums):
        _bad_think(spec, "seconds must be finite and >= 0")
    if kind == "uniform" and nums[0] > nums[1]:
        _bad_think(spec, "LO must be <= HI")
    return ThinkTime(cast(_ThinkKind, kind), *nums)


def _bad_think(spec: str, why: str) -> NoReturn:
    raise DatasetError(f"--think-time {spec!r}: {why}; {_THINK_FORMS}")


@dataclass(frozen=True, slots=True)
class Turn:
    user: str
    max_tokens: int


@dataclass(frozen=True, slots=True)
class Conversation:
    """`index`: its place in the source; `system`: the system prompt, or None."""

    index: int
    system: str | None
    turns: tuple[Turn, ...]


class ConversationList:
    """The conversations of a file, cycled like ``Dataset.cycle`` (disjoint per worker)."""

    __slots__ = ("conversations", "skipped", "source")

    def __init__(self, conversations: Sequence[Conversation], source: str, skipped: int) -> None:
        self.conversations = tuple(conversations)
        self.source = source
        self.skipped = skipped

    def cycle(self, start: int, step: int) -> Iterator[Conversation]:
        mine = self.conversations[start % len(self.conversations) :: step]
        while True:
            yield from mine


class SyntheticConversations:
    """Endless distinct conversations; see the module docstring. Drawn with Python's
    ``random`` (a generator per conversation costs a few microseconds; numpy's, 20+)."""

    __slots__ = ("chars_per_token", "doc_len", "input_len", "output_len", "seed", "system",
                 "turns")  # fmt: skip

    def __init__(
        self,
        seed: int,
        input_len: LengthDist,
        output_len: LengthDist,
        turns: LengthDist,
        system_tokens: int,
        doc_len: LengthDist | None,
        chars_per_token: float,
    ) -> None:
        self.seed = seed
        self.input_len, self.output_len, self.turns = input_len, output_len, turns
        self.doc_len = doc_len
        self.chars_per_token = chars_per_token
        self.system: str | None = None
        if system_tokens > 0:  # one text for the whole run
            rng = random.Random(f"{seed}:system")
            self.system = _text("system:", self._chars(system_tokens), rng)

    def conversation(self, k: int) -> Conversation:
        rng = random.Random(self.seed << 41 | k)
        count = _draw(self.turns, rng)
        texts = [
            _text(f"{k}.{t + 1}:", self._chars(_draw(self.input_len, rng)), rng)
            for t in range(count)
        ]
        if self.doc_len is not None:
            doc = _text(f"document {k}:", self._chars(_draw(self.doc_len, rng)), rng)
            texts[0] = doc + "\n\n" + texts[0]
        turns = tuple(Turn(text, _draw(self.output_len, rng)) for text in texts)
        return Conversation(k, self.system, turns)

    def cycle(self, start: int, step: int) -> Iterator[Conversation]:
        k = start
        while True:
            yield self.conversation(k)
            k += step

    def _chars(self, tokens: int) -> int:
        return max(1, round(tokens * self.chars_per_token))


def think_rng(seed: int, index: int) -> random.Random:
    """The think times of conversation `index` (reproducible, apart from its text's draws)."""
    return random.Random(seed << 41 | 1 << 40 | index)


def _draw(dist: LengthDist, rng: random.Random) -> int:
    """One length from `dist` (the forms of ``LengthDist``), rounded and clipped to >= 1."""
    if dist.kind == "fixed":
        return int(dist.a)
    if dist.kind == "uniform":
        return rng.randint(int(dist.a), int(dist.b))
    if dist.kind == "normal":
        raw = rng.gauss(dist.a, dist.b)
    else:
        raw = rng.lognormvariate(math.log(dist.a), dist.b)
    return max(1, round(raw))


def _text(head: str, n_chars: int, rng: random.Random) -> str:
    """`n_chars` characters of words after `head` (longer if the head is)."""
    words = rng.choices(_WORDS, k=n_chars // 3 + 1)
    text = " ".join([head, *words])[: max(n_chars, len(head))]
    return text[:-1] + "." if text.endswith(" ") else text


@dataclass(frozen=True, slots=True)
class ChatBody:
    """The fixed fields of every chat request of a run (as ``OpenAIGeneration`` sends them)."""

    model: str
    stream: bool
    ignore_eos: bool

    def parts(self) -> tuple[bytes, bytes]:
        """The body's bytes before the messages and after ``max_tokens``'s value."""
        head = b'{"model":' + json.dumps(self.model).encode() + b',"messages":['
        tail = b',"stream":true,"stream_options":{"include_usage":true}' if self.stream else b""
        return head, tail + (b',"ignore_eos":true' if self.ignore_eos else b"") + b"}"


@dataclass(frozen=True, slots=True)
class TurnRequest:
    body: bytes
    turn: int  # from 1
    input_tokens_hint: int


def _message(role: str, content: str) -> bytes:
    return json.dumps({"role": role, "content": content}, separators=(",", ":")).encode()


class Session:
    """One conversation under way: its history, the next turn, and its think times."""

    __slots__ = (
        "_bound",
        "_cpt",
        "_head",
        "_messages",
        "_pending",
        "_rng",
        "_tail",
        "_think",
        "conversation",
        "ended_by_context",
        "history_tokens",
        "session_id",
        "turn",
    )

    def __init__(
        self,
        conversation: Conversation,
        session_id: str,
        *,
        body: ChatBody,
        chars_per_token: float,
        max_history_tokens: int,
        think: ThinkTime,
        rng: random.Random,
    ) -> None:
        self.conversation = conversation
        self.session_id = session_id
        self._cpt = chars_per_token
        self._bound = max_history_tokens
        self._think = think
        self._rng = rng
        self._head, self._tail = body.parts()
        self._messages: list[bytes] = []
        self.history_tokens = PROMPT_TOKENS
        self.turn = 0  # turns answered so far
        self.ended_by_context = False
        self._pending: tuple[bytes, int] | None = None
        if conversation.system is not None:
            self._append("system", conversation.system)

    def tokens(self, text: str) -> int:
        """The estimated tokens of one message, template included."""
        return math.ceil(len(text.encode()) / self._cpt) + MESSAGE_TOKENS

    def next_turn(self) -> TurnRequest | None:
        """The next turn's request, or None when the conversation is over: every turn
        answered, or the next would not fit in the context bound (``ended_by_context``)."""
        if self.turn >= len(self.conversation.turns):
            return None
        turn = self.conversation.turns[self.turn]
        user = _message("user", turn.user)
        tokens = self.tokens(turn.user)
        if self._bound and self.history_tokens + tokens + turn.max_tokens > self._bound:
            self.ended_by_context = True
            return None
        self._pending = (user, tokens)
        body = b"".join(
            (
                self._head,
                b",".join((*self._messages, user)),
                b'],"max_tokens":%d' % turn.max_tokens,
                self._tail,
            )
        )
        return TurnRequest(body, self.turn + 1, self.history_tokens + tokens)

    def reply(self, text: str) -> None:
        """The assistant's answer to the pending turn: the turn and it join the history.
        Only a successful answer comes here; after a failure the conversation ends."""
        if self._pending is None:
            raise RuntimeError("reply() without a turn in flight")
        user, tokens = self._pending
        self._pending = None
        self._messages.append(user)
        self.history_tokens += tokens
        self._append("assistant", text)
        self.turn += 1

    def think_s(self) -> float:
        """The user's pause before the next turn (a fresh draw each call)."""
        return self._think.sample(self._rng)

    def next_scheduled_at(self, done_at: float) -> float:
        """Open loop: the next turn is due at the previous reply's end plus a think time."""
        return done_at + self.think_s()

    def _append(self, role: str, content: str) -> None:
        self._messages.append(_message(role, content))
        self.history_tokens += self.tokens(content)
