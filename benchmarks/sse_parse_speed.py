"""Micro-benchmark: how many SSE events/s one process parses (a script, not a test).

Streams a realistic 16-token OpenAI chat response (role chunk, 16 content chunks, a finish
chunk, a usage chunk, [DONE]) through `SSEParser`, and through `SSEParser` plus
`StreamAccumulator`, either one read per event or the whole response in one read.

    .venv/bin/python -m benchmarks.sse_parse_speed [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from loadtests.client.openai_stream import StreamAccumulator
from loadtests.client.sse import SSEParser

TOKENS = 16


def _event(payload: object) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _chunk(delta: dict[str, str], finish_reason: str | None = None) -> dict[str, object]:
    return {
        "id": "chatcmpl-3f2a9c1e8b7d4e6f",
        "object": "chat.completion.chunk",
        "created": 1733000000,
        "model": "slabench-reference",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


def build_stream() -> list[bytes]:
    """One element per SSE event, as a server would write them."""
    usage = {"prompt_tokens": 128, "completion_tokens": TOKENS, "total_tokens": 128 + TOKENS}
    events = [_event(_chunk({"role": "assistant", "content": ""}))]
    events += [_event(_chunk({"content": f" tok{i}"})) for i in range(TOKENS)]
    events.append(_event(_chunk({}, finish_reason="stop")))
    events.append(_event({**_chunk({}), "choices": [], "usage": usage}))
    events.append(b"data: [DONE]\n\n")
    return events


def _parse_only(reads: list[bytes]) -> None:
    parser = SSEParser()
    for read in reads:
        parser.feed(read)
    parser.close()


def _parse_and_accumulate(reads: list[bytes]) -> None:
    parser, acc = SSEParser(), StreamAccumulator()
    t = 0.0
    for read in reads:
        t += 0.01
        acc.on_events(parser.feed(read), t)
    acc.finish(t, stream_ended=True)


def events_per_s(
    run: Callable[[list[bytes]], None], reads: list[bytes], events: int, s: float
) -> float:
    streams = 0
    start = time.perf_counter()
    deadline = start + s
    while time.perf_counter() < deadline:
        for _ in range(100):
            run(reads)
        streams += 100
    return streams * events / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per case (default 1)")
    seconds = parser.parse_args().seconds
    per_event = build_stream()
    cases = {"one read per event": per_event, "one read for all": [b"".join(per_event)]}
    steps: dict[str, Callable[[list[bytes]], None]] = {
        "parse": _parse_only,
        "parse+accumulate": _parse_and_accumulate,
    }
    n_events = len(per_event)
    print(f"{TOKENS}-token chat stream, {n_events} events, {sum(map(len, per_event))} bytes")
    for step_name, step in steps.items():
        for case_name, reads in cases.items():
            rate = events_per_s(step, reads, n_events, seconds)
            print(f"{step_name:>17} | {case_name:<18} | {rate:>12,.0f} events/s")


if __name__ == "__main__":
    main()
