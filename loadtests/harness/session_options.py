"""The options of multi-turn sessions (``loadtests/scenarios/sessions.py``), parsed once.

No gevent here: ``loadtests.harness.sessions`` runs the conversations; this module only
reads the command line into a frozen ``SessionOptions``.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loadtests.errors import LoadSpecError
from loadtests.workloads.conversation_files import ConversationSettings
from loadtests.workloads.conversations import ThinkTime, parse_think_time
from loadtests.workloads.datasets import LengthDist, parse_length_dist

__all__ = ["BUNDLED_CONTEXT_TOKENS", "SessionOptions", "add_session_options", "bundled_context"]

BUNDLED_CONTEXT_TOKENS = 1024  # the reference server's default --max-model-len


def add_session_options(opt: Callable[..., None]) -> None:
    """Register the options through the ``opt(flag, env, **kw)`` helper of add_options."""
    opt(
        "--conversations",
        "CONVERSATIONS",
        default="synthetic",
        help="sessions: 'synthetic', a .jsonl file of conversations or a ShareGPT .json file "
        "(every human turn)",
    )
    opt(
        "--turns",
        "TURNS",
        default="fixed:4",
        help="sessions: turns per synthetic conversation (fixed:N, uniform:LO,HI, ...)",
    )
    opt(
        "--think-time",
        "THINK_TIME",
        default="fixed:0",
        help="sessions: seconds a user waits after a reply before the next turn: fixed:S, "
        "uniform:LO,HI or exponential:MEAN",
    )
    opt(
        "--system-prompt-len",
        "SYSTEM_PROMPT_LEN",
        type=int,
        default=0,
        help="sessions: tokens of a system prompt shared by every synthetic conversation "
        "(identical text; 0 = none)",
    )
    opt(
        "--doc-len",
        "DOC_LEN",
        default="0",
        help="sessions: tokens of a document each synthetic conversation opens with (its "
        "own text, in the first user message; a length spec, 0 = none)",
    )
    opt(
        "--max-history-tokens",
        "MAX_HISTORY_TOKENS",
        default="auto",
        help="sessions: a conversation ends before a turn whose history, message and "
        "max_tokens would exceed this (the target's context); auto = the bundled server's "
        "--max-model-len, else no bound; 0 = no bound",
    )


@dataclass(frozen=True, slots=True)
class SessionOptions:
    conversations: str
    turns: LengthDist
    think: ThinkTime
    system_tokens: int
    doc_len: LengthDist | None
    max_history_tokens: int | None  # None: auto

    @classmethod
    def from_namespace(cls, ns: Any) -> SessionOptions:
        if ns.system_prompt_len < 0:
            raise LoadSpecError(f"--system-prompt-len {ns.system_prompt_len} must be >= 0")
        return cls(
            conversations=ns.conversations,
            turns=_length("--turns", ns.turns),
            think=parse_think_time(ns.think_time),
            system_tokens=ns.system_prompt_len,
            doc_len=None
            if ns.doc_len.strip() in ("0", "fixed:0")
            else _length("--doc-len", ns.doc_len),
            max_history_tokens=_bound(ns.max_history_tokens),
        )

    def settings(
        self,
        *,
        seed: int,
        input_len: str,
        output_len: str,
        chars_per_token: float,
        context_tokens: int,
    ) -> ConversationSettings:
        """What the conversation source needs; ``context_tokens``: the bound ``auto`` means
        (0: none)."""
        bound = context_tokens if self.max_history_tokens is None else self.max_history_tokens
        return ConversationSettings(
            seed=seed,
            input_len=_length("--input-len", input_len),
            output_len=_length("--output-len", output_len),
            turns=self.turns,
            system_tokens=self.system_tokens,
            doc_len=self.doc_len,
            chars_per_token=chars_per_token,
            max_history_tokens=bound,
        )

    def describe(self) -> dict[str, Any]:
        """For run.json's load profile."""
        return {
            "conversations": self.conversations,
            "turns": self.turns.spec,
            "think_time": self.think.spec,
            "system_prompt_len": self.system_tokens,
            "doc_len": self.doc_len.spec if self.doc_len else None,
            "max_history_tokens": self.max_history_tokens,
        }


def bundled_context(server_args: str) -> int:
    """The bundled server's context in tokens: its ``--max-model-len`` in ``server_args``."""
    args = shlex.split(server_args)
    for i, arg in enumerate(args):
        value = None
        if arg == "--max-model-len" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--max-model-len="):
            value = arg.split("=", 1)[1]
        if value is not None and value.isdigit():
            return int(value)
    return BUNDLED_CONTEXT_TOKENS


def _length(flag: str, spec: str) -> LengthDist:
    try:
        return parse_length_dist(spec)
    except ValueError as exc:
        raise LoadSpecError(f"{flag}: {exc}") from None


def _bound(text: str) -> int | None:
    if text.strip() == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise LoadSpecError(
            f"--max-history-tokens {text!r} must be 'auto' or a whole number >= 0 (0 = no bound)"
        )
    return value
