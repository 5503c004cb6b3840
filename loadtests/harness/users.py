"""Locust user classes, one per protocol. Scenarios subclass them and stay declarative.

Closed loop (no ``--arrival-rate``): each user has one request in flight and sends the next
when the previous is done (plus ``wait_time``, plus the wait a 429/503 or a failed connection
asks for: ``loadtests.client.backoff``). Open loop: users idle, and a dispatcher per
process sends on the precomputed schedule (see ``loadtests.harness.state``).

Importing this module registers slabench's Locust listeners (``loadtests.harness.events``),
so every scenario has them.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import gevent
from locust import User, constant, task
from locust.exception import StopUser

from loadtests.client.backoff import ClosedLoopBackoff
from loadtests.client.protocols import (
    JsonTemplate,
    KServeInfer,
    OpenAIEmbeddings,
    OpenAIGeneration,
    PayloadError,
    RequestBuilder,
    parse_shape,
)
from loadtests.client.startup import NoAnswer, answer_within
from loadtests.client.transport import Transport
from loadtests.harness import events  # noqa: F401  (registers the listeners)
from loadtests.harness.sessions import ClosedLoopTalker, SessionBuilder, dispatch_sessions
from loadtests.harness.state import RunState, run_state
from sla.errors import SlabenchError

log = logging.getLogger("slabench")


class SlabenchUser(User):
    abstract = True
    wait_time = constant(0)
    embedded_model: ClassVar[str] = ""
    needs_model: ClassVar[bool] = True
    warmup_path: ClassVar[str] = "/v1/models"

    transport: Transport
    backoff: ClosedLoopBackoff

    @classmethod
    def make_builder(cls, state: RunState) -> RequestBuilder:
        raise NotImplementedError

    def on_start(self) -> None:
        state = run_state(self.environment)
        self.transport = state.new_transport(concurrency=1)
        self.backoff = state.new_backoff()
        if state.options.connection_warmup and not state.options.open_loop:
            self._warm(state)

    def _warm(self, state: RunState) -> None:
        """Open the connection with a cheap GET, its whole answer within the start-up bound.
        An unreachable or silent target shows up in the first measured request instead."""
        try:
            with answer_within(state.startup_timeout_s, f"GET {self.warmup_path}"):
                self.transport.warm(self.warmup_path)
        except NoAnswer:
            self.transport.close()  # its connection was cut mid-request: never reused
            self.transport = state.new_transport(concurrency=1)
        except OSError:
            pass

    def on_stop(self) -> None:
        self.transport.close()

    @task
    def request(self) -> None:
        state = run_state(self.environment)
        if state.options.open_loop:
            gevent.sleep(1.0)  # the open-loop dispatcher drives the load
            return
        self.closed_loop_request(state)

    def closed_loop_request(self, state: RunState) -> None:
        """One closed-loop request (a subclass may send something else: a session's turn)."""
        try:
            req = state.prepare(type(self))
        except SlabenchError as exc:
            # A worker that cannot build its requests (the model lookup failed there): one
            # line per user, not a traceback for every task run.
            log.error("slabench: %s stops: %s", type(self).__name__, exc)
            raise StopUser() from None
        rec = state.send(self.transport, req, backoff=self.backoff)
        if rec.backoff_ms > 0:
            # Turned away (429/503, refused...): Retry-After, or a back-off; never a tight
            # loop against a rate-limited or dead target (loadtests.client.backoff).
            gevent.sleep(rec.backoff_ms / 1000.0)


def _ignore_eos(state: RunState) -> bool:
    mode = state.options.ignore_eos
    return mode == "on" or (mode == "auto" and state.bundled_target)


class _GenerationUser(SlabenchUser):
    abstract = True
    embedded_model = "slabench-lm"
    chat: ClassVar[bool]

    @classmethod
    def make_builder(cls, state: RunState) -> RequestBuilder:
        stream, ignore_eos = state.options.stream, _ignore_eos(state)
        model, nonce = state.model_for(cls), state.plan.nonce
        return OpenAIGeneration(model, cls.chat, stream, ignore_eos, nonce=nonce)


class OpenAIChatUser(_GenerationUser):
    """POST /v1/chat/completions, streamed (SSE) unless --no-stream."""

    abstract = True
    chat = True


class OpenAICompletionsUser(_GenerationUser):
    """POST /v1/completions, streamed (SSE) unless --no-stream."""

    abstract = True
    chat = False


class OpenAISessionUser(SlabenchUser):
    """Multi-turn chat: each user is a conversation whose turns resend the whole history
    (``loadtests.harness.sessions``); open loop starts sessions at --arrival-rate."""

    abstract = True
    embedded_model = "slabench-lm"
    dispatch_open_loop = staticmethod(dispatch_sessions)
    multi_turn = True  # prompts are histories: run.json requests no one input size
    talker: ClosedLoopTalker | None = None

    @classmethod
    def make_builder(cls, state: RunState) -> RequestBuilder:
        stream, ignore_eos = state.options.stream, _ignore_eos(state)
        return SessionBuilder(state, state.model_for(cls), stream=stream, ignore_eos=ignore_eos)

    def closed_loop_request(self, state: RunState) -> None:
        if self.talker is None:
            try:
                builder = state.builder_for(type(self))
            except SlabenchError as exc:
                log.error("slabench: %s stops: %s", type(self).__name__, exc)
                raise StopUser() from None
            assert isinstance(builder, SessionBuilder)
            self.talker = ClosedLoopTalker(builder)
        try:
            self.talker.turn(state, self.transport, self.backoff)
        except SlabenchError as exc:
            log.error("slabench: %s stops: %s", type(self).__name__, exc)
            raise StopUser() from None


class EmbeddingsUser(SlabenchUser):
    """POST /v1/embeddings with one input per request."""

    abstract = True
    embedded_model = "slabench-embed"

    @classmethod
    def make_builder(cls, state: RunState) -> RequestBuilder:
        return OpenAIEmbeddings(state.model_for(cls), nonce=state.plan.nonce)


class KServeUser(SlabenchUser):
    """POST /v2/models/{model}/infer with a seeded FP32 tensor (--kserve-input/-shape)."""

    abstract = True
    embedded_model = "slabench-mlp"
    warmup_path = "/v2/health/ready"

    @classmethod
    def make_builder(cls, state: RunState) -> RequestBuilder:
        if not state.options.model and not state.bundled_target:
            raise PayloadError("the KServe scenario needs --model (the V2 model name)")
        model = state.options.model or cls.embedded_model
        return KServeInfer(
            model,
            state.options.kserve_input,
            parse_shape(state.options.kserve_shape),
            seed=state.options.seed,
        )


class HttpJsonUser(SlabenchUser):
    """Any JSON endpoint: --payload template, --path, --method."""

    abstract = True
    needs_model = False
    warmup_path = "/"

    @classmethod
    def make_builder(cls, state: RunState) -> RequestBuilder:
        if not state.options.payload:
            raise PayloadError("the http_json scenario needs --payload FILE (a JSON template)")
        options = state.options
        return JsonTemplate.load(
            options.payload, method=options.method, path=options.path, nonce=state.plan.nonce
        )
