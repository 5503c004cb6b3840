"""The Prometheus families slabench recognises, by name, for the per-interval decomposition
(``sla.server_intervals``) and the GPU figures (``sla.energy``).

A server is recognised by the prefix of its families (``vllm:``, ``nv_inference_``,
``slabench_``, MLServer's ``model_infer_``); then each component it should export is looked
up by its names (first found wins), and one it lacks is *missing*: said in the report and the
terminal, never skipped silently (a server that renamed a family shows up here).

Two kinds of timing component:

- ``histogram``: a histogram in seconds; the mean between two scrapes is the increase of
  ``_sum`` over the increase of ``_count`` (vLLM, MLServer, the reference server);
- ``counter_us``: a cumulative duration counter in µs over a count counter (Triton: the
  ``nv_inference_*_duration_us`` over ``nv_inference_request_success``; Triton documents its
  latency summaries' ``_count`` as equal to the success count, so failures are not added).

A component with several names (Triton's compute = input + infer + output) sums them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["SERVERS", "Component", "ServerFamilies", "stored_name"]

TimingKind = Literal["histogram", "counter_us"]


@dataclass(frozen=True, slots=True)
class Component:
    """One timing a server reports: ``key`` (``queue``, ``prefill``, ... ``e2e``)."""

    key: str
    kind: TimingKind
    names: tuple[str, ...]  # histogram: alternatives, first found; counter_us: summed
    count: str = ""  # counter_us: the counter of requests the durations are over


@dataclass(frozen=True, slots=True)
class ServerFamilies:
    server: str  # as the report names it
    prefix: str  # any family with this prefix means the server is there
    components: tuple[Component, ...]


def stored_name(names: set[str], name: str) -> str | None:
    """The name a counter's samples were stored under: as exposed, or with ``_total`` added
    (prometheus_client's text parser adds it to a counter exposed without it, as Triton's
    and DCGM's are); None when neither was scraped."""
    return next((n for n in (name, f"{name}_total") if n in names), None)


def _h(key: str, *names: str) -> Component:
    return Component(key, "histogram", names)


_TRITON_COUNT = "nv_inference_request_success"


def _us(key: str, *names: str) -> Component:
    return Component(key, "counter_us", names, _TRITON_COUNT)


SERVERS: tuple[ServerFamilies, ...] = (
    ServerFamilies(
        "slabench reference server",
        "slabench_",
        (
            _h("queue", "slabench_queue_time_seconds"),
            _h("prefill", "slabench_request_prefill_time_seconds"),
            _h("decode", "slabench_request_decode_time_seconds"),
            _h("ttft", "slabench_time_to_first_token_seconds"),
            _h("tpot", "slabench_inter_token_latency_seconds"),
            _h("e2e", "slabench_request_latency_seconds"),
        ),
    ),
    ServerFamilies(
        "vLLM",
        "vllm:",
        (
            _h("queue", "vllm:request_queue_time_seconds"),
            _h("prefill", "vllm:request_prefill_time_seconds"),
            _h("decode", "vllm:request_decode_time_seconds"),
            _h("ttft", "vllm:time_to_first_token_seconds"),
            _h(
                "tpot",
                "vllm:request_time_per_output_token_seconds",
                "vllm:time_per_output_token_seconds",
                "vllm:inter_token_latency_seconds",
            ),
            _h("e2e", "vllm:e2e_request_latency_seconds"),
        ),
    ),
    ServerFamilies(
        "Triton",
        "nv_inference_",
        (
            _us("queue", "nv_inference_queue_duration_us"),
            _us(
                "compute",
                "nv_inference_compute_input_duration_us",
                "nv_inference_compute_infer_duration_us",
                "nv_inference_compute_output_duration_us",
            ),
            _us("e2e", "nv_inference_request_duration_us"),
        ),
    ),
    ServerFamilies(
        "MLServer",
        "model_infer_",
        (
            # its batch_request_queue histogram counts requests (a queue size), not time
            _h("e2e", "rest_server_request_duration_seconds", "http_request_duration_seconds"),
        ),
    ),
)
