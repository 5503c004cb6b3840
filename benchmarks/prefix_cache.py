"""Prefix caching: the time to first token of a prompt that shares 90% with a cached one,
against the same prompt cold.

Each round, on the reference server with its default LM and a prompt that fills the
context (all but 2 tokens), sends one streamed completion of each, in this order:

- **cold, new**: a prompt sharing nothing with anything sent before;
- **warm**: the same first 90% with another last 10%: the cached blocks are copied and only
  the rest is prefilled (its ``cached_tokens`` is printed);
- **cold, after reset**: ``POST /reset_prefix_cache``, then the warm prompt again.

The ratio is cold / warm TTFT (the median over rounds of each), at the default context
(1,024 tokens) and at ``--max-model-len 4096``. Target: >= 3x lower with the cache.

    .venv/bin/python -m benchmarks.prefix_cache [--rounds 5] [--contexts 1024 4096]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import string
import sys
import time

import aiohttp

from benchmarks._harness import (
    TINY_EMBED,
    TINY_MLP,
    BenchmarkError,
    print_header,
    print_table,
    start_server,
)
from benchmarks._harness import run as run_main

TARGET = 3.0
SHARED = 0.9


async def ttft_ms(session: aiohttp.ClientSession, prompt: str) -> tuple[float, int]:
    """One streamed completion: ms to its first token, and its ``cached_tokens``."""
    body = {"prompt": prompt, "max_tokens": 2, "ignore_eos": True, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
    first: float | None = None
    cached = -1
    started = time.perf_counter()
    async with session.post("/v1/completions", json=body) as resp:
        if resp.status != 200:
            raise BenchmarkError(f"HTTP {resp.status}: {(await resp.read())[:200]!r}")
        async for raw in resp.content:
            line = raw.strip()
            if not line.startswith(b"data: {"):
                continue
            if first is None and b'"text":"' in line and b'"text":""' not in line:
                first = time.perf_counter()
            chunk = json.loads(line.removeprefix(b"data: "))
            if chunk.get("usage"):
                cached = chunk["usage"]["prompt_tokens_details"]["cached_tokens"]
    if first is None:
        raise BenchmarkError("the stream held no token")
    return (first - started) * 1000.0, cached


def text(rng: random.Random, chars: int) -> str:
    return "".join(rng.choices(string.ascii_letters + " ", k=chars))


async def measure(url: str, context: int, rounds: int) -> tuple[list[object], float]:
    """The table row of one context, and its ratio cold / warm."""
    rng = random.Random(context)
    chars = context - 3  # + BOS, + 2 output tokens = the whole context
    shared = int(chars * SHARED)
    cold: list[float] = []
    warm: list[float] = []
    reset: list[float] = []
    hits: list[int] = []
    async with aiohttp.ClientSession(url, timeout=aiohttp.ClientTimeout(total=300)) as session:
        await ttft_ms(session, text(rng, chars))  # warm-up: first-call allocations
        for _ in range(rounds):
            base = text(rng, shared)
            cold.append((await ttft_ms(session, base + text(rng, chars - shared)))[0])
            prompt = base + text(rng, chars - shared)
            ms, cached = await ttft_ms(session, prompt)
            warm.append(ms)
            hits.append(cached)
            async with session.post("/reset_prefix_cache") as resp:
                if resp.status != 200:
                    raise BenchmarkError(f"/reset_prefix_cache answered {resp.status}")
            ms, cached = await ttft_ms(session, prompt)
            if cached != 0:
                raise BenchmarkError(f"after a reset {cached} tokens came from the cache")
            reset.append(ms)
    med = statistics.median
    ratio = med(cold) / med(warm)
    row: list[object] = [f"{context:,}", f"{chars + 1:,}", f"{med(hits):,.0f}", med(cold),
                         med(reset), med(warm), ratio, med(reset) / med(warm)]  # fmt: skip
    return row, ratio


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--contexts", type=int, nargs="+", default=[1024, 4096])
    a = p.parse_args()
    # One decode slot: one request at a time, and no 4,096-token cache for 32 slots.
    common = [*TINY_EMBED, *TINY_MLP, "--max-num-seqs", "1"]
    print_header(
        "prefix caching: TTFT of a prompt sharing 90% with a cached one vs cold",
        "benchmarks.prefix_cache",
        {f"{c}": [*common, "--max-model-len", str(c)] for c in a.contexts},
        [f"medians over {a.rounds} rounds; the prompt fills the context; ratio = cold / warm"],
    )
    rows: list[list[object]] = []
    ratios: list[float] = []
    for context in a.contexts:
        server = start_server([*common, "--max-model-len", str(context)])
        if server is None:
            return 2
        try:
            row, ratio = await measure(server.url, context, a.rounds)
            rows.append(row)
            ratios.append(ratio)
        finally:
            server.stop()
    print_table(
        ["context", "prompt tokens", "cached", "cold ms", "after reset ms", "warm ms",
         "ratio", "ratio (reset)"],
        rows,
    )  # fmt: skip
    ok = all(r >= TARGET for r in ratios)
    print(f"target: warm TTFT >= {TARGET:g}x lower than cold: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run_main(main))
