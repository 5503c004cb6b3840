"""The server's own timings as a request's record carries them: W3C ``Server-Timing``
headers, the bundled server's and llama.cpp's ``timings`` objects, TGI's headers; and the
load generator's own processing time."""

from __future__ import annotations

import json
import math
from typing import Any

from loadtests.client.measure import _answered, _Ids, _streamed
from loadtests.client.openai_stream import StreamAccumulator
from loadtests.client.protocols import PreparedRequest
from loadtests.client.server_timings import (
    ServerTimes,
    from_headers,
    from_timings,
    parse_server_timing,
)

NAN = math.nan
REQ = PreparedRequest("chat", "POST", "/v1/chat/completions", b"{}", "openai_sse", 10)
IDS = _Ids(REQ, "r1", "w", NAN, 1.0)


def _same(a: ServerTimes | None, b: ServerTimes) -> bool:
    assert a is not None
    pairs = zip(
        (a.queue_ms, a.prefill_ms, a.decode_ms, a.total_ms),
        (b.queue_ms, b.prefill_ms, b.decode_ms, b.total_ms),
        strict=True,
    )
    return a.source == b.source and all(
        x == y or (math.isnan(x) and math.isnan(y)) for x, y in pairs
    )


def _headers(**values: Any) -> Any:
    lower = {k.replace("_", "-").lower(): v for k, v in values.items()}
    return lower.get


def test_server_timing_grammar() -> None:
    # Quoted descs holding commas, semicolons and escaped quotes; spaces around = and ;;
    # a metric without dur; a bad dur; case; the first metric of a name wins.
    value = (
        'cache;desc="hit, warm; \\"x\\"", Queue ; dur = 1.5 ;desc=q, db;dur=abc, '
        'prefill;dur="2.25", queue;dur=99, total;dur=-3, app;dur=7'
    )
    assert parse_server_timing(value) == {"queue": 1.5, "prefill": 2.25, "app": 7.0}
    assert parse_server_timing('x;desc="unclosed, y;dur=2') == {}  # malformed: nothing
    assert parse_server_timing(None) == {} and parse_server_timing("") == {}


def test_server_timing_headers_map_common_names() -> None:
    # Two headers (a list, as a repeated header comes); unknown names ignored.
    get = _headers(server_timing=["queue_time;dur=3, gpu;dur=40", "prompt;dur=10, e2e;dur=60"])
    assert _same(from_headers(get), ServerTimes("server-timing", 3.0, 10.0, NAN, 60.0))
    ours = _headers(
        server_timing="queue;dur=1.000, prefill;dur=2.000, decode;dur=3.000, "
        "total;dur=6.500, prefill_batch;desc=4"
    )
    assert _same(from_headers(ours), ServerTimes("server-timing", 1.0, 2.0, 3.0, 6.5))
    gen = _headers(server_timing="generation;dur=8, app;dur=9")
    assert _same(from_headers(gen), ServerTimes("server-timing", NAN, NAN, 8.0, 9.0))
    assert from_headers(_headers(server_timing="db;dur=53, cache;desc=hit")) is None


def test_tgi_headers_in_whole_milliseconds() -> None:
    get = _headers(
        x_queue_time="12", x_inference_time="340", x_time_per_token="17", x_total_time="355"
    )
    assert _same(from_headers(get), ServerTimes("tgi", queue_ms=12.0, total_ms=355.0))
    compute = _headers(x_queue_time="4", x_compute_time="50")  # TEI-style total
    assert _same(from_headers(compute), ServerTimes("tgi", queue_ms=4.0, total_ms=50.0))
    # x-compute-time alone is no TGI answer (older HF APIs wrote seconds there)
    assert from_headers(_headers(x_compute_time="0.05")) is None
    assert from_headers(_headers(x_queue_time="soon")) is None
    # Server-Timing wins over TGI's headers when both say something
    both = _headers(server_timing="total;dur=5", x_queue_time="1", x_total_time="9")
    assert _same(from_headers(both), ServerTimes("server-timing", total_ms=5.0))


