"""Frozen configuration of the reference server, built once at the edge and passed down.

Usage::

    from reference_server import ServerConfig, create_app
    config = ServerConfig(port=0, lm=LMConfig(layers=2), batching=BatchingConfig(max_batch_size=16))
    app = create_app(config)

Every field has a command-line flag in ``python -m reference_server --help``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Device = Literal["auto", "cpu", "cuda"]
DType = Literal["auto", "float32", "bfloat16", "float16"]


@dataclass(frozen=True, slots=True)
class LMConfig:
    """The decoder-only transformer used for /v1/completions and /v1/chat/completions."""

    name: str = "slabench-lm"
    layers: int = 4
    dim: int = 256
    heads: int = 4
    max_model_len: int = 1024
    seed: int = 0


@dataclass(frozen=True, slots=True)
class EmbedderConfig:
    """The bidirectional encoder used for /v1/embeddings."""

    name: str = "slabench-embed"
    layers: int = 2
    dim: int = 256
    heads: int = 4
    max_input_len: int = 512
    seed: int = 1


@dataclass(frozen=True, slots=True)
class ClassifierConfig:
    """The MLP classifier served through KServe V2 (/v2/models/{name}/infer)."""

    name: str = "slabench-mlp"
    in_features: int = 256
    hidden: int = 2048
    layers: int = 3
    classes: int = 10
    seed: int = 2


@dataclass(frozen=True, slots=True)
class BatchingConfig:
    """Scheduling limits shared by the dynamic batchers and the generation engine."""

    max_batch_size: int = 32  # dynamic batchers (embeddings, KServe)
    max_queue_delay_ms: float = 2.0
    max_queue_size: int = 256  # per dynamic batcher; a full queue answers 429
    max_num_seqs: int = 32  # sequences decoded together by continuous batching
    max_waiting: int = 256  # generation requests queued before 429
    max_prefill_tokens: int = 2048  # prompt tokens admitted per scheduler step
    max_tokens_limit: int = 1024  # largest max_tokens a request may ask for
    request_timeout_s: float = 120.0


@dataclass(frozen=True, slots=True)
class PrefixCacheConfig:
    """Automatic prefix caching: KV of full prompt blocks kept for later requests.

    ``block_size`` tokens per block (vLLM's default on GPUs: small enough that prompts
    sharing a prefix share most of it, large enough that hashing and copying stay cheap);
    at most ``memory_bytes`` of keys and values kept, least recently used evicted first.
    """

    enabled: bool = True
    block_size: int = 16
    memory_bytes: int = 256 * 1024 * 1024


ReasoningField = Literal["reasoning", "reasoning_content"]


@dataclass(frozen=True, slots=True)
class ReasoningConfig:
    """Reasoning tokens of chat answers: ``tokens`` by default (a request's
    ``reasoning_tokens`` overrides it), streamed in the delta field ``field``."""

    tokens: int = 0
    field: ReasoningField = "reasoning"


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Faults injected into inference endpoints, for testing SLA gates.

    ``latency`` is ``"fixed:MS"``, ``"uniform:LO,HI"``, ``"normal:MEAN,STD"``,
    ``"lognormal:MEDIAN_MS,SIGMA"`` or ``"exp:MEAN_MS"``; it delays each request before it
    is queued, so it lands on TTFT and end-to-end latency. ``stall_every_s`` and
    ``stall_duration_s`` pause every scheduler (generation steps and batch execution), as a
    GC pause or a stuck GPU would. ``slow_start_s`` keeps the server not-ready (503) for that
    long after start-up. ``token_delay_ms`` adds a fixed pause after every decode step.
    ``capacity_rps`` (0 = off) puts every inference request through a simulated
    single-server FIFO queue with a service time of ``1 / capacity_rps`` seconds before its
    real work, so that the server completes at most that many requests per second; a
    request whose wait would exceed ``BatchingConfig.request_timeout_s`` is refused (429).
    """

    latency: str | None = None
    error_rate: float = 0.0
    stall_every_s: float = 0.0
    stall_duration_s: float = 0.0
    slow_start_s: float = 0.0
    token_delay_ms: float = 0.0
    capacity_rps: float = 0.0
    seed: int = 0


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything the reference server needs; ``create_app(config)`` takes one."""

    host: str = "127.0.0.1"
    port: int = 8000
    device: Device = "auto"
    dtype: DType = "auto"
    torch_threads: int = 0  # 0 = torch's default
    lm: LMConfig = field(default_factory=LMConfig)
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    faults: FaultConfig = field(default_factory=FaultConfig)
    prefix_cache: PrefixCacheConfig = field(default_factory=PrefixCacheConfig)
    reasoning: ReasoningConfig = field(default_factory=ReasoningConfig)
    enable_admin: bool = False
    admin_token: str | None = None  # required by /admin/* when set (Authorization: Bearer)
    drain_timeout_s: float = 30.0
    max_body_bytes: int = 4 * 1024 * 1024
    body_timeout_s: float = 10.0  # a request body must arrive within this (408)
    max_body_reads: int = 64  # request bodies received at once; more get 503
    # bytes of request bodies held at once by requests read and not yet answered (queued,
    # batched, running); one more gets 503
    max_body_memory: int = 256 * 1024 * 1024
    max_connections: int = 1024  # open connections; more get 503 and are closed
    keepalive_timeout_s: float = 15.0  # idle keep-alive connections are closed after this
