"""Command-line options of the reference server, turned into one frozen ``ServerConfig``."""

from __future__ import annotations

import argparse
import ipaddress
import os

from reference_server import faults as fault_rules
from reference_server.cli_types import (
    byte_size,
    finite_non_negative,
    non_negative,
    non_negative_int,
    positive_float,
    positive_int,
)
from reference_server.config import (
    BatchingConfig,
    ClassifierConfig,
    EmbedderConfig,
    FaultConfig,
    LMConfig,
    PrefixCacheConfig,
    ReasoningConfig,
    ServerConfig,
)

# slots dataclasses keep no class-level defaults, so read them from default instances.
_LM, _EMB, _MLP, _BATCH = LMConfig(), EmbedderConfig(), ClassifierConfig(), BatchingConfig()
_PREFIX = PrefixCacheConfig()


class ConfigError(ValueError):
    """An option value the server cannot run with; str() is one line."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="slabench-server",
        description="slabench reference inference server (OpenAI-compatible, KServe V2, /metrics)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _serving_options(p)
    _model_options(p)
    _scheduling_options(p)
    _generation_options(p)
    _fault_options(p)
    return p


def _serving_options(p: argparse.ArgumentParser) -> None:
    s = p.add_argument_group("serving")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (loopback by default)")
    s.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one")
    s.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="auto = CUDA when available",
    )
    s.add_argument(
        "--dtype",
        choices=["auto", "float32", "bfloat16", "float16"],
        default="auto",
        help="auto = bfloat16 on CUDA, float32 on the CPU",
    )
    s.add_argument(
        "--torch-threads", type=int, default=0, help="torch intra-op threads; 0 = default"
    )
    s.add_argument(
        "--drain-timeout",
        type=non_negative,
        default=30.0,
        help="seconds in-flight requests get to finish on SIGTERM",
    )
    s.add_argument(
        "--max-body-bytes",
        type=positive_int,
        default=4 * 1024 * 1024,
        help="larger request bodies get 413",
    )
    s.add_argument(
        "--body-timeout",
        type=positive_float,
        default=10.0,
        help="seconds a request body may take to arrive (408 after); the request is admitted "
        "only once its body is read",
    )
    s.add_argument(
        "--max-body-reads",
        type=positive_int,
        default=64,
        help="request bodies received at once; more get 503 with Retry-After",
    )
    s.add_argument(
        "--max-body-memory",
        type=positive_int,
        default=256 * 1024 * 1024,
        help="bytes of request bodies held at once by requests not yet answered (queued or "
        "running); one more gets 503 with Retry-After",
    )
    s.add_argument(
        "--max-connections",
        type=positive_int,
        default=1024,
        help="open connections; more get 503 and are closed",
    )
    s.add_argument(
        "--keepalive-timeout",
        type=positive_float,
        default=15.0,
        help="seconds an idle keep-alive connection stays open",
    )
    s.add_argument(
        "--enable-admin",
        action="store_true",
        help="serve /admin/faults to change fault injection at run time",
    )
    s.add_argument(
        "--admin-token",
        default=os.environ.get("SLABENCH_ADMIN_TOKEN") or None,
        help="token /admin/* requires (Authorization: Bearer TOKEN); required when --host is "
        "not a loopback address; default: $SLABENCH_ADMIN_TOKEN",
    )


def _model_options(p: argparse.ArgumentParser) -> None:
    m = p.add_argument_group("models (seeded weights, sized here)")
    m.add_argument(
        "--lm-layers", type=positive_int, default=_LM.layers, help="transformer blocks of the LM"
    )
    m.add_argument("--lm-dim", type=positive_int, default=_LM.dim, help="hidden size of the LM")
    m.add_argument(
        "--lm-heads", type=positive_int, default=_LM.heads, help="attention heads of the LM"
    )
    m.add_argument(
        "--max-model-len",
        type=positive_int,
        default=_LM.max_model_len,
        help="context length of the LM (prompt + output tokens)",
    )
    m.add_argument(
        "--embed-layers",
        type=positive_int,
        default=_EMB.layers,
        help="encoder blocks of the embedder",
    )
    m.add_argument("--embed-dim", type=positive_int, default=_EMB.dim, help="embedding size")
    m.add_argument(
        "--mlp-hidden",
        type=positive_int,
        default=_MLP.hidden,
        help="hidden width of the KServe MLP",
    )
    m.add_argument(
        "--mlp-layers",
        type=positive_int,
        default=_MLP.layers,
        help="linear layers of the KServe MLP",
    )
    m.add_argument(
        "--mlp-in-features",
        type=positive_int,
        default=_MLP.in_features,
        help="input features (INPUT0 is [N, this])",
    )
    m.add_argument("--seed", type=int, default=0, help="weight seed (each model derives its own)")


def _scheduling_options(p: argparse.ArgumentParser) -> None:
    b = p.add_argument_group("scheduling")
    b.add_argument(
        "--max-batch-size",
        type=positive_int,
        default=_BATCH.max_batch_size,
        help="rows per dynamic batch (embeddings, KServe)",
    )
    b.add_argument(
        "--max-queue-delay-ms",
        type=non_negative,
        default=_BATCH.max_queue_delay_ms,
        help="how long a dynamic batch waits to fill up",
    )
    b.add_argument(
        "--max-queue-size",
        type=positive_int,
        default=_BATCH.max_queue_size,
        help="queued requests per dynamic batcher before 429",
    )
    b.add_argument(
        "--max-num-seqs",
        type=positive_int,
        default=_BATCH.max_num_seqs,
        help="sequences in the continuous decode batch",
    )
    b.add_argument(
        "--max-waiting",
        type=positive_int,
        default=_BATCH.max_waiting,
        help="generation requests queued for a slot before 429",
    )
    b.add_argument(
        "--max-prefill-tokens",
        type=positive_int,
        default=_BATCH.max_prefill_tokens,
        help="prompt tokens admitted per scheduler step",
    )
    b.add_argument(
        "--max-tokens-limit",
        type=positive_int,
        default=_BATCH.max_tokens_limit,
        help="largest max_tokens allowed",
    )
    b.add_argument(
        "--request-timeout",
        type=non_negative,
        default=_BATCH.request_timeout_s,
        help="per-request timeout, seconds",
    )


def _generation_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("prefix caching and reasoning")
    g.add_argument(
        "--no-prefix-caching",
        dest="prefix_caching",
        action="store_false",
        help="keep no prompt KV between requests (prompt_tokens_details.cached_tokens is 0)",
    )
    g.add_argument(
        "--prefix-block-size",
        type=positive_int,
        default=_PREFIX.block_size,
        help="tokens per prefix-cache block; only full blocks are kept and matched",
    )
    g.add_argument(
        "--prefix-cache-memory",
        type=byte_size,
        default=_PREFIX.memory_bytes,
        metavar="SIZE",
        help="bytes of KV the prefix cache keeps, least recently used evicted first: "
        "bytes or a size such as 512MiB, 2GiB",
    )
    g.add_argument(
        "--reasoning-tokens",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="reasoning tokens generated before each chat answer unless the request's "
        "reasoning_tokens says otherwise",
    )
    g.add_argument(
        "--reasoning-field",
        choices=["reasoning", "reasoning_content"],
        default="reasoning",
        help="the delta/message field reasoning text goes in: reasoning (current vLLM) or "
        "reasoning_content (DeepSeek, SGLang, older vLLM)",
    )


def _fault_options(p: argparse.ArgumentParser) -> None:
    f = p.add_argument_group("fault injection")
    f.add_argument(
        "--fault-latency",
        default=None,
        help=f"added latency before each request: {fault_rules.LATENCY_FORMS}",
    )
    f.add_argument(
        "--fault-error-rate",
        type=non_negative,
        default=0.0,
        help="fraction of inference requests answered 500",
    )
    f.add_argument(
        "--fault-stall-every",
        type=non_negative,
        default=0.0,
        help="seconds between scheduler stalls",
    )
    f.add_argument(
        "--fault-stall-duration",
        type=non_negative,
        default=0.0,
        help="length of each stall, seconds",
    )
    f.add_argument(
        "--fault-slow-start",
        type=non_negative,
        default=0.0,
        help="seconds of not-ready (503) after start-up",
    )
    f.add_argument(
        "--fault-token-delay-ms",
        type=non_negative,
        default=0.0,
        help="pause after every decode step (slower inter-token latency)",
    )
    f.add_argument(
        "--fault-capacity-rps",
        type=finite_non_negative,
        default=0.0,
        metavar="R",
        help="simulate a fixed capacity of R requests/s: inference requests pass a FIFO "
        "single-server queue with a 1/R s service time before their real work; a wait "
        "over --request-timeout is refused (429). For testing capacity searches; 0 = off",
    )


def _fault_config(a: argparse.Namespace) -> FaultConfig:
    faults = FaultConfig(
        latency=a.fault_latency,
        error_rate=a.fault_error_rate,
        stall_every_s=a.fault_stall_every,
        stall_duration_s=a.fault_stall_duration,
        slow_start_s=a.fault_slow_start,
        token_delay_ms=a.fault_token_delay_ms,
        capacity_rps=a.fault_capacity_rps,
        seed=a.seed,
    )
    try:
        fault_rules.validate(faults)
    except ValueError as exc:
        raise ConfigError(f"fault injection: {exc}") from None
    return faults


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def config_from_args(a: argparse.Namespace) -> ServerConfig:
    faults = _fault_config(a)
    if a.enable_admin and not a.admin_token and not is_loopback(a.host):
        raise ConfigError(
            f"--enable-admin on --host {a.host} (not loopback) lets anyone on the network change "
            "the faults; give --admin-token TOKEN (or SLABENCH_ADMIN_TOKEN)"
        )
    if a.lm_dim % a.lm_heads:
        raise ConfigError(f"--lm-dim {a.lm_dim} must be divisible by --lm-heads {a.lm_heads}")
    if a.reasoning_tokens > a.max_tokens_limit:
        raise ConfigError(
            f"--reasoning-tokens {a.reasoning_tokens} is over --max-tokens-limit "
            f"{a.max_tokens_limit}"
        )
    if a.embed_dim % _EMB.heads:
        raise ConfigError(f"--embed-dim must be divisible by {_EMB.heads}")
    return ServerConfig(
        host=a.host,
        port=a.port,
        device=a.device,
        dtype=a.dtype,
        torch_threads=a.torch_threads,
        lm=LMConfig(
            layers=a.lm_layers,
            dim=a.lm_dim,
            heads=a.lm_heads,
            max_model_len=a.max_model_len,
            seed=a.seed,
        ),
        embedder=EmbedderConfig(layers=a.embed_layers, dim=a.embed_dim, seed=a.seed + 1),
        classifier=ClassifierConfig(
            in_features=a.mlp_in_features, hidden=a.mlp_hidden, layers=a.mlp_layers, seed=a.seed + 2
        ),
        batching=BatchingConfig(
            max_batch_size=a.max_batch_size,
            max_queue_delay_ms=a.max_queue_delay_ms,
            max_queue_size=a.max_queue_size,
            max_num_seqs=a.max_num_seqs,
            max_waiting=a.max_waiting,
            max_prefill_tokens=a.max_prefill_tokens,
            max_tokens_limit=a.max_tokens_limit,
            request_timeout_s=a.request_timeout,
        ),
        faults=faults,
        prefix_cache=PrefixCacheConfig(
            enabled=a.prefix_caching,
            block_size=a.prefix_block_size,
            memory_bytes=a.prefix_cache_memory,
        ),
        reasoning=ReasoningConfig(tokens=a.reasoning_tokens, field=a.reasoning_field),
        enable_admin=a.enable_admin,
        admin_token=a.admin_token,
        drain_timeout_s=a.drain_timeout,
        max_body_bytes=a.max_body_bytes,
        body_timeout_s=a.body_timeout,
        max_body_reads=a.max_body_reads,
        max_body_memory=a.max_body_memory,
        max_connections=a.max_connections,
        keepalive_timeout_s=a.keepalive_timeout,
    )
