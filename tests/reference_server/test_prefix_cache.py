"""Automatic prefix caching: full blocks of a shared prefix are reused from the second request
on, reported in ``usage.prompt_tokens_details.cached_tokens`` and in ``/metrics``, emptied by
``POST /reset_prefix_cache``, off with ``--no-prefix-caching``, bounded by its memory, and
invisible in greedy outputs. A finished sequence's generated tokens are kept too, so the next
turn of a chat reuses the reply."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any

import torch
from aiohttp.test_utils import TestClient

from reference_server import tokenizer
from reference_server.config import BatchingConfig, FaultConfig, LMConfig, PrefixCacheConfig
from reference_server.faults import FaultInjector
from reference_server.generation import Finish, GenerationEngine, Sequence
from reference_server.metrics import create_metrics
from reference_server.models import CausalLM, KVCache
from reference_server.prefix_cache import Lookup, PrefixCache, block_keys, copy_in, copy_out
from tests.reference_server.in_process import SMALL, config, metrics, post, run, stream

BLOCK = 16
SYSTEM = ("You are a careful assistant who answers in one short sentence. " * 13)[:799]
QUERIES = "slabench_prefix_cache_query_tokens_total", "slabench_prefix_cache_hit_tokens_total"
HELD = "slabench_prefix_cache_blocks", "slabench_prefix_cache_bytes"
# Keys and values of one block of the small LM: 2 (k, v) x layers x dim x block x float32.
BLOCK_BYTES = 2 * SMALL.lm.layers * SMALL.lm.dim * BLOCK * 4


def completion(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"prompt": prompt, "max_tokens": 2, "temperature": 0, "ignore_eos": True, **extra}


def cached(answer: dict[str, Any]) -> int:
    details: dict[str, int] = answer["usage"]["prompt_tokens_details"]
    return details["cached_tokens"]


def test_a_shared_prefix_is_reused_from_the_second_request_on() -> None:
    first, second = SYSTEM + " Q: what is a KV cache?", SYSTEM + " Q: why batch requests?"
    whole = SYSTEM + " Q: and why blocks of 16 tokens?"  # 832 tokens: a block multiple
    assert len(tokenizer.encode(whole)) % BLOCK == 0

    async def body(client: TestClient[Any, Any]) -> None:
        assert cached(await post(client, "/v1/completions", completion(first))) == 0
        assert await metrics(client, *QUERIES) == [len(first) + 1, 0]
        # The 800-token prefix (BOS + 799 characters) is 50 full blocks.
        assert cached(await post(client, "/v1/completions", completion(second))) == 800
        assert await metrics(client, *QUERIES) == [len(first) + len(second) + 2, 800]
        assert cached(await post(client, "/v1/completions", completion(whole))) == 800
        # Fully cached: every token but the last, whose logits give the first output token.
        assert cached(await post(client, "/v1/completions", completion(whole))) == 832 - 1
        held = 51 + 1 + 2  # first's 51 full blocks, then the blocks second and whole add
        assert await metrics(client, *HELD) == [held, held * BLOCK_BYTES]
        usage = [
            c for c in await stream(client, "/v1/completions", _usage(second)) if c.get("usage")
        ]
        assert usage[0]["usage"]["prompt_tokens_details"] == {"cached_tokens": 816}

    run(SMALL, body)


def _usage(prompt: str) -> dict[str, Any]:
    return completion(prompt, stream_options={"include_usage": True})


def test_chat_reports_the_full_blocks_of_its_shared_system_prompt() -> None:
    def chat(question: str) -> dict[str, Any]:
        messages = [
            {"role": "system", "content": SYSTEM[:700]},
            {"role": "user", "content": question},
        ]
        return {"messages": messages, "max_tokens": 2, "temperature": 0}

    shared = len(tokenizer.encode(tokenizer.chat_prompt([("system", SYSTEM[:700])]) + "<|user|>"))

    async def body(client: TestClient[Any, Any]) -> None:
        assert cached(await post(client, "/v1/chat/completions", chat("Hello?"))) == 0
        again = await post(client, "/v1/chat/completions", chat("Why?"))
        assert cached(again) == shared // BLOCK * BLOCK
        assert again["usage"]["completion_tokens_details"] == {"reasoning_tokens": 0}

    run(SMALL, body)


def test_the_next_turn_of_a_chat_reuses_the_previous_prompt_and_reply() -> None:
    """The chat template puts a history's assistant content right after the generation
    prompt the previous turn ended with, so turn 2's prompt starts with turn 1's prompt and
    reply token for token."""
    turn_1 = [
        {"role": "system", "content": SYSTEM[:300]},
        {"role": "user", "content": "Hello?"},
    ]

    def chat(messages: list[dict[str, str]], max_tokens: int) -> dict[str, Any]:
        return {"messages": messages, "max_tokens": max_tokens, "temperature": 0}

    async def body(client: TestClient[Any, Any]) -> None:
        first = await post(client, "/v1/chat/completions", {**chat(turn_1, 40), "ignore_eos": True})
        assert first["choices"][0]["finish_reason"] == "length"
        reply = first["choices"][0]["message"]["content"]
        prompt_1 = first["usage"]["prompt_tokens"]  # 340: 21 full blocks (336 tokens)
        turn_2 = [*turn_1, {"role": "assistant", "content": reply}]
        turn_2.append({"role": "user", "content": "And then?"})
        second = await post(client, "/v1/chat/completions", chat(turn_2, 2))
        # Keys and values of the prompt and of every reply token but the last (sampled,
        # never fed back): 340 + 39 = 379 tokens, 23 full blocks.
        assert cached(second) == (prompt_1 + 40 - 1) // BLOCK * BLOCK == 368
        assert second["usage"]["prompt_tokens"] > 368
        # A stop string ends an answer normally: its reply is kept too.
        turn_1[1] = {"role": "user", "content": "And a stop string?"}  # 352 prompt tokens
        first = await post(client, "/v1/chat/completions", {**chat(turn_1, 40), "stop": ["^"]})
        assert first["choices"][0]["finish_reason"] == "stop"
        reply = first["choices"][0]["message"]["content"]  # greedy: 28 "r" before the "^"
        assert len(reply) >= BLOCK, reply
        turn_2 = [*turn_1, {"role": "assistant", "content": reply}]
        turn_2.append({"role": "user", "content": "And then?"})
        second = await post(client, "/v1/chat/completions", chat(turn_2, 2))
        assert cached(second) == (352 + len(reply)) // BLOCK * BLOCK

    run(SMALL, body)


def test_reset_empties_the_cache_and_refuses_a_foreign_host() -> None:
    async def body(client: TestClient[Any, Any]) -> None:
        await post(client, "/v1/completions", completion(SYSTEM))
        assert cached(await post(client, "/v1/completions", completion(SYSTEM))) == 799
        headers = {"Host": "rebinding.example:80"}
        async with client.post("/reset_prefix_cache", headers=headers) as resp:
            assert resp.status == 403
        async with client.post(
            "/reset_prefix_cache", headers={"Origin": "http://evil.test"}
        ) as resp:
            assert resp.status == 403
        assert (await metrics(client, *HELD))[0] == 50
        async with client.post("/reset_prefix_cache") as resp:
            assert (resp.status, await resp.read()) == (200, b"")
        assert await metrics(client, *HELD) == [0, 0]
        assert cached(await post(client, "/v1/completions", completion(SYSTEM))) == 0

    run(SMALL, body)


def test_no_prefix_caching_keeps_and_reports_nothing() -> None:
    async def body(client: TestClient[Any, Any]) -> None:
        for _ in range(2):
            assert cached(await post(client, "/v1/completions", completion(SYSTEM))) == 0
        assert await metrics(client, *QUERIES, *HELD) == [0, 0, 0, 0]

    run(config(enabled=False), body)


def test_a_cached_system_prompt_gives_a_lower_ttft_than_no_prefix_caching() -> None:
    # The default LM (its prefill of ~850 tokens is real work on a CPU), the shared 800-token
    # system prompt of the issue, streamed: the time to the first token the client sees.
    default = dataclasses.replace(SMALL, lm=LMConfig())

    async def ttfts(client: TestClient[Any, Any]) -> list[float]:
        times = []
        for i in range(5):
            body = {**completion(f"{SYSTEM} Q{i}: why?"), "max_tokens": 1, "stream": True}
            started = asyncio.get_running_loop().time()
            async with client.post("/v1/completions", json=body) as resp:
                assert resp.status == 200
                await resp.content.readline()  # the first event: the first token
                times.append(asyncio.get_running_loop().time() - started)
                await resp.read()
        return times

    warm = run(default, ttfts)[1:]  # the first request fills the cache
    cold = run(dataclasses.replace(default, prefix_cache=PrefixCacheConfig(enabled=False)), ttfts)
    # About 5x apart on a quiet machine (docs/benchmarks.md); half is a wide margin for a busy one.
    assert sorted(warm)[1] < 0.5 * sorted(cold[1:])[1], (warm, cold)


def test_the_memory_bound_evicts_the_tail_of_a_prefix_first() -> None:
    async def body(client: TestClient[Any, Any]) -> None:
        await post(client, "/v1/completions", completion(SYSTEM))  # 50 blocks; 10 fit
        assert await metrics(client, *HELD) == [10, 10 * BLOCK_BYTES]
        assert cached(await post(client, "/v1/completions", completion(SYSTEM))) == 10 * BLOCK
        await post(client, "/v1/completions", completion("x" * 799))  # another 10 fill it
        assert await metrics(client, *HELD) == [10, 10 * BLOCK_BYTES]
        assert cached(await post(client, "/v1/completions", completion(SYSTEM))) == 0

    run(config(memory_bytes=10 * BLOCK_BYTES), body)


# --- the cache and the model, in process ----------------------------------------------------

LM = LMConfig(layers=2, dim=64, heads=4, max_model_len=128, seed=5)
CPU = torch.device("cpu")


def test_a_block_matches_only_after_the_same_prefix_and_the_same_tokens() -> None:
    ids = tokenizer.encode("a" * 40)  # BOS + 40: two full blocks, then 9 tokens
    keys = block_keys(ids, BLOCK)
    assert len(keys) == 2 and keys[0] != keys[1]  # same tokens, other prefix: other key
    model, kv = CausalLM(LM).eval(), KVCache(LM, 1, CPU, torch.float32)
    model.prefill(torch.tensor(ids), 0, kv)
    cache = PrefixCache(PrefixCacheConfig(block_size=BLOCK))
    lookup = cache.lookup(ids)
    cache.insert(lookup, copy_out(lookup, ids, 0, kv, BLOCK))
    assert len(cache.lookup(ids).hits) == 2
    # Another prompt whose blocks claim these keys (a hash collision) is never matched.
    cache.reset()
    forged = Lookup(keys, (), cache.epoch)
    cache.insert(forged, copy_out(forged, tokenizer.encode("b" * 40), 0, kv, BLOCK))
    assert len(cache) == 2
    assert cache.lookup(ids).hits == ()


def test_prefill_after_a_copied_prefix_gives_the_logits_of_a_full_prefill() -> None:
    model = CausalLM(LM).eval()
    ids = tokenizer.encode("The same long system prompt, then a question: how far?")
    full_kv, kv = KVCache(LM, 1, CPU, torch.float32), KVCache(LM, 1, CPU, torch.float32)
    model.prefill(torch.tensor(ids), 0, full_kv)
    cache = PrefixCache(PrefixCacheConfig(block_size=BLOCK))
    first = cache.lookup(ids)
    cache.insert(first, copy_out(first, ids, 0, full_kv, BLOCK))
    for prompt in (ids, ids[: 3 * BLOCK]):  # partly cached; fully cached (last token computed)
        lookup = cache.lookup(prompt)
        start = lookup.cached_tokens(len(prompt), BLOCK)
        assert start == min(3 * BLOCK, len(prompt) - 1)
        copy_in(lookup.hits, 0, kv, BLOCK)
        got = model.prefill(torch.tensor(prompt), 0, kv, start=start)
        want = model.prefill(torch.tensor(prompt), 0, KVCache(LM, 1, CPU, torch.float32))
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
        n = len(prompt)
        torch.testing.assert_close(kv.k[:, 0, :, :n], full_kv.k[:, 0, :, :n], atol=1e-5, rtol=0)


def test_greedy_outputs_are_the_same_with_and_without_the_cache() -> None:
    """The default LM (4 layers, 256 wide, 1,024 tokens), prompts sharing ~700 tokens:
    cold, partly cached and fully cached answers equal the uncached ones token for token."""
    default_lm = dataclasses.replace(SMALL, lm=LMConfig())
    prompts = [SYSTEM[:700] + q for q in (" Q: first?", " Q: second one?", " Q: second one?")]
    prompts.append(SYSTEM[:591])  # 592 tokens, all in the cache: only the last is computed

    async def answers(client: TestClient[Any, Any]) -> list[tuple[str, int]]:
        out = []
        for prompt in prompts:
            answer = await post(client, "/v1/completions", completion(prompt, max_tokens=24))
            out.append((answer["choices"][0]["text"], cached(answer)))
        return out

    async def answers_then_next_turn(client: TestClient[Any, Any]) -> list[tuple[str, int]]:
        out = await answers(client)
        # The first answer fed back: its keys and values computed by decode steps, not prefill.
        follow_up = prompts[0] + out[0][0] + " Q: third?"
        answer = await post(client, "/v1/completions", completion(follow_up, max_tokens=24))
        return [*out, (answer["choices"][0]["text"], cached(answer))]

    with_cache = run(default_lm, answers_then_next_turn)
    without = run(config(default_lm, enabled=False), answers_then_next_turn)
    # 44 blocks = the 700 shared characters + BOS + " Q: " (705 tokens), then all but one;
    # the follow-up: 45 blocks of the first prompt (711 tokens) and 23 answer tokens.
    assert [c for _, c in with_cache] == [0, 704, 704, 591, 720]
    assert [t for t, _ in with_cache] == [t for t, _ in without]


def test_the_prefill_budget_counts_only_the_tokens_computed() -> None:
    """Two 820-token prompts behind a cached 800-token prefix fit one step's budget of 100
    prompt tokens; without the cache the second waits for the next step."""
    lm = LMConfig(layers=1, dim=32, heads=2, max_model_len=1024)
    prompts = [tokenizer.encode(SYSTEM + tail * 20) for tail in "ab"]

    def admitted_together(enabled: bool) -> int:
        limits = BatchingConfig(max_num_seqs=4, max_prefill_tokens=100)
        engine = GenerationEngine(
            CausalLM(lm).eval(),
            KVCache(lm, limits.max_num_seqs, CPU, torch.float32),
            limits,
            create_metrics(),
            FaultInjector(FaultConfig()),
            PrefixCacheConfig(enabled=enabled),
        )

        async def main() -> int:
            task = asyncio.create_task(engine.run())
            try:
                first = Sequence(prompt_ids=tokenizer.encode(SYSTEM), max_tokens=1)
                engine.submit(first)
                while not isinstance(await asyncio.wait_for(first.out.get(), 30.0), Finish):
                    pass
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for ids in prompts:
                engine.submit(Sequence(prompt_ids=ids, max_tokens=1))
            return len(engine._admit())

        try:
            return asyncio.run(main())
        finally:
            engine.close()

    assert admitted_together(enabled=True) == 2
    assert admitted_together(enabled=False) == 1


def _eos_after_min_tokens(lm: LMConfig) -> CausalLM:
    """A real model whose every next-token distribution peaks at EOS (the final norm emits
    EOS's tied embedding): greedy answers stop as soon as ``min_tokens`` allows."""
    model = CausalLM(lm).eval()
    with torch.no_grad():
        model.norm.weight.zero_()
        model.norm.bias.copy_(model.embed.weight[tokenizer.EOS] * 1000)
    return model


async def _answer(seq: Sequence, tokens: list[int]) -> Finish:
    """Wait (30 s at most per token) for ``seq``'s tokens, adding them to ``tokens``, and
    return how it finished."""
    while not isinstance(item := await asyncio.wait_for(seq.out.get(), 30.0), Finish):
        tokens.append(item)
    return item


async def _first(seq: Sequence, n: int, tokens: list[int]) -> None:
    """Wait (30 s at most each) for ``seq``'s first ``n`` tokens, adding them to ``tokens``."""
    for _ in range(n):
        item = await asyncio.wait_for(seq.out.get(), 30.0)
        assert isinstance(item, int), item
        tokens.append(item)


def test_a_finished_sequence_keeps_the_blocks_of_its_prompt_and_output() -> None:
    """Prompts of 41 tokens (2 full blocks), 23 generated, then a prompt that continues
    them: after a stop (EOS) the keys and values of all 64 tokens were kept (4 blocks), after
    max_tokens those of 63 (3 blocks); a cancelled sequence kept only its prompt's blocks,
    one running across a reset nothing."""
    limits = BatchingConfig(max_num_seqs=2)
    engine = GenerationEngine(
        _eos_after_min_tokens(LM),
        KVCache(LM, limits.max_num_seqs, CPU, torch.float32),
        limits,
        create_metrics(),
        FaultInjector(FaultConfig()),
        PrefixCacheConfig(block_size=BLOCK),
    )

    answers: dict[str, list[int]] = {}  # the tokens each answered, by prompt letter

    def greedy(letter: str, **params: Any) -> Sequence:
        seq = Sequence(prompt_ids=tokenizer.encode(letter * 40), temperature=0, **params)
        engine.submit(seq)
        answers[letter] = []
        return seq

    async def cached_of_next_turn(letter: str) -> int:
        """Cached tokens of a prompt made of a sequence's prompt and answer, then one more."""
        ids = [*tokenizer.encode(letter * 40), *answers[letter], ord("?")]
        follow_up = Sequence(prompt_ids=ids, max_tokens=1)
        engine.submit(follow_up)
        await _answer(follow_up, [])
        return follow_up.cached_tokens

    async def main() -> list[int]:
        task = asyncio.create_task(engine.run())
        cached = []
        try:
            stopped = greedy("a", max_tokens=80, min_tokens=23)
            assert await _answer(stopped, answers["a"]) == Finish("stop")
            assert len(answers["a"]) == 23
            cached.append(await cached_of_next_turn("a"))
            length = greedy("b", max_tokens=23, ignore_eos=True)
            assert await _answer(length, answers["b"]) == Finish("length")
            cached.append(await cached_of_next_turn("b"))
            cancelled = greedy("c", max_tokens=60, ignore_eos=True)
            await _first(cancelled, 20, answers["c"])  # their keys and values fill block 3
            engine.cancel(cancelled)
            assert (await _answer(cancelled, answers["c"])).reason == "error"
            cached.append(await cached_of_next_turn("c"))
            across_reset = greedy("d", max_tokens=23, ignore_eos=True)
            await _first(across_reset, 1, answers["d"])
            engine.reset_prefix_cache()  # after the prefill that kept its prompt's blocks
            assert await _answer(across_reset, answers["d"]) == Finish("length")
            cached.append(await cached_of_next_turn("d"))
            return cached
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    try:
        assert asyncio.run(main()) == [64, 48, 32, 0]
    finally:
        engine.close()
