"""The models and next-token selection in process: KV-cache decoding matches a full
prefill, padding never changes an embedding, classifier rows are independent, and sampling
honours temperature, seed, top_p and min_tokens."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

import torch

from reference_server import tokenizer
from reference_server.config import (
    BatchingConfig,
    ClassifierConfig,
    EmbedderConfig,
    FaultConfig,
    LMConfig,
)
from reference_server.faults import FaultInjector
from reference_server.generation import Finish, GenerationEngine, Sequence
from reference_server.metrics import create_metrics
from reference_server.models import CausalLM, Encoder, KVCache, MLPClassifier
from reference_server.sampling import sample_tokens
from reference_server.tokenizer import PAD, encode

LM = LMConfig(layers=2, dim=64, heads=4, max_model_len=64, seed=3)
CPU = torch.device("cpu")


def reference_logits(model: CausalLM, ids: list[int]) -> torch.Tensor:
    """Logits after ``ids``, computed by one prefill in a fresh cache."""
    scratch = KVCache(LM, 1, CPU, torch.float32)
    return model.prefill(torch.tensor(ids), 0, scratch)


def test_batched_kv_cache_decoding_matches_full_prefill() -> None:
    model = CausalLM(LM).eval()
    cache = KVCache(LM, 4, CPU, torch.float32)
    # Leave stale keys in slot 2 from a longer sequence: decoding must never attend to them.
    model.prefill(torch.tensor(encode("a much longer sequence that used slot two")), 2, cache)
    texts = {0: ("hello world, again", 3), 2: ("short one", 5), 3: ("xyz: 0123456789", 2)}
    seqs = {slot: (encode(text), prompt) for slot, (text, prompt) in texts.items()}
    for slot, (ids, prompt) in seqs.items():
        got = model.prefill(torch.tensor(ids[:prompt]), slot, cache)
        torch.testing.assert_close(got, reference_logits(model, ids[:prompt]), atol=1e-4, rtol=0)

    positions = {slot: prompt for slot, (_, prompt) in seqs.items()}
    steps = 0
    while active := [s for s, (ids, _) in seqs.items() if positions[s] < len(ids)]:
        feed = [seqs[s][0][positions[s]] for s in active]
        out = model.decode(
            torch.tensor(feed),
            torch.tensor(active),
            torch.tensor([positions[s] for s in active]),
            cache,
        )
        for row, slot in enumerate(active):
            expected = reference_logits(model, seqs[slot][0][: positions[slot] + 1])
            torch.testing.assert_close(out[row], expected, atol=1e-4, rtol=0)
            positions[slot] += 1
        steps += 1
    assert steps == max(len(ids) - prompt for ids, prompt in seqs.values())


def test_decoding_one_sequence_alone_or_batched_gives_the_same_logits() -> None:
    model = CausalLM(LM).eval()
    ids = encode("batch invariance")
    alone, batched = KVCache(LM, 2, CPU, torch.float32), KVCache(LM, 2, CPU, torch.float32)
    model.prefill(torch.tensor(ids[:4]), 1, alone)
    model.prefill(torch.tensor(ids[:4]), 1, batched)
    model.prefill(torch.tensor(encode("the other sequence is longer")), 0, batched)
    solo = model.decode(torch.tensor([ids[4]]), torch.tensor([1]), torch.tensor([4]), alone)
    pair = model.decode(
        torch.tensor([ord("!"), ids[4]]), torch.tensor([0, 1]), torch.tensor([29, 4]), batched
    )
    torch.testing.assert_close(pair[1], solo[0], atol=1e-5, rtol=0)


def test_same_seed_same_weights_and_different_seed_different_weights() -> None:
    ids = torch.tensor(encode("seeded"))
    cache = KVCache(LM, 1, CPU, torch.float32)
    a = CausalLM(LM).eval().prefill(ids, 0, cache)
    b = CausalLM(LM).eval().prefill(ids, 0, cache)
    c = CausalLM(LMConfig(layers=2, dim=64, heads=4, max_model_len=64, seed=4)).eval()
    assert torch.equal(a, b)
    assert not torch.allclose(a, c.prefill(ids, 0, cache))


def padded(rows: list[list[int]], width: int) -> torch.Tensor:
    out = torch.full((len(rows), width), PAD, dtype=torch.long)
    for i, ids in enumerate(rows):
        out[i, : len(ids)] = torch.tensor(ids)
    return out


def test_padding_does_not_change_an_embedding() -> None:
    encoder = Encoder(EmbedderConfig(layers=2, dim=64, heads=4, max_input_len=64)).eval()
    short, long = encode("short text"), encode("a noticeably longer piece of text to embed")
    alone = encoder(padded([short], len(short)))[0]
    extra_pad = encoder(padded([short], len(short) + 17))[0]
    with_long = encoder(padded([long, short], len(long)))[1]
    torch.testing.assert_close(extra_pad, alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(with_long, alone, atol=1e-5, rtol=0)
    assert abs(float(alone.norm()) - 1.0) < 1e-5
    assert not torch.allclose(alone, encoder(padded([long], len(long)))[0], atol=1e-3)


def test_classifier_rows_are_independent_of_their_batch() -> None:
    cfg = ClassifierConfig(in_features=16, hidden=32, layers=3, classes=10)
    model = MLPClassifier(cfg).eval()
    x = torch.randn(5, 16, generator=torch.Generator().manual_seed(0))
    together = model(x)
    assert together.shape == (5, 10) and together.dtype == torch.float32
    for i in range(5):
        torch.testing.assert_close(model(x[i : i + 1])[0], together[i], atol=1e-5, rtol=0)


# --- sampling ----------------------------------------------------------------------------

A, B, C = ord("a"), ord("b"), ord("c")


def sample(
    logits: torch.Tensor,
    *,
    temperature: float = 0.0,
    top_p: float = 1.0,
    allow_eos: bool = True,
    seed: int | None = None,
) -> int:
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    tokens = sample_tokens(
        logits[None],
        temperatures=[temperature],
        top_ps=[top_p],
        allow_eos=[allow_eos],
        generators=[generator],
    )
    return tokens[0]


def peaked(**scores: float) -> torch.Tensor:
    logits = torch.zeros(tokenizer.VOCAB_SIZE)
    for name, score in scores.items():
        logits[int(name[1:])] = score
    return logits


def test_greedy_is_the_argmax_over_printable_tokens() -> None:
    logits = torch.randn(6, tokenizer.VOCAB_SIZE, generator=torch.Generator().manual_seed(0))
    logits[:, tokenizer.EOS] = -100.0
    allowed = list(tokenizer.PRINTABLE_IDS)
    expected = [allowed[i] for i in logits[:, allowed].argmax(dim=-1).tolist()]
    got = sample_tokens(
        logits,
        temperatures=[0.0] * 6,
        top_ps=[1.0] * 6,
        allow_eos=[True] * 6,
        generators=[None] * 6,
    )
    assert got == expected
    # A non-printable byte never wins, however high it scores.
    assert sample(peaked(t200=50.0, t97=5.0)) == A


def test_a_seed_reproduces_a_sampled_sequence() -> None:
    def draw(seed: int) -> list[int]:
        generator = torch.Generator().manual_seed(seed)
        flat = torch.zeros(1, tokenizer.VOCAB_SIZE)
        return [
            sample_tokens(
                flat, temperatures=[1.0], top_ps=[1.0], allow_eos=[False], generators=[generator]
            )[0]
            for _ in range(30)
        ]

    assert draw(5) == draw(5)
    assert draw(5) != draw(6)
    assert set(draw(5)) <= set(tokenizer.PRINTABLE_IDS)


def test_top_p_keeps_the_top_token_and_cuts_the_tail() -> None:
    logits = peaked(t97=6.0, t98=5.8, t99=1.0)
    assert {sample(logits, temperature=1.0, top_p=1e-9, seed=s) for s in range(50)} == {A}
    # a and b hold 88% of the mass (a alone 49%): top_p 0.8 keeps exactly those two.
    drawn = {sample(logits, temperature=1.0, top_p=0.8, seed=s) for s in range(200)}
    assert drawn == {A, B}
    wide = {sample(logits, temperature=1.0, top_p=1.0, seed=s) for s in range(200)}
    assert wide - {A, B}


def test_eos_is_blocked_until_allowed() -> None:
    logits = peaked(t257=100.0, t99=1.0)
    assert sample(logits) == tokenizer.EOS
    assert sample(logits, allow_eos=False) == C
    assert all(
        sample(logits, temperature=1.0, allow_eos=False, seed=s) != tokenizer.EOS for s in range(50)
    )


class EosLovingModel:
    """Stands in for CausalLM: every position scores EOS far above anything else."""

    def _row(self) -> torch.Tensor:
        return peaked(t257=100.0, t99=1.0)

    def prefill(self, ids: torch.Tensor, slot: int, cache: KVCache, start: int = 0) -> torch.Tensor:
        return self._row()

    def decode(
        self, ids: torch.Tensor, slots: torch.Tensor, positions: torch.Tensor, cache: KVCache
    ) -> torch.Tensor:
        return self._row().expand(len(ids), -1)


class FailsOnceModel(EosLovingModel):
    """The first model call raises, as a CUDA out-of-memory error would."""

    def __init__(self) -> None:
        self.failed = False

    def prefill(self, ids: torch.Tensor, slot: int, cache: KVCache, start: int = 0) -> torch.Tensor:
        if not self.failed:
            self.failed = True
            raise RuntimeError("device out of memory")
        return self._row()


def generate(
    *option_sets: dict[str, Any], model: EosLovingModel | None = None
) -> list[tuple[list[int], str]]:
    """Run sequences one after another through the real engine; each gets 2 s to finish."""
    lm = LMConfig(layers=1, dim=8, heads=1, max_model_len=32)
    limits = BatchingConfig(max_num_seqs=2)
    cache = KVCache(lm, limits.max_num_seqs, torch.device("cpu"), torch.float32)
    lm_model = cast(CausalLM, model or EosLovingModel())
    engine = GenerationEngine(
        lm_model, cache, limits, create_metrics(), FaultInjector(FaultConfig())
    )

    async def one(options: dict[str, Any]) -> tuple[list[int], str]:
        seq = Sequence(prompt_ids=[tokenizer.BOS, A], temperature=0.0, **options)
        engine.submit(seq)
        tokens: list[int] = []
        while not isinstance(item := await seq.out.get(), Finish):
            tokens.append(item)
        return tokens, item.reason

    async def main() -> list[tuple[list[int], str]]:
        task = asyncio.create_task(engine.run())
        try:
            return [await asyncio.wait_for(one(options), 2.0) for options in option_sets]
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            engine.close()

    return asyncio.run(main())


def test_min_tokens_holds_eos_back_in_the_engine() -> None:
    assert generate({"max_tokens": 10}, {"max_tokens": 10, "min_tokens": 3}) == [
        ([], "stop"),
        ([C, C, C], "stop"),
    ]
    assert generate({"max_tokens": 5, "ignore_eos": True}) == [([C] * 5, "length")]


def test_a_failing_model_step_ends_its_sequences_and_the_engine_carries_on() -> None:
    first, second = generate({"max_tokens": 3}, {"max_tokens": 3}, model=FailsOnceModel())
    assert first == ([], "error")
    assert second == ([], "stop")
