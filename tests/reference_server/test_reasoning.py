"""Reasoning tokens: real decode steps before the answer, streamed in the delta's
``reasoning`` (or ``reasoning_content``) field, put in ``message.reasoning`` when not
streamed, counted in ``usage.completion_tokens_details.reasoning_tokens`` and in
``completion_tokens``; bad values get a 400 with one clear message."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from reference_server.cli import ConfigError, config_from_args, parser
from reference_server.config import ReasoningConfig
from tests.reference_server.in_process import SMALL, error, post, run, stream
from tests.reference_server.test_models import C, generate

CHAT = "/v1/chat/completions"


def chat(**extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": "Think first, then answer."}]
    return {"messages": messages, "temperature": 0, "ignore_eos": True, **extra}


def test_reasoning_streams_before_the_answer_and_is_counted() -> None:
    async def body(client: TestClient[Any, Any]) -> None:
        plain = await post(client, CHAT, chat(max_tokens=12))
        options = {"include_usage": True}
        chunks = await stream(
            client, CHAT, chat(max_tokens=12, reasoning_tokens=5, stream_options=options)
        )
        role, *tokens, finish, usage = chunks
        assert role["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        deltas = [c["choices"][0]["delta"] for c in tokens]
        assert [set(d) for d in deltas] == [{"reasoning"}] * 5 + [{"content"}] * 7
        thought = "".join(d["reasoning"] for d in deltas[:5])
        answer = "".join(d["content"] for d in deltas[5:])
        # Real decode steps: at temperature 0 they are the tokens a plain answer starts with.
        assert thought + answer == plain["choices"][0]["message"]["content"]
        assert finish["choices"][0]["finish_reason"] == "length"
        assert usage["usage"]["completion_tokens"] == 12
        assert usage["usage"]["completion_tokens_details"] == {"reasoning_tokens": 5}

    run(SMALL, body)


def test_server_default_in_reasoning_content_and_a_request_overrides_it() -> None:
    server = dataclasses.replace(SMALL, reasoning=ReasoningConfig(3, "reasoning_content"))

    async def body(client: TestClient[Any, Any]) -> None:
        answer = await post(client, CHAT, chat(max_tokens=10))
        message = answer["choices"][0]["message"]
        assert (len(message["reasoning_content"]), len(message["content"])) == (3, 7)
        assert answer["usage"]["completion_tokens_details"] == {"reasoning_tokens": 3}
        deltas = [c["choices"][0]["delta"] for c in await stream(client, CHAT, chat(max_tokens=4))]
        assert [set(d) for d in deltas[1:-1]] == [{"reasoning_content"}] * 3 + [{"content"}]
        none = await post(client, CHAT, chat(max_tokens=10, reasoning_tokens=0))
        assert set(none["choices"][0]["message"]) == {"role", "content"}
        assert none["usage"]["completion_tokens_details"] == {"reasoning_tokens": 0}

    run(server, body)


def test_max_tokens_bounds_reasoning_and_answer_together() -> None:
    async def body(client: TestClient[Any, Any]) -> None:
        answer = await post(client, CHAT, chat(max_tokens=5, reasoning_tokens=8))
        choice = answer["choices"][0]
        assert (len(choice["message"]["reasoning"]), choice["message"]["content"]) == (5, "")
        assert choice["finish_reason"] == "length"
        assert answer["usage"]["completion_tokens"] == 5
        assert answer["usage"]["completion_tokens_details"] == {"reasoning_tokens": 5}

    run(SMALL, body)


def test_eos_waits_until_the_reasoning_is_done() -> None:
    # A model that always prefers EOS still reasons for the tokens asked, then stops.
    assert generate({"max_tokens": 10, "reasoning_tokens": 3}) == [([C, C, C], "stop")]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "'reasoning_tokens' must be at least 0, got -1"),
        (2.5, "'reasoning_tokens' must be an integer"),
        ("3", "'reasoning_tokens' must be an integer"),
        (True, "'reasoning_tokens' must be an integer"),
        (5000, "'reasoning_tokens' must be at most 1024, got 5000"),
    ],
)
def test_bad_reasoning_tokens_get_one_clear_400(value: object, message: str) -> None:
    async def body(client: TestClient[Any, Any]) -> None:
        assert await error(client, CHAT, chat(max_tokens=4, reasoning_tokens=value)) == (
            400,
            message,
        )

    run(SMALL, body)


def test_completions_refuse_reasoning() -> None:
    async def body(client: TestClient[Any, Any]) -> None:
        prompt = {"prompt": "hi", "max_tokens": 2}
        assert await error(client, "/v1/completions", {**prompt, "reasoning_tokens": 3}) == (
            400,
            "'reasoning_tokens' is served by /v1/chat/completions only",
        )
        await post(client, "/v1/completions", {**prompt, "reasoning_tokens": 0})

    run(dataclasses.replace(SMALL, reasoning=ReasoningConfig(tokens=2)), body)


def test_the_options_parse_or_say_what_is_wrong() -> None:
    args = ["--prefix-cache-memory", "1.5MiB", "--prefix-block-size", "32"]
    config = config_from_args(parser().parse_args([*args, "--no-prefix-caching"]))
    assert (config.prefix_cache.memory_bytes, config.prefix_cache.block_size) == (1572864, 32)
    assert not config.prefix_cache.enabled
    assert config_from_args(parser().parse_args([])).prefix_cache.enabled
    reasoning = ["--reasoning-tokens", "9", "--reasoning-field", "reasoning_content"]
    assert config_from_args(parser().parse_args(reasoning)).reasoning == ReasoningConfig(
        9, "reasoning_content"
    )
    too_many = parser().parse_args(["--reasoning-tokens", "64", "--max-tokens-limit", "32"])
    with pytest.raises(ConfigError, match="--reasoning-tokens 64 is over --max-tokens-limit 32"):
        config_from_args(too_many)
    for bad in (["--prefix-cache-memory", "lots"], ["--reasoning-tokens", "-2"]):
        with pytest.raises(SystemExit):
            parser().parse_args(bad)
