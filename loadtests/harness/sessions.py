"""Multi-turn sessions on the wire (``loadtests/scenarios/sessions.py``).

A session is one conversation (``loadtests.workloads.conversations.Session``): each turn
sends the whole history plus a new user message, and the assistant's actual reply (handed
over by ``RunState.send(..., on_reply=...)``) joins the history before the next turn.

- **Closed loop**: each Locust user holds one conversation (users = concurrent sessions);
  one task run = one turn, then the think time; when the conversation is over (every turn,
  or the context bound) the user starts the next one at once.
- **Open loop**: ``--arrival-rate`` is the rate at which sessions *start*: the first turn of
  each is sent on the arrival schedule (``workloads.arrivals``); each later turn is
  scheduled at the previous reply's ``done_at`` plus a think time, and its latency counts
  from that ``scheduled_at``, so a slow server cannot hide behind its own delays. A turn
  that finds ``--max-inflight`` requests in flight is recorded as dropped and ends its
  conversation.
- **A failed turn ends its conversation** (a user who gets an error starts over, as people
  do); a failed reply is never appended. In closed loop the user first waits the back-off
  the failure asks for (``Retry-After``, refused connections).

Every conversation's first message starts with the run's prompt word (``--prompt-nonce``):
no two runs share a prefix, the conversations of one run share their system prompt.
Every body is built before its send time (for open loop, before ``scheduled_at``).
Distributed mode: each worker runs its own sessions, from its own slice of the source.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import gevent
from gevent.pool import Pool

from loadtests.client.clock import now
from loadtests.client.nonce import prefixed
from loadtests.client.protocols import OpenAIGeneration, PayloadError, PreparedRequest
from loadtests.client.transport import Transport
from loadtests.harness.session_options import bundled_context
from loadtests.workloads.conversation_files import ConversationSource, load_conversations
from loadtests.workloads.conversations import (
    ChatBody,
    Conversation,
    Session,
    TurnRequest,
    think_rng,
)
from loadtests.workloads.datasets import Prompt
from sla.errors import SlabenchError

if TYPE_CHECKING:
    from loadtests.harness.state import RunState

__all__ = ["SessionBuilder", "dispatch_sessions"]

log = logging.getLogger("slabench")
_UNFIT_LIMIT = 1000  # conversations in a row whose first turn does not fit: a config error


class SessionBuilder:
    """The sessions scenario's builder: its conversations, and how a turn becomes a request.
    ``build`` (one prompt, one chat request) keeps the ``RequestBuilder`` seam for tools
    that ask any builder for a request; the sessions themselves use ``next_session``."""

    def __init__(self, state: RunState, model: str, *, stream: bool, ignore_eos: bool) -> None:
        options = state.options
        if options.dataset != "synthetic":
            raise PayloadError(
                "the sessions scenario reads --conversations (synthetic, .jsonl or ShareGPT "
                f".json), not --dataset {options.dataset}: pass the file as --conversations"
            )
        self.chars_per_token = options.chars_per_token or (1.0 if state.bundled_target else 4.0)
        sessions = options.sessions
        self.settings = sessions.settings(
            seed=options.seed,
            input_len=options.input_len,
            output_len=options.output_len,
            chars_per_token=self.chars_per_token,
            context_tokens=bundled_context(options.server_args) if state.bundled_target else 0,
        )
        self.source: ConversationSource = load_conversations(sessions.conversations, self.settings)
        self.think = sessions.think
        self.seed = options.seed
        self.nonce = state.plan.nonce
        self.body = ChatBody(model, stream, ignore_eos)
        self.stream = stream
        self._single = OpenAIGeneration(model, True, stream, ignore_eos, nonce=self.nonce)
        self._plan: tuple[int, int] | None = None
        self._conversations: Iterator[Conversation] = iter(())
        self._count = itertools.count()

    def build(self, prompt: Prompt) -> PreparedRequest:
        return self._single.build(prompt)

    def next_session(self, state: RunState) -> Session:
        """This process's next conversation (its slice of the source in distributed mode)."""
        plan = (state.plan.index, state.plan.count)
        if plan != self._plan:
            self._plan = plan
            self._conversations = self.source.cycle(*plan)
        conv = with_nonce(next(self._conversations), self.nonce)
        return Session(
            conv,
            f"{state.label}-c{next(self._count)}",
            body=self.body,
            chars_per_token=self.chars_per_token,
            max_history_tokens=self.settings.max_history_tokens,
            think=self.think,
            rng=think_rng(self.seed, conv.index),
        )

    def first_turn(self, state: RunState) -> tuple[Session, PreparedRequest]:
        """A new conversation and its first turn's request (skipping any whose first turn
        does not fit in the context bound)."""
        for _ in range(_UNFIT_LIMIT):
            session = self.next_session(state)
            req = self.request(session)
            if req is not None:
                return session, req
        raise PayloadError(
            f"{_UNFIT_LIMIT} conversations in a row have a first turn over "
            f"--max-history-tokens {self.settings.max_history_tokens}: raise it or shorten them"
        )

    def request(self, session: Session) -> PreparedRequest | None:
        """The session's next turn as a request, or None when the conversation is over."""
        turn: TurnRequest | None = session.next_turn()
        if turn is None:
            return None
        return PreparedRequest(
            "chat",
            "POST",
            "/v1/chat/completions",
            turn.body,
            "openai_sse" if self.stream else "openai_json",
            turn.input_tokens_hint,
            session_id=session.session_id,
            turn=turn.turn,
        )


