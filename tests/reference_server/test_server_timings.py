"""Per-request server timings of the real reference server (in process): the W3C
``Server-Timing`` header of non-streamed answers and the ``timings`` object of a stream's final
chunk add up, and an injected fault grows the component where it happens."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from typing import Any

import openai
import pytest

from reference_server.state import FAULTS
from reference_server.timings import ServerTimings
from tests.reference_server.helpers import metric
from tests.reference_server.in_process import SMALL, run

# The W3C spec's ABNF: metric-name *( OWS ";" OWS name "=" value ),
# value a token or a quoted-string; metrics separated by commas.
TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
PARAM = rf"{TOKEN}\s*=\s*(?:{TOKEN}|\"[^\"]*\")"
METRIC = re.compile(rf"^({TOKEN})((?:\s*;\s*{PARAM})*)$")
CHAT = {"model": "slabench-lm", "messages": [{"role": "user", "content": "Hi"}]}
GENERATE = {**CHAT, "max_tokens": 8, "ignore_eos": True}
INFER = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [2, 16], "data": [0.5] * 32}]}
Client = Any  # aiohttp's TestClient


def parse_server_timing(value: str) -> dict[str, dict[str, str]]:
    """Each metric's parameters, after checking the header against the spec's grammar."""
    metrics: dict[str, dict[str, str]] = {}
    for item in value.split(","):
        match = METRIC.match(item.strip())
        assert match, f"not a server-timing-metric: {item!r}"
        params = re.findall(rf"({TOKEN})\s*=\s*({TOKEN}|\"[^\"]*\")", match.group(2))
        metrics[match.group(1)] = {k: v.strip('"') for k, v in params}
    return metrics


def durations(value: str) -> dict[str, float]:
    return {k: float(p["dur"]) for k, p in parse_server_timing(value).items() if "dur" in p}


async def timed_post(client: Client, path: str, body: dict[str, Any]) -> tuple[str, float]:
    """The Server-Timing header of a 200 answer, and the latency this client saw (ms)."""
    started = time.monotonic()
    async with client.post(path, json=body) as resp:
        await resp.read()
        assert resp.status == 200, await resp.text()
        return resp.headers["Server-Timing"], (time.monotonic() - started) * 1000


def check_adds_up(parts: dict[str, float], seen_ms: float, *components: str) -> None:
    assert all(v >= 0 for v in parts.values()), parts
    assert sum(parts[c] for c in components) <= parts["total"] + 0.01, parts
    assert parts["total"] <= seen_ms, (parts, seen_ms)


def test_server_timings_header_follows_the_grammar() -> None:
    timings = ServerTimings(
        queue_ms=1.25, prefill_ms=30.0, decode_ms=210.5, total_ms=242.0, prefill_batch=2,
        decode_batch_mean=3.5, decode_batch_max=4, prompt_tokens=9, cached_tokens=4,
        generated_tokens=8,
    )  # fmt: skip
    header = timings.header()
    assert header.startswith("queue;dur=1.250, prefill;dur=30.000, decode;dur=210.500, total;")
    metrics = parse_server_timing(header)
    assert metrics["decode_batch_mean"] == {"desc": "3.50"} and metrics["cached_tokens"]["desc"]
    assert timings.as_json() == {
        "queue_ms": 1.25, "prefill_ms": 30.0, "decode_ms": 210.5, "total_ms": 242.0,
        "prefill_batch": 2, "decode_batch_mean": 3.5, "decode_batch_max": 4,
        "cached_tokens": 4, "prompt_n": 5, "cache_n": 4, "prompt_ms": 30.0,
        "predicted_n": 8, "predicted_ms": 210.5,
    }  # fmt: skip


def test_every_non_streamed_answer_has_server_timings_that_add_up() -> None:
    async def body(client: Client) -> None:
        header, seen = await timed_post(client, "/v1/chat/completions", GENERATE)
        check_adds_up(durations(header), seen, "queue", "prefill", "decode")
        metrics = parse_server_timing(header)
        assert int(metrics["prefill_batch"]["desc"]) >= 1
        assert float(metrics["decode_batch_mean"]["desc"]) >= 1
        assert float(metrics["decode_batch_mean"]["desc"]) <= int(
            metrics["decode_batch_max"]["desc"]
        )
        two = {"model": "slabench-lm", "prompt": ["a", "b"], "max_tokens": 4, "ignore_eos": True}
        header, seen = await timed_post(client, "/v1/completions", two)
        check_adds_up(durations(header), seen, "queue", "prefill", "decode")
        embed = {"model": "slabench-embed", "input": ["one", "two", "three"]}
        header, seen = await timed_post(client, "/v1/embeddings", embed)
        check_adds_up(durations(header), seen, "queue", "compute")
        assert int(parse_server_timing(header)["batch"]["desc"]) >= 1
        header, seen = await timed_post(client, "/v2/models/slabench-mlp/infer", INFER)
        check_adds_up(durations(header), seen, "queue", "compute")
        assert int(parse_server_timing(header)["batch"]["desc"]) >= 2  # its own two rows

    run(SMALL, body)


def test_streams_end_with_timings_that_the_openai_client_parses() -> None:
    async def body(client: Client) -> None:
        api = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="x")
        for include_usage in (False, True):
            started = time.monotonic()
            chunks = [
                c
                async for c in await api.chat.completions.create(
                    model="slabench-lm",
                    messages=[{"role": "user", "content": "Hi"}],
                    max_tokens=6,
                    stream=True,
                    stream_options={"include_usage": include_usage},
                    extra_body={"ignore_eos": True},
                )
            ]
            seen = (time.monotonic() - started) * 1000
            last = chunks[-1]
            timed = [c for c in chunks if (c.model_extra or {}).get("timings")]
            assert timed == [last], "timings only in the final chunk"
            assert (last.usage is not None) == include_usage
            assert include_usage or last.choices[0].finish_reason == "length"
            t = (last.model_extra or {})["timings"]
            parts = {k.removesuffix("_ms"): v for k, v in t.items() if k.endswith("_ms")}
            check_adds_up(parts, seen, "queue", "prefill", "decode")
            assert t["predicted_n"] == 6 and t["prompt_n"] + t["cache_n"] > 0
        await api.close()

    run(SMALL, body)


def test_injected_latency_lands_in_the_queue_component() -> None:
    async def body(client: Client) -> None:
        faults = client.server.app[FAULTS]
        before = durations((await timed_post(client, "/v1/chat/completions", GENERATE))[0])
        faults.config = dataclasses.replace(faults.config, latency="fixed:250")
        kserve = "/v2/models/slabench-mlp/infer"
        for path, request in (("/v1/chat/completions", GENERATE), (kserve, INFER)):
            after = durations((await timed_post(client, path, request))[0])
            # the sleep happens in the admission middleware, before the scheduler's queue
            assert after["queue"] >= 249, after
            work = after.get("prefill", 0) + after.get("decode", 0) + after.get("compute", 0)
            assert work < 249 and after["total"] >= after["queue"] + work
        assert before["queue"] < 249

    run(SMALL, body)


def stall_now(client: Client, duration_s: float) -> None:
    """A stall of every scheduler that starts at once and lasts ``duration_s``, once."""
    faults = client.server.app[FAULTS]
    every = 1000.0
    faults.config = dataclasses.replace(
        faults.config, stall_every_s=every, stall_duration_s=duration_s
    )
    faults.started_at = time.monotonic() - (every - duration_s)


def test_a_stall_lands_in_queue_before_admission_and_in_decode_after_it() -> None:
    async def body(client: Client) -> None:
        stall_now(client, 0.4)  # the engine is idle: the stall holds the admission
        queued = durations((await timed_post(client, "/v1/chat/completions", GENERATE))[0])
        assert queued["queue"] >= 300 and queued["prefill"] + queued["decode"] < 300, queued
        faults = client.server.app[FAULTS]
        # 40 tokens 50 ms apart: the stall must start while the sequence decodes, and a busy
        # machine may read the first chunk late; 2 s of decoding leave room for that.
        faults.config = dataclasses.replace(faults.config, token_delay_ms=50.0)
        slow = {**GENERATE, "max_tokens": 40, "stream": True}
        async with client.post("/v1/chat/completions", json=slow) as resp:
            await resp.content.readline()  # the first chunk: the sequence is decoding now
            stall_now(client, 0.4)
            events = (await resp.read()).decode().strip().split("\n\n")
        final = [e for e in events if '"timings"' in e]
        assert len(final) == 1
        t = json.loads(final[0].removeprefix("data: "))["timings"]
        assert t["decode_ms"] >= 400 and t["queue_ms"] + t["prefill_ms"] < 300, t

    run(SMALL, body)


def test_prefill_and_decode_histograms_hold_the_header_components() -> None:
    """``/metrics`` observes the same stamps as the ``Server-Timing`` header: one sequence's
    prefill and decode, as vLLM's request_prefill/decode_time histograms do."""

    async def body(client: Client) -> None:
        header, _ = await timed_post(client, "/v1/chat/completions", GENERATE)
        parts = durations(header)
        text = await (await client.get("/metrics")).text()
        for name in ("prefill", "decode"):
            family = f"slabench_request_{name}_time_seconds"
            assert metric(text, f"{family}_count") == 1
            assert metric(text, f"{family}_sum") * 1000.0 == pytest.approx(parts[name], abs=0.002)

    run(SMALL, body)
