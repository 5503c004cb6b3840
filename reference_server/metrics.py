"""Prometheus metrics of the reference server, on a registry of the app's own.

Names follow Prometheus conventions (base units, ``_total`` counters). The README maps them
to vLLM's ``vllm:`` and Triton's ``nv_inference_`` families.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75,
    1.0, 1.5, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
_TOKEN_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128, 256)


@dataclass(frozen=True)
class ServerMetrics:
    registry: CollectorRegistry
    requests: Counter
    request_latency: Histogram
    queue_time: Histogram
    prefill_time: Histogram
    decode_time: Histogram
    batch_size: Histogram
    queue_depth: Gauge
    ttft: Histogram
    itl: Histogram
    running: Gauge
    waiting: Gauge
    generated_tokens: Counter
    prompt_tokens: Counter
    prefix_cache_queries: Counter
    prefix_cache_hits: Counter
    prefix_cache_blocks: Gauge
    prefix_cache_bytes: Gauge
    inflight: Gauge


def create_metrics(registry: CollectorRegistry | None = None) -> ServerMetrics:
    r = registry if registry is not None else CollectorRegistry()
    ns = "slabench"
    return ServerMetrics(
        registry=r,
        requests=Counter(
            "requests",
            "HTTP requests answered, by endpoint, status code and reason "
            "(ok, or why it was rejected)",
            ["endpoint", "status", "reason"],
            namespace=ns,
            registry=r,
        ),
        request_latency=Histogram(
            "request_latency_seconds",
            "Time from request arrival to the last byte handed to the transport",
            ["endpoint"],
            namespace=ns,
            registry=r,
            buckets=_LATENCY_BUCKETS,
        ),
        queue_time=Histogram(
            "queue_time_seconds",
            "Time a request waited in a scheduler queue before its batch started",
            ["queue"],
            namespace=ns,
            registry=r,
            buckets=_LATENCY_BUCKETS,
        ),
        prefill_time=Histogram(
            "request_prefill_time_seconds",
            "Generation: admission into the decode batch to the first token (the step that "
            "prefilled it), as vllm:request_prefill_time_seconds",
            namespace=ns,
            registry=r,
            buckets=_LATENCY_BUCKETS,
        ),
        decode_time=Histogram(
            "request_decode_time_seconds",
            "Generation: first token to last token of a sequence that finished (not failed), "
            "as vllm:request_decode_time_seconds",
            namespace=ns,
            registry=r,
            buckets=_LATENCY_BUCKETS,
        ),
        batch_size=Histogram(
            "batch_size",
            "Requests (or sequences) executed together in one model call",
            ["queue"],
            namespace=ns,
            registry=r,
            buckets=_BATCH_BUCKETS,
        ),
        queue_depth=Gauge(
            "queue_depth",
            "Requests waiting in a scheduler queue",
            ["queue"],
            namespace=ns,
            registry=r,
        ),
        ttft=Histogram(
            "time_to_first_token_seconds",
            "Arrival to first generated token",
            namespace=ns,
            registry=r,
            buckets=_LATENCY_BUCKETS,
        ),
        itl=Histogram(
            "inter_token_latency_seconds",
            "Gap between consecutive generated tokens of one sequence",
            namespace=ns,
            registry=r,
            buckets=_TOKEN_BUCKETS,
        ),
        running=Gauge(
            "running_sequences",
            "Sequences in the continuous decode batch",
            namespace=ns,
            registry=r,
        ),
        waiting=Gauge(
            "waiting_sequences",
            "Generation requests queued for a decode slot",
            namespace=ns,
            registry=r,
        ),
        generated_tokens=Counter(
            "generation_tokens",
            "Tokens generated",
            namespace=ns,
            registry=r,
        ),
        prompt_tokens=Counter(
            "prompt_tokens",
            "Prompt tokens of admitted generation requests (those found in the prefix cache "
            "included)",
            namespace=ns,
            registry=r,
        ),
        prefix_cache_queries=Counter(
            "prefix_cache_query_tokens",
            "Prompt tokens looked up in the prefix cache (as vllm:prefix_cache_queries)",
            namespace=ns,
            registry=r,
        ),
        prefix_cache_hits=Counter(
            "prefix_cache_hit_tokens",
            "Prompt tokens found in the prefix cache and not computed (as vllm:prefix_cache_hits)",
            namespace=ns,
            registry=r,
        ),
        prefix_cache_blocks=Gauge(
            "prefix_cache_blocks",
            "Blocks held by the prefix cache",
            namespace=ns,
            registry=r,
        ),
        prefix_cache_bytes=Gauge(
            "prefix_cache_bytes",
            "Bytes of keys and values held by the prefix cache",
            namespace=ns,
            registry=r,
        ),
        inflight=Gauge(
            "inflight_requests",
            "Inference requests being handled",
            namespace=ns,
            registry=r,
        ),
    )