def with_nonce(conv: Conversation, nonce: str) -> Conversation:
    """The conversation as this run sends it: its first message (the system prompt, else the
    first user message) starts with the run's prompt word (``loadtests.client.nonce``), so
    that runs share no prefix while the conversations of one run still share theirs."""
    if not nonce:
        return conv
    if conv.system is not None:
        return replace(conv, system=prefixed(nonce, conv.system))
    first = replace(conv.turns[0], user=prefixed(nonce, conv.turns[0].user))
    return replace(conv, turns=(first, *conv.turns[1:]))


class ClosedLoopTalker:
    """One closed-loop Locust user's conversation, one turn per call of ``turn``."""

    def __init__(self, builder: SessionBuilder) -> None:
        self.builder = builder
        self.session: Session | None = None
        self.pending: PreparedRequest | None = None

    def turn(self, state: RunState, transport: Transport, backoff: Any) -> None:
        builder = self.builder
        if self.session is None or self.pending is None:
            self.session, self.pending = builder.first_turn(state)
        session, req = self.session, self.pending
        rec = state.send(transport, req, backoff=backoff, on_reply=session.reply)
        self.pending = None if rec.error else builder.request(session)
        if rec.backoff_ms > 0:
            gevent.sleep(rec.backoff_ms / 1000.0)
        elif self.pending is not None:
            gevent.sleep(session.think_s())


def dispatch_sessions(
    state: RunState, offsets: Iterator[float], transport: Transport, pool: Pool, bound: int
) -> None:
    """Open loop: start a session at each arrival; ``pool`` holds their greenlets (killed at
    the end of the test); at most ``bound`` of their requests are in flight at once."""
    try:
        builder = state.builder_for(state.user_classes()[0])
    except SlabenchError as exc:  # a worker that cannot ask the target for its model
        log.error("slabench: no sessions are started: %s", exc)
        return
    assert isinstance(builder, SessionBuilder)
    inflight = [0]
    t0 = state.plan.t0
    for offset in offsets:
        scheduled_at = t0 + offset
        try:
            session, req = builder.first_turn(state)  # built before the send time
        except SlabenchError as exc:
            log.error("slabench: no more sessions are started: %s", exc)
            return
        delay = scheduled_at - now()
        if delay > 0:
            gevent.sleep(delay)
        state.spawn_send(
            pool,
            req,
            scheduled_at,
            _converse,
            *(state, builder, session, req, scheduled_at, transport, inflight, bound),
        )


def _converse(
    state: RunState,
    builder: SessionBuilder,
    session: Session,
    req: PreparedRequest | None,
    scheduled_at: float,
    transport: Transport,
    inflight: list[int],
    bound: int,
) -> None:
    while req is not None:
        delay = scheduled_at - now()
        if delay > 0:
            gevent.sleep(delay)
        if inflight[0] >= bound:
            state.record_dropped(req, scheduled_at)
            return
        inflight[0] += 1
        try:
            rec = state.send(transport, req, scheduled_at, on_reply=session.reply)
        finally:
            inflight[0] -= 1
        if rec.error or math.isnan(rec.done_at):
            return
        scheduled_at = session.next_scheduled_at(rec.done_at)
        req = builder.request(session)  # built before its scheduled time