def test_timings_objects_ours_and_llama_cpp() -> None:
    ours = {
        "queue_ms": 1.5,
        "prefill_ms": 2.0,
        "decode_ms": 30.0,
        "total_ms": 34.0,
        "prompt_ms": 2.0,  # ours writes llama.cpp's names too: ours are read
        "predicted_ms": 30.0,
        "decode_batch_mean": 3.5,
    }
    assert _same(from_timings(ours), ServerTimes("timings", 1.5, 2.0, 30.0, 34.0))
    embeddings = {"queue_ms": 1, "compute_ms": 5, "total_ms": 7}
    assert _same(from_timings(embeddings), ServerTimes("timings", 1.0, NAN, NAN, 7.0))
    llama = {"prompt_n": 12, "prompt_ms": 14.5, "predicted_n": 8, "predicted_ms": 80.25}
    assert _same(from_timings(llama), ServerTimes("llama.cpp", NAN, 14.5, 80.25, NAN))
    bad = {"queue_ms": True, "total_ms": "fast", "prefill_ms": -1, "decode_ms": math.inf}
    assert from_timings(bad) is None  # nothing valid: no timings, never zeros
    assert from_timings([1, 2]) is None and from_timings({"n": 1}) is None


def _chunk(**fields: Any) -> str:
    return json.dumps({"choices": [{"index": 0, "delta": {"content": "ok"}}], **fields})


def test_a_stream_record_carries_the_final_timings() -> None:
    acc = StreamAccumulator()
    acc.on_events([_chunk()], 1.1)
    acc.on_events([_chunk(timings={"prompt_ms": 9.0, "predicted_ms": 1.0})], 1.2)  # per token
    final = {"queue_ms": 2.0, "prefill_ms": 40.0, "decode_ms": 300.0, "total_ms": 345.0}
    acc.on_events([json.dumps({"choices": [], "timings": final}), "[DONE]"], 1.4)
    rec = _streamed(IDS, 200, None, acc.finish(1.4, stream_ended=True), (0.0005, 0.0))
    assert rec.server_timing_source == "timings"
    assert (rec.server_queue_ms, rec.server_prefill_ms, rec.server_decode_ms) == (2, 40, 300)
    assert rec.server_total_ms == 345.0
    assert rec.client_processing_ms > 0.5  # the last read's parsing, then up to the record

    cut = StreamAccumulator()
    cut.on_events([_chunk(timings=final)], 1.1)
    failed = _streamed(IDS, 200, None, cut.finish(1.2, stream_ended=True))  # no [DONE]
    assert failed.server_timing_source is None and math.isnan(failed.server_total_ms)
    assert math.isnan(failed.client_processing_ms)


def test_a_non_streamed_record_reads_body_timings_then_headers() -> None:
    body = {"choices": [{"message": {"content": "ok"}}], "usage": {"completion_tokens": 1}}
    plain = json.dumps(body).encode()
    header = _headers(server_timing="queue;dur=1, prefill;dur=2, decode;dur=3, total;dur=7")
    rec = _answered(IDS, 200, plain, 2.0, header)
    assert rec.server_timing_source == "server-timing"
    assert (rec.server_queue_ms, rec.server_total_ms) == (1.0, 7.0)
    assert rec.client_processing_ms > 0  # done_at 2.0 is long past: positive
    llama = json.dumps({**body, "timings": {"prompt_ms": 5.0, "predicted_ms": 6.0}}).encode()
    rec = _answered(IDS, 200, llama, 2.0, header)
    assert rec.server_timing_source == "llama.cpp" and rec.server_decode_ms == 6.0
    rec = _answered(IDS, 500, b'{"error": "x"}', 2.0, header)  # a failure: nothing read
    assert rec.server_timing_source is None and math.isnan(rec.server_queue_ms)
    assert math.isnan(rec.client_processing_ms)
    none = _answered(IDS, 200, plain, 2.0)
    assert none.server_timing_source is None and math.isnan(none.server_total_ms)
