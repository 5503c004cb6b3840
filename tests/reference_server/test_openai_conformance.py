"""Conformance of the OpenAI-compatible endpoints, driven by the official ``openai`` client.

Token counts are exact because the tokenizer is byte-level: a prompt costs its UTF-8
bytes plus one BOS, and every generated token is one printable ASCII character, so the
completion tokens of an answer equal its characters.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from reference_server import tokenizer
from tests.server_process import ServerProcess

LM, EMBED = "slabench-lm", "slabench-embed"
EMBED_DIM = 64  # --embed-dim in SMALL_MODELS
PROMPT = "Once upon a time"


@pytest.fixture(scope="module")
def client(reference_server: ServerProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=reference_server.url + "/v1", api_key="x", max_retries=0) as c:
        yield c


def complete(client: openai.OpenAI, prompt: str | list[str] = PROMPT, **kw: Any) -> Any:
    return client.completions.create(model=LM, prompt=prompt, **kw)


def chat(client: openai.OpenAI, turns: list[tuple[str, str]], **kw: Any) -> Any:
    return client.chat.completions.create(model=LM, messages=as_messages(turns), **kw)


def prompt_tokens(text: str) -> int:
    return len(text.encode("utf-8")) + 1  # + BOS


def as_messages(turns: list[tuple[str, str]]) -> list[ChatCompletionMessageParam]:
    return [cast("ChatCompletionMessageParam", {"role": r, "content": c}) for r, c in turns]


def chat_prompt_tokens(turns: list[tuple[str, str]]) -> int:
    return prompt_tokens(tokenizer.chat_prompt(turns))


@dataclass(frozen=True, slots=True)
class EarlyStop:
    """A sampled completion that ends on EOS well before its max_tokens."""

    seed: int
    length: int


@pytest.fixture(scope="module")
def early_stop(client: openai.OpenAI) -> EarlyStop:
    # Random weights rarely pick EOS; at temperature 2 some seed ends early. Searching at
    # run time keeps the min_tokens and ignore_eos tests meaningful if the weights change.
    for seed in range(60):
        r = complete(client, "Hello", max_tokens=100, temperature=2.0, seed=seed)
        if r.choices[0].finish_reason == "stop" and 2 <= len(r.choices[0].text) < 80:
            assert r.usage.completion_tokens == len(r.choices[0].text)  # EOS is not counted
            return EarlyStop(seed, len(r.choices[0].text))
    pytest.fail("no seed in 0..59 ended on EOS after 2 to 79 tokens at temperature 2")


# --- models -----------------------------------------------------------------------------


def test_models_list_names_the_lm_and_the_embedder(client: openai.OpenAI) -> None:
    models = list(client.models.list())
    assert sorted(m.id for m in models) == [EMBED, LM]
    assert all(m.object == "model" for m in models)
    assert client.models.retrieve(LM).id == LM


# --- chat completions -------------------------------------------------------------------


def test_chat_non_streaming_counts_tokens_exactly(client: openai.OpenAI) -> None:
    turns = [("system", "You are terse."), ("user", "Say hi, ünïcode.")]
    r = client.chat.completions.create(
        model=LM, messages=as_messages(turns), max_tokens=12, extra_body={"ignore_eos": True}
    )
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-") and r.model == LM
    [choice] = r.choices
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "length"
    assert choice.message.content is not None and len(choice.message.content) == 12
    assert r.usage is not None
    assert r.usage.prompt_tokens == chat_prompt_tokens(turns)
    assert r.usage.completion_tokens == 12
    assert r.usage.total_tokens == r.usage.prompt_tokens + 12


def test_chat_max_completion_tokens_is_honoured(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model=LM,
        messages=as_messages([("user", "hi")]),
        max_completion_tokens=7,
        extra_body={"ignore_eos": True},
    )
    assert r.usage is not None and r.usage.completion_tokens == 7
    assert len(r.choices[0].message.content or "") == 7


def test_chat_streaming_matches_non_streaming_at_temperature_zero(client: openai.OpenAI) -> None:
    turns = [("user", "Tell me a story")]
    common: dict[str, Any] = {
        "temperature": 0,
        "max_tokens": 20,
        "extra_body": {"ignore_eos": True},
    }
    full = chat(client, turns, **common)
    chunks = list(
        chat(client, turns, stream=True, stream_options={"include_usage": True}, **common)
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "length" and set(finishes[:-1]) == {None}
    assert text == full.choices[0].message.content and len(text) == 20
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (chat_prompt_tokens(turns), 20)
    assert len({c.id for c in chunks}) == 1


# --- completions ------------------------------------------------------------------------


def test_completion_non_streaming_counts_prompt_bytes_plus_bos(client: openai.OpenAI) -> None:
    prompt = "héllo wörld"  # 13 UTF-8 bytes, 11 characters: tokens are bytes
    r = complete(client, prompt, max_tokens=9, extra_body={"ignore_eos": True})
    assert r.object == "text_completion" and r.model == LM
    assert r.choices[0].finish_reason == "length"
    assert len(r.choices[0].text) == 9
    assert r.usage is not None
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (14, 9)
    assert r.usage.total_tokens == 23


def test_completion_streaming_matches_non_streaming(client: openai.OpenAI) -> None:
    common: dict[str, Any] = {
        "temperature": 0,
        "max_tokens": 25,
        "extra_body": {"ignore_eos": True},
    }
    full = complete(client, **common)
    chunks = list(complete(client, stream=True, stream_options={"include_usage": True}, **common))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == full.choices[0].text and len(text) == 25
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 25
    assert chunks[-1].usage.prompt_tokens == prompt_tokens(PROMPT)


def test_completion_of_a_list_of_prompts_answers_each_in_order(client: openai.OpenAI) -> None:
    prompts = ["a", "bcd", "The quick brown fox"]
    common: dict[str, Any] = {"temperature": 0, "max_tokens": 8, "extra_body": {"ignore_eos": True}}
    together = complete(client, prompts, **common)
    alone = [complete(client, p, **common).choices[0].text for p in prompts]
    choices = sorted(together.choices, key=lambda c: c.index)
    assert [c.index for c in choices] == [0, 1, 2]
    assert [c.text for c in choices] == alone
    assert all(c.finish_reason == "length" for c in choices)
    assert together.usage is not None
    assert together.usage.prompt_tokens == sum(prompt_tokens(p) for p in prompts)
    assert together.usage.completion_tokens == 3 * 8


# --- generation controls ----------------------------------------------------------------


def test_max_tokens_is_exact_with_ignore_eos(client: openai.OpenAI, early_stop: EarlyStop) -> None:
    want = early_stop.length + 15  # past where this seed naturally emits EOS
    r = complete(
        client,
        "Hello",
        max_tokens=want,
        temperature=2.0,
        seed=early_stop.seed,
        extra_body={"ignore_eos": True},
    )
    assert r.choices[0].finish_reason == "length"
    assert len(r.choices[0].text) == want
    assert r.usage is not None and r.usage.completion_tokens == want


def test_min_tokens_holds_back_eos(client: openai.OpenAI, early_stop: EarlyStop) -> None:
    least = early_stop.length + 10
    r = complete(
        client,
        "Hello",
        max_tokens=least + 200,
        temperature=2.0,
        seed=early_stop.seed,
        extra_body={"min_tokens": least},
    )
    assert len(r.choices[0].text) >= least
    assert r.usage is not None and r.usage.completion_tokens == len(r.choices[0].text)


def test_eos_finishes_with_stop_and_max_tokens_with_length(
    client: openai.OpenAI, early_stop: EarlyStop
) -> None:
    sampled: dict[str, Any] = {"temperature": 2.0, "seed": early_stop.seed}
    ended = complete(client, "Hello", max_tokens=100, **sampled)
    cut = complete(client, "Hello", max_tokens=early_stop.length - 1, **sampled)
    assert ended.choices[0].finish_reason == "stop"
    assert len(ended.choices[0].text) == early_stop.length
    assert cut.choices[0].finish_reason == "length"
    assert cut.choices[0].text == ended.choices[0].text[:-1]


def test_same_seed_same_text_and_other_seed_other_text(client: openai.OpenAI) -> None:
    sampled: dict[str, Any] = {
        "max_tokens": 32,
        "temperature": 1.0,
        "extra_body": {"ignore_eos": True},
    }
    first = complete(client, seed=1234, **sampled).choices[0].text
    again = complete(client, seed=1234, **sampled).choices[0].text
    other = complete(client, seed=4321, **sampled).choices[0].text
    assert first == again
    assert first != other


def test_temperature_zero_is_deterministic(client: openai.OpenAI) -> None:
    greedy: dict[str, Any] = {
        "max_tokens": 32,
        "temperature": 0,
        "extra_body": {"ignore_eos": True},
    }
    texts = {complete(client, **greedy).choices[0].text for _ in range(3)}
    assert len(texts) == 1
    # The seed must not matter when sampling is greedy.
    assert complete(client, seed=99, **greedy).choices[0].text in texts


def _stop_string(text: str) -> str:
    """Two characters that first occur past the start of ``text``."""
    for i in range(2, len(text) - 1):
        candidate = text[i : i + 2]
        if text.find(candidate) == i:
            return candidate
    pytest.fail(f"no usable stop string in {text!r}")


def test_stop_string_cuts_the_text_before_it(client: openai.OpenAI) -> None:
    greedy: dict[str, Any] = {
        "max_tokens": 60,
        "temperature": 0,
        "extra_body": {"ignore_eos": True},
    }
    base = complete(client, **greedy).choices[0].text
    stop = _stop_string(base)
    expected = base[: base.find(stop)]
    r = complete(client, stop=[stop, "never-generated~~"], **greedy)
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].text == expected and stop not in r.choices[0].text
    # The stop string's own tokens were generated, so they count.
    assert r.usage is not None and r.usage.completion_tokens >= len(expected) + len(stop)
    streamed = "".join(
        c.choices[0].text for c in complete(client, stop=stop, stream=True, **greedy) if c.choices
    )
    assert streamed == expected


def test_chat_stop_string_in_stream(client: openai.OpenAI) -> None:
    turns = [("user", "Count to ten")]
    greedy: dict[str, Any] = {
        "max_tokens": 60,
        "temperature": 0,
        "extra_body": {"ignore_eos": True},
    }
    base = chat(client, turns, **greedy)
    text = base.choices[0].message.content or ""
    stop = _stop_string(text)
    chunks = list(chat(client, turns, stop=stop, stream=True, **greedy))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text[: text.find(stop)]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


# --- embeddings -------------------------------------------------------------------------


def test_embeddings_default_to_base64_and_decode_to_unit_vectors(client: openai.OpenAI) -> None:
    inputs = ["first text", "a rather different second text"]
    raw = client.embeddings.with_raw_response.create(model=EMBED, input=inputs)
    assert b'"encoding_format":"base64"' in raw.http_request.content.replace(b" ", b"")
    assert all(isinstance(d["embedding"], str) for d in raw.http_response.json()["data"])
    r = raw.parse()
    assert [d.index for d in r.data] == [0, 1]
    vectors = np.array([d.embedding for d in r.data])
    assert vectors.shape == (2, EMBED_DIM)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])
    assert r.usage.prompt_tokens == sum(prompt_tokens(t) for t in inputs)


def test_embeddings_float_format_matches_base64(client: openai.OpenAI) -> None:
    inputs = ["same text", "another one"]
    floats = client.embeddings.create(model=EMBED, input=inputs, encoding_format="float")
    packed = client.embeddings.create(model=EMBED, input=inputs)
    assert all(isinstance(x, float) for x in floats.data[0].embedding)
    np.testing.assert_allclose(
        [d.embedding for d in floats.data], [d.embedding for d in packed.data], atol=1e-5
    )
    assert floats.model == EMBED and len(floats.data[1].embedding) == EMBED_DIM
