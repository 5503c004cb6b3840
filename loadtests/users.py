"""Locust user classes, one per protocol. Scenarios subclass them and stay declarative.

Closed loop (no ``--arrival-rate``): each user has one request in flight and sends the next
when the previous is done (plus ``wait_time``). Open loop: users idle, and a dispatcher per
process sends on the precomputed schedule (see ``loadtests.context``).
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, ClassVar

import gevent
from locust import User, constant, task
from locust.exception import StopUser

from loadtests import plugin
from loadtests.errors import SlabenchError
from loadtests.protocols import (
    JsonTemplate,
    KServeInfer,
    OpenAIEmbeddings,
    OpenAIGeneration,
    PayloadError,
    RequestBuilder,
    parse_shape,
)
from loadtests.transport import Transport
from sla.files.run import CANCELLED_ERROR

if TYPE_CHECKING:
    from loadtests.context import RunContext

log = logging.getLogger("slabench")


# A closed-loop user whose request got no HTTP answer waits this long before the next one.
CONNECTION_BACKOFF_S = 0.1


class SlabenchUser(User):
    abstract = True
    wait_time = constant(0)
    embedded_model: ClassVar[str] = ""
    needs_model: ClassVar[bool] = True
    warmup_path: ClassVar[str] = "/v1/models"

    transport: Transport

    @classmethod
    def make_builder(cls, ctx: RunContext) -> RequestBuilder:
        raise NotImplementedError

    def on_start(self) -> None:
        ctx = plugin.context()
        self.transport = ctx.new_transport(concurrency=1)
        if ctx.options.connection_warmup and not ctx.options.open_loop:
            # An unreachable target shows up in the first measured request instead.
            with contextlib.suppress(OSError):
                self.transport.warm(self.warmup_path)

    def on_stop(self) -> None:
        self.transport.close()

    @task
    def request(self) -> None:
        ctx = plugin.context()
        if ctx.options.open_loop:
            gevent.sleep(1.0)  # the open-loop dispatcher drives the load
            return
        try:
            req = ctx.prepare(type(self))
        except SlabenchError as exc:
            # A worker that cannot build its requests (the model lookup failed there): one
            # line per user, not a traceback for every task run.
            log.error("slabench: %s stops: %s", type(self).__name__, exc)
            raise StopUser() from None
        rec = ctx.send(self.transport, req)
        if rec.status == 0 and rec.error and rec.error != CANCELLED_ERROR:
            # No answer at all (refused, reset, timed out): do not spin on a dead target.
            gevent.sleep(CONNECTION_BACKOFF_S)


def _ignore_eos(ctx: RunContext) -> bool:
    mode = ctx.options.ignore_eos
    return mode == "on" or (mode == "auto" and ctx.bundled_target)


class _GenerationUser(SlabenchUser):
    abstract = True
    embedded_model = "slabench-lm"
    chat: ClassVar[bool]

    @classmethod
    def make_builder(cls, ctx: RunContext) -> RequestBuilder:
        stream, ignore_eos = ctx.options.stream, _ignore_eos(ctx)
        return OpenAIGeneration(ctx.model_for(cls), cls.chat, stream, ignore_eos)


class OpenAIChatUser(_GenerationUser):
    """POST /v1/chat/completions, streamed (SSE) unless --no-stream."""

    abstract = True
    chat = True


class OpenAICompletionsUser(_GenerationUser):
    """POST /v1/completions, streamed (SSE) unless --no-stream."""

    abstract = True
    chat = False


class EmbeddingsUser(SlabenchUser):
    """POST /v1/embeddings with one input per request."""

    abstract = True
    embedded_model = "slabench-embed"

    @classmethod
    def make_builder(cls, ctx: RunContext) -> RequestBuilder:
        return OpenAIEmbeddings(ctx.model_for(cls))


class KServeUser(SlabenchUser):
    """POST /v2/models/{model}/infer with a seeded FP32 tensor (--kserve-input/-shape)."""

    abstract = True
    embedded_model = "slabench-mlp"
    warmup_path = "/v2/health/ready"

    @classmethod
    def make_builder(cls, ctx: RunContext) -> RequestBuilder:
        if not ctx.options.model and not ctx.bundled_target:
            raise PayloadError("the KServe scenario needs --model (the V2 model name)")
        model = ctx.options.model or cls.embedded_model
        return KServeInfer(
            model,
            ctx.options.kserve_input,
            parse_shape(ctx.options.kserve_shape),
            seed=ctx.options.seed,
        )


class HttpJsonUser(SlabenchUser):
    """Any JSON endpoint: --payload template, --path, --method."""

    abstract = True
    needs_model = False
    warmup_path = "/"

    @classmethod
    def make_builder(cls, ctx: RunContext) -> RequestBuilder:
        if not ctx.options.payload:
            raise PayloadError("the http_json scenario needs --payload FILE (a JSON template)")
        return JsonTemplate.load(
            ctx.options.payload, method=ctx.options.method, path=ctx.options.path
        )
